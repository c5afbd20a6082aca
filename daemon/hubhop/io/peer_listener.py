"""The listener peer daemons reach this one at, over mutual TLS (`[tls] peer_listen`).

Rules:
- Its own aiohttp app, with the same handlers, state and pool as the app listener
  (`build_endpoint_app`), on its own TLS socket: a TLS handshake with a certificate the
  private CA did not sign never gets to HTTP.
- It takes only what daemons send each other: requests that carry TARGET_HEADER, whose
  certificate is then checked against the sender they name (`request_router.serve_forwarded`),
  and the health probes. Anything else is a 403 that sends apps to `http.listen`.
- The app listener, in turn, refuses TARGET_HEADER while mutual TLS is on (serve_forwarded), so
  a request between daemons never travels in the clear.
- Its address is the one this node's record advertises: the bound port (peer_listen may say
  port 0, for a test), and the listen host, or `http.advertise` for a wildcard one.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from hubhop.core.config import WILDCARD_HOSTS, NodeConfig
from hubhop.io.backend_proxy import BackendPool
from hubhop.io.http_errors import ApiError
from hubhop.io.local_endpoint import OPEN_PATHS, EndpointState, Handler, build_endpoint_app
from hubhop.io.request_router import TARGET_HEADER


@web.middleware
async def forwarded_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if TARGET_HEADER not in request.headers and request.path not in OPEN_PATHS:
        raise ApiError(
            403,
            "this is the peer listener: it takes only requests hubhop daemons pass on; apps call"
            " the node's http.listen",
            "forbidden",
        )
    return await handler(request)


class PeerListener:
    """The running peer listener: `start` binds it, `address` is what records advertise."""

    def __init__(self, state: EndpointState, pool: BackendPool, context: ssl.SSLContext) -> None:
        self._state = state
        self._pool = pool
        self._context = context
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, config: NodeConfig) -> None:
        assert config.tls.peer_listen is not None
        app = build_endpoint_app(self._state, self._pool)
        # After the error middleware, so a refusal is a JSON error like any other.
        app.middlewares.append(forwarded_only)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=config.lifecycle.drain_grace_s,
            # As on the app listener: an entry that gives a request up cancels it here.
            handler_cancellation=True,
        )
        await self._runner.setup()
        host, port = config.tls.peer_listen
        site = web.TCPSite(self._runner, host, port, ssl_context=self._context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:  # said as the key, so the log does not blame http.listen
            raise OSError(exc.errno, f"tls.peer_listen {host}:{port}: {exc.strerror}") from exc
        self.port = self._runner.addresses[0][1]

    def address(self, config: NodeConfig) -> str:
        """ "IP:PORT" peers reach this listener at (the config says a wildcard host only with
        `http.advertise`)."""
        assert config.tls.peer_listen is not None
        host = config.tls.peer_listen[0]
        if host in WILDCARD_HOSTS:
            assert config.http.advertise is not None
            host = config.http.advertise
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening; in-flight requests get the drain grace."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
