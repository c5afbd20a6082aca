"""What the app listener takes from its clients before any request is handled: how long a
request head and its header fields may be, how many connections may be open, how long one may
sit idle. Keys of the `[http]` section; hubhop.io.client_listener applies them.

Rules:
- Every key is optional; each default has its reason beside it. A reload may change them: a
  connection takes the limits in force when it opens, and keeps them.
- A request head over a size limit is answered 431 (a JSON error), a connection past the
  connection bound 503 with Retry-After, and the connection is closed: nothing reaches a
  backend, and the daemon keeps serving the others.
- The idle bound is also the bound on sending a request head: aiohttp closes a connection that
  has not delivered a whole head within it of opening, or of its last answer, so a client that
  trickles header bytes (a slowloris) holds a connection for at most that long.
- Pure: this module reads the table (a hubhop.core.config table reader), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ListenerLimits:
    # The request line (method, URL, version). hubhop's URLs are short, a KServe path with a
    # 200-character model name included; 8190 is what aiohttp and nginx (8 KiB) allow, so a
    # client that works through those works here.
    max_request_line_bytes: int = 8190
    # One header field, name and value. The longest a client needs is a bearer token (at most
    # 512 characters, hubhop.core.client_tokens) or a trace context; 8190 is aiohttp's and
    # nginx's bound, and bounds what one field can make the parser hold.
    max_header_field_bytes: int = 8190
    # Header fields in one request. An SDK sends a dozen, proxies and tracing add a few more;
    # 128 (aiohttp's own bound) leaves room for all of them and bounds one head's parse work.
    max_headers: int = 128
    # Client connections open at once. Half of the 1024 file descriptors a process gets by
    # default (systemd's and most shells' soft limit): the other half stays for the backend
    # and peer connections, the gossip sockets and files, so a flood of client connections
    # cannot starve them. Raise it with LimitNOFILE.
    max_client_connections: int = 512
    # An idle keep-alive connection is closed after this long, and a request head must arrive
    # within it. Above the 15 s that aiohttp's client and hubhop's own upstream pool keep an
    # idle connection, so those clients close first and never reuse one being closed here;
    # short enough that a client trickling its headers is cut off within half a minute.
    keepalive_timeout_s: float = 30.0


class LimitsReader(Protocol):
    """The getters parse_listener_limits uses (hubhop.core.config's table reader has them)."""

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int: ...

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float: ...


# Below 1 KiB a KServe URL or a bearer token would not fit; above 64 KiB a head is no longer
# a bounded amount of parsing.
HEAD_BYTES_RANGE = (1024, 65536)


def parse_listener_limits(t: LimitsReader) -> ListenerLimits:
    """The listener limits among the `[http]` keys; defaults where absent. The caller finishes
    the table."""
    d = ListenerLimits()
    lo, hi = HEAD_BYTES_RANGE
    return ListenerLimits(
        max_request_line_bytes=t.integer(
            "max_request_line_bytes", d.max_request_line_bytes, lo=lo, hi=hi
        ),
        max_header_field_bytes=t.integer(
            "max_header_field_bytes", d.max_header_field_bytes, lo=lo, hi=hi
        ),
        # 16: room for the few fields every client sends; 1024: far beyond any real client.
        max_headers=t.integer("max_headers", d.max_headers, lo=16, hi=1024),
        max_client_connections=t.integer(
            "max_client_connections", d.max_client_connections, lo=1, hi=1_000_000
        ),
        # 0.5 s: a client on a slow link still gets its head in; an hour: no bound at all.
        keepalive_timeout_s=t.number(
            "keepalive_timeout_s", d.keepalive_timeout_s, lo=0.5, hi=3600.0
        ),
    )
