"""The daemon's one gRPC server (`[grpc] listen`): hubhop.v1.Hubhop, the services other modules
register, the standard health service and server reflection, on one port.

Rules:
- Services plug in through SERVICE_REGISTRARS: each is `register(server, state, pool)`, adds
  its servicer to the server and returns its full service name, which health and reflection
  then list. A new service is one line here, nothing in the app.
- Health (grpc.health.v1.Health) answers for the server as a whole ("") and for each service:
  NOT_SERVING until the node says it is ready (its kernels warm, as HTTP's readiness), SERVING
  then, NOT_SERVING for good from the moment the node starts draining, so a load balancer
  stops sending before the port closes; a health Watch stream then ends, rather than hold the
  drain for its whole grace. Health and reflection take no token.
- Reflection lists every service, so grpcurl and friends need no .proto files.
- Messages are bounded both ways by `[grpc] max_message_bytes` (hubhop.core.grpc_config).
- The port is bound exclusively (no SO_REUSEPORT): a second daemon on the same address fails
  to start with an error instead of silently sharing the port. A port that cannot be bound is
  an OSError naming `[grpc] listen`.
- Stopping: calls in flight get the drain grace, then are cancelled; new calls are refused.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from hubhop.core.grpc_config import GrpcConfig, grpc_address
from hubhop.core.tls_config import TlsConfig
from hubhop.io import grpc_api, kserve_grpc
from hubhop.io.backend_proxy import BackendPool
from hubhop.io.local_endpoint import EndpointState
from hubhop.io.peer_tls import read_bytes

Registrar = Callable[[grpc.aio.Server, EndpointState, BackendPool], str]
SERVICE_REGISTRARS: list[Registrar] = [grpc_api.register, kserve_grpc.register]

OVERALL = ""  # the health service's name for the server as a whole
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class NodeHealth(health_aio.HealthServicer):  # type: ignore[misc]  # grpc_health is untyped
    """grpcio-health-checking's servicer, whose Watch streams end once the node drains: they
    send NOT_SERVING, then finish, so an open watch does not hold the drain for its whole
    grace. Check is the library's."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {}
        self._changed = asyncio.Event()  # set, and replaced, at every change
        self._final = False

    async def update(self, service: str, status: int) -> None:
        if self._final:
            return
        await self.set(service, status)
        self._statuses[service] = status
        self._announce()

    async def finish(self) -> None:
        """NOT_SERVING for every service, for good; watches end once they have said so."""
        await self.enter_graceful_shutdown()
        self._statuses = dict.fromkeys(self._statuses, NOT_SERVING)
        self._final = True
        self._announce()

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        last = None
        while True:
            changed = self._changed  # taken before reading: no change slips between
            status = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if self._final:
                return
            await changed.wait()


class GrpcServer:
    def __init__(
        self,
        config: GrpcConfig,
        state: EndpointState,
        pool: BackendPool,
        tls: TlsConfig | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.pool = pool
        self.tls = tls  # mutual TLS files: peers call `peer_listen` with them
        self.port = 0  # bound port, once started
        self.peer_port = 0  # bound mutual-TLS port for peers, once started (0: none)
        self.services: list[str] = []  # the registered services' names
        self._server: grpc.aio.Server | None = None
        self._health = NodeHealth()

    @property
    def address(self) -> str:
        """Where the server listens, with its bound port (`[grpc] listen` may say port 0)."""
        host = self.config.listen[0]
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.port}"

    @property
    def peer_address(self) -> str:
        """Where peers call this node's gRPC: the mutual-TLS port, else the one apps call."""
        if self.config.peer_listen is None or self.tls is None:
            return self.address
        return grpc_address(self.config.peer_listen[0], self.peer_port)

    async def start(self) -> None:
        """Bind and serve; health says NOT_SERVING until `ready()`."""
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        self.services = [register(server, self.state, self.pool) for register in SERVICE_REGISTRARS]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for name in (OVERALL, *self.services):
            await self._health.update(name, NOT_SERVING)
        reflection.enable_server_reflection(
            [*self.services, HEALTH_SERVICE, reflection.SERVICE_NAME], server
        )
        try:
            port = server.add_insecure_port(self.config.address)
        except RuntimeError:  # grpc says "Failed to bind" this way
            port = 0
        if port == 0:
            await server.stop(None)
            raise OSError(
                errno.EADDRNOTAVAIL,
                "gRPC cannot bind it (in use, or not an address of this host)",
                f"[grpc] listen {self.config.address}",
            )
        self.port = port
        if self.config.peer_listen is not None and self.tls is not None:
            self.peer_port = self._bind_peer_port(server, self.config.peer_listen, self.tls)
            if self.peer_port == 0:
                await server.stop(None)
                raise OSError(
                    errno.EADDRNOTAVAIL,
                    "gRPC cannot bind it (in use, or not an address of this host)",
                    f"[grpc] peer_listen {grpc_address(*self.config.peer_listen)}",
                )
        await server.start()
        self._server = server

    @staticmethod
    def _bind_peer_port(server: grpc.aio.Server, listen: tuple[str, int], tls: TlsConfig) -> int:
        """The mutual-TLS port: a client certificate of our CA is required (hubhop.io.kserve_grpc
        then checks it names the sending member). The files are read at start: a renewed
        certificate reaches this port with a restart (the HTTP peer listener reloads on SIGHUP)."""
        credentials = grpc.ssl_server_credentials(
            [(read_bytes(tls.key_file), read_bytes(tls.cert_file))],
            root_certificates=read_bytes(tls.ca_file),
            require_client_auth=True,
        )
        try:
            return int(server.add_secure_port(grpc_address(*listen), credentials))
        except RuntimeError:
            return 0

    async def ready(self) -> None:
        """The node is ready: every service SERVING."""
        for name in (OVERALL, *self.services):
            await self._health.update(name, SERVING)

    async def draining(self) -> None:
        """The node drains: every service NOT_SERVING, for good."""
        await self._health.finish()

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, give those in flight `grace_s`, then close."""
        await self.draining()
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
