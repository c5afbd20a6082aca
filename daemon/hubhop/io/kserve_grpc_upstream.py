"""Calls over gRPC to KServe v2 backends and to peer daemons' gRPC servers: pooled channels, and
serving one call with one of this node's backends.

Rules:
- One grpc.aio channel per target ("IP:PORT"), kept and reused (a channel multiplexes its calls
  over one HTTP/2 connection); bounded in number, closed with the node. Messages are bounded
  both ways by `[grpc] max_message_bytes`, the server's own bound.
- Messages pass as bytes: the serving node and the relaying entry never decode a tensor, only
  the request's model name (hubhop.io.kserve_grpc).
- A call's timeout is the client's deadline (its gRPC deadline, or x-hubhop-deadline-ms),
  never longer than `http.backend_timeout_s`, the bound on any backend call.
- Serving here: the backend must speak kserve_v2_grpc; an inference takes an admission slot
  (hubhop.io.admission_gate) held until the answer is in, whose time feeds the service-time
  estimate when it succeeded. A backend that is UNAVAILABLE (down, queue full, draining) did no
  work: that is a `Refused` the entry may re-route; any other failure is the client's answer.
  Outlier detection hears how each call ended, as for HTTP calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from hubhop.core.config import NodeConfig
from hubhop.core.kserve_grpc_config import GRPC_PROTOCOL, grpc_target
from hubhop.core.outlier_detection import Outcome
from hubhop.io.admission_gate import AdmissionGate, Refused

SERVICE = "inference.GRPCInferenceService"
Metadata = Sequence[tuple[str, str]]
# Channels kept open: one per backend and per peer this node calls, far above any cluster's.
MAX_CHANNELS = 1024
# Codes a backend answers having done nothing with the call: another backend may take it.
NOTHING_DONE = frozenset({grpc.StatusCode.UNAVAILABLE})
# Outlier detection's status for a failed gRPC answer: the HTTP status it stands for.
FAILED_STATUS = 500


@dataclass(frozen=True)
class Answer:
    """A call's answer: the response message's bytes and the trailing metadata."""

    message: bytes
    trailing: Metadata


class GrpcChannels:
    """Pooled channels to backends and peers, bounded like the server's messages."""

    def __init__(
        self, max_message_bytes: int, peer_credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self._options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        # This node's certificate and the CA, for peers' mutual-TLS ports ([grpc] peer_listen).
        self._peer_credentials = peer_credentials
        self._channels: dict[tuple[str, str | None], grpc.aio.Channel] = {}

    def _channel(self, target: str, tls_name: str | None) -> grpc.aio.Channel:
        channel = self._channels.get((target, tls_name))
        if channel is None:
            if len(self._channels) >= MAX_CHANNELS:  # peers come and go: drop the oldest
                oldest = next(iter(self._channels))
                self._channels.pop(oldest)  # its calls in flight finish; it is collected after
            if tls_name is None:
                channel = grpc.aio.insecure_channel(target, self._options)
            else:
                if self._peer_credentials is None:
                    raise ValueError("a mutual-TLS call needs this node's [tls] files")
                # The peer's certificate must name the node we mean to reach.
                options = [*self._options, ("grpc.ssl_target_name_override", tls_name)]
                channel = grpc.aio.secure_channel(target, self._peer_credentials, options)
            self._channels[(target, tls_name)] = channel
        return channel

    async def call(
        self,
        target: str,
        method: str,
        message: bytes,
        timeout_s: float,
        metadata: Metadata,
        tls_name: str | None = None,
    ) -> Answer:
        """Call `method` of the KServe service at `target` (over mutual TLS to the node
        `tls_name` when given); raises grpc.aio.AioRpcError."""
        stub = self._channel(target, tls_name).unary_unary(f"/{SERVICE}/{method}")
        call = stub(message, timeout=timeout_s, metadata=tuple(metadata))
        answer = await call
        trailing = await call.trailing_metadata()
        return Answer(answer, tuple((k, v) for k, v in trailing or () if isinstance(v, str)))

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


def timeout_s(config: NodeConfig, deadline: float | None) -> float:
    """Seconds a call may take: to `deadline` (time.monotonic), at most the backend timeout."""
    bound = config.http.backend_timeout_s
    if deadline is None:
        return bound
    return max(0.001, min(bound, deadline - time.monotonic()))


async def serve_here(
    config: NodeConfig,
    gate: AdmissionGate,
    channels: GrpcChannels,
    backend_name: str,
    lane: str,
    deadline: float | None,
    method: str,
    message: bytes,
    inference: bool,
) -> Answer:
    """Serve a call with one of this node's gRPC backends (see the rules); Refused when it may
    go elsewhere, grpc.aio.AioRpcError for the backend's own failure."""
    backend = next(
        (b for b in config.backends if b.name == backend_name and b.speaks(GRPC_PROTOCOL)), None
    )
    if backend is None:
        detail = f"no gRPC backend {backend_name!r} here (the record was stale)"
        raise Refused(503, 1, "no_backend", detail)
    slot = await gate.acquire(backend.name, lane, deadline) if inference else None
    health = gate.health
    started = time.monotonic()
    measured = False
    try:
        answer = await channels.call(
            grpc_target(backend.grpc_url), method, message, timeout_s(config, deadline), ()
        )
        measured = True
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if health is not None:
            outcome, status = _outcome(code)
            waited = time.monotonic() - started if inference else None
            health.report(backend.name, outcome, status, waited)
        if code in NOTHING_DONE:
            raise Refused(
                503, 1, "backend_unavailable", f"backend {backend.name}: {exc.details()}"
            ) from None
        raise
    finally:
        if slot is not None:
            slot.release(measured)
    if health is not None:
        health.report(
            backend.name, Outcome.ANSWERED, 200, time.monotonic() - started if inference else None
        )
    return answer


def _outcome(code: grpc.StatusCode) -> tuple[Outcome, int]:
    if code is grpc.StatusCode.UNAVAILABLE:
        return Outcome.UNREACHABLE, 0
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Outcome.TIMEOUT, 0
    if code is grpc.StatusCode.CANCELLED:
        return Outcome.ABANDONED, 0
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        return Outcome.ANSWERED, FAILED_STATUS
    return Outcome.ANSWERED, 400  # the client's doing (a bad tensor, an unknown model)
