"""The `[grpc]` config section: where the daemon serves its gRPC API (hubhop.v1.Hubhop, the
KServe v2 inference service, health and reflection) and how large a message it takes.

    [grpc]
    listen = "127.0.1.1:50051"
    max_message_bytes = 268435456
    peer_listen = "127.0.1.1:50052"   # with mutual TLS: where peers send gRPC inference

Rules:
- No section, no gRPC server: a node serves REST only unless the operator asks for a gRPC port.
- `listen` is IP:PORT like `[http] listen`; port 0 takes a free port (tests), which the ready
  line and `hubhop status` then show. It is bound at start, so a reload that changes the
  section is refused (it needs a restart).
- `peer_listen` is the gRPC port peers call over mutual TLS ([tls] files), as `tls.peer_listen`
  is for HTTP: a node that gossips under mutual TLS needs it (hubhop.core.kserve_grpc_config);
  without mutual TLS peers call `listen`.
- `max_message_bytes` bounds one message each way. gRPC holds a message whole in memory (it does
  not stream a tensor as HTTP does), so the bound is what one call can pin; grpc's own limit is
  below 2 GiB (a 32-bit length).
- Faults are collected on the table like every other section's (hubhop.core.config); this module
  receives the table, so it needs no import of config.py (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MIB = 1024 * 1024
# grpc's message length is a signed 32-bit integer.
MAX_MESSAGE_BYTES_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class GrpcConfig:
    listen: tuple[str, int]
    # KServe tensors travel through this server too, held whole: a CT series of 500 slices of
    # 512x512 16-bit pixels is 256 MiB, where grpc's own 4 MiB default takes eight slices.
    # Higher would let a handful of calls pin gigabytes.
    max_message_bytes: int = 256 * MIB
    # The mutual-TLS port for peers; None: peers call `listen` (no mutual TLS).
    peer_listen: tuple[str, int] | None = None

    @property
    def address(self) -> str:
        """`listen` as grpc takes it (an IPv6 address in brackets)."""
        return grpc_address(*self.listen)


def grpc_address(host: str, port: int) -> str:
    """HOST:PORT as grpc takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostPort(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class GrpcSectionReader(Protocol):
    """The getters parse_grpc uses: hubhop.core.config's table reader has them."""

    def listen_address(self, key: str, *, required: bool = False) -> HostPort: ...

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int: ...

    def has(self, key: str) -> bool: ...

    def finish(self) -> None: ...


def parse_grpc(t: GrpcSectionReader) -> GrpcConfig:
    """Read the `[grpc]` table, recording every fault on it."""
    listen = t.listen_address("listen", required=True)
    peer = t.listen_address("peer_listen") if t.has("peer_listen") else None
    config = GrpcConfig(
        peer_listen=None if peer is None else (peer.host, peer.port),
        listen=(listen.host, listen.port),
        max_message_bytes=t.integer(
            "max_message_bytes",
            GrpcConfig.max_message_bytes,
            lo=1024,  # below a kilobyte not even a table reply fits
            hi=MAX_MESSAGE_BYTES_LIMIT,
        ),
    )
    t.finish()
    return config
