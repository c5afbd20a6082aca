"""Which request and response headers a proxy hop passes on.

Rules (RFC 9110 section 7.6.1): hop-by-hop headers describe one connection, not the message, so
they are dropped at every hop, and so is every header named in the message's own `Connection`
field. The framing headers (content-length, transfer-encoding) are dropped too, because this hop
re-frames the body it streams. End-to-end headers, `x-request-id` and W3C `traceparent` /
`tracestate` among them, pass unchanged so a trace follows the request across daemons.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set again by the hop that writes the message.
REFRAMED = frozenset({"content-length", "host"})
# Dropped whatever the message says (its `Connection` field may name more).
ALWAYS_DROPPED = HOP_BY_HOP | REFRAMED

REQUEST_ID_HEADER = "x-request-id"
# Client-chosen ids end up in logs and headers: keep them printable and bounded.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """Header names listed in the `Connection` field(s): hop-by-hop for this message."""
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )


def end_to_end(
    headers: Iterable[tuple[str, str]],
    connection_values: Collection[str],
    also_drop: Collection[str] = (),
    drop_prefix: str | None = None,
) -> list[tuple[str, str]]:
    """The headers to pass to the next hop, order and repeats kept. `also_drop` (lower-case
    names) and names starting with `drop_prefix` are left out too: the hop sets its own."""
    drop = ALWAYS_DROPPED
    if connection_values:
        drop = drop | connection_tokens(connection_values)
    return [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in drop
        and lower not in also_drop
        and not (drop_prefix is not None and lower.startswith(drop_prefix))
    ]


def valid_request_id(value: str) -> bool:
    return REQUEST_ID_PATTERN.match(value) is not None
