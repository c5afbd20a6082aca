"""Backends that speak KServe v2 over gRPC, and what the config must say for hubhop to carry
gRPC inference between daemons.

    [[backends]]
    name = "triton-a"
    protocol = ["kserve_v2", "kserve_v2_grpc"]
    url = "http://127.0.1.20:8000"        # the REST side (openai, kserve_v2)
    grpc_url = "grpc://127.0.1.20:8001"   # the gRPC side (kserve_v2_grpc)
    models = ["ct-triage"]

Rules:
- A backend's protocols say which of its addresses a request may use: `url` (http://) serves
  the REST protocols, `grpc_url` (grpc://HOST:PORT, plain HTTP/2) the gRPC one. Each is
  required exactly when a protocol of its kind is listed, and a `grpc_url` on a backend that
  does not list `kserve_v2_grpc` is a fault: an address nobody would use is a typo.
- A request entering over gRPC is routed among the backends that speak `kserve_v2_grpc`: it
  goes to them as gRPC, end to end, never translated to REST.
- Between daemons a gRPC request travels to the serving node's gRPC server: under mutual TLS
  (`[tls]` files) to its `[grpc] peer_listen`, with the node's certificates, never in plain text
  beside an encrypted data plane; so a node that gossips under mutual TLS and serves gRPC must
  give `peer_listen` (a config fault says so), and one without mutual TLS has no use for it.
- Pure: faults are recorded on the table like every other section's; no import of config.py
  (which imports this module).
"""

from __future__ import annotations

import ipaddress
from typing import Protocol
from urllib.parse import urlsplit

GRPC_PROTOCOL = "kserve_v2_grpc"
# The protocols a backend's http:// `url` serves.
HTTP_PROTOCOLS = ("openai", "kserve_v2")
GRPC_SCHEME = "grpc"

PEER_LISTEN_NEEDED = (
    "peer_listen: missing: with mutual TLS ([tls] files) peers send gRPC inference to this "
    "port over mutual TLS (IP:PORT, apart from listen)"
)
PEER_LISTEN_UNUSED = (
    "peer_listen: is the mutual-TLS port for peers; without [tls] files (or without [gossip]) "
    "peers call listen: remove it"
)


class BackendTable(Protocol):
    """The getters parse_grpc_url uses: hubhop.core.config's table reader has them."""

    def has(self, key: str) -> bool: ...

    def string(self, key: str, default: str = "", *, required: bool = False) -> str: ...

    def fault(self, key: str, message: str) -> None: ...


def needs_http_url(protocols: tuple[str, ...]) -> bool:
    """Does a backend listing `protocols` need its http:// `url`?"""
    return any(p in HTTP_PROTOCOLS for p in protocols) or not protocols


def parse_grpc_url(t: BackendTable, protocols: tuple[str, ...]) -> str:
    """The backend's `grpc_url` ("" when it speaks no gRPC), faults recorded on `t`."""
    speaks = GRPC_PROTOCOL in protocols
    if not t.has("grpc_url"):
        if speaks:
            t.fault("grpc_url", f"is required with protocol {GRPC_PROTOCOL!r} (grpc://HOST:PORT)")
        return ""
    url = t.string("grpc_url", required=True)
    if not speaks:
        t.fault("grpc_url", f"is only used with protocol {GRPC_PROTOCOL!r}, which is not listed")
    problem = grpc_url_problem(url) if url else None  # "" was faulted by `string`
    if problem is not None:
        t.fault("grpc_url", problem)
    return url


def grpc_url_problem(url: str) -> str | None:
    """Why `url` is not a grpc://IP:PORT URL; None when it is."""
    wanted = f"{url!r} must be grpc://IP:PORT (e.g. grpc://127.0.1.20:8001)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return wanted
    if parts.scheme != GRPC_SCHEME or not parts.hostname or port is None or port == 0:
        return wanted
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return wanted
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return wanted
    return None


def grpc_target(url: str) -> str:
    """The "HOST:PORT" a grpc channel takes for a checked grpc:// URL."""
    return urlsplit(url).netloc


def grpc_peer_faults(
    serves_grpc: bool, gossips: bool, mutual_tls: bool, peer_listen: bool
) -> list[str]:
    """Faults of the `[grpc]` section against how this node reaches its peers."""
    if not serves_grpc:
        return []
    if gossips and mutual_tls:
        return [] if peer_listen else [PEER_LISTEN_NEEDED]
    return [PEER_LISTEN_UNUSED] if peer_listen else []
