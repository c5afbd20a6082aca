"""The app listener: the TCP site apps call, holding them to `[http]`'s listener limits
(hubhop.core.listener_limits).

Rules:
- aiohttp itself bounds a request head (request line and field sizes, field count) and closes a
  connection idle past its keep-alive timeout (also one whose head is still trickling in); this
  module hands it the configured bounds. aiohttp answers an oversized head with a 400 in plain
  text; here it is a JSON error, 431 Request Header Fields Too Large (in the OpenAI style: a
  head that did not parse names no path), and a malformed head a JSON 400. Strangers' bad heads
  are logged at debug level only: a flood of them must not flood the journal.
- aiohttp accepts every connection (its maintainers leave a bound to the application), so this
  site counts them: past `max_client_connections`, a new connection never reaches aiohttp; it is
  answered 503 with `Retry-After` as soon as its request starts to arrive (in the style of the
  API its path names) and closed, or closed after REFUSED_WAIT_S if nothing arrives. A client
  so learns at once to come back later or go elsewhere, rather than hanging in a backlog.
- The limits are read as each connection opens, so a reload applies to the connections opened
  after it; an open connection keeps the limits it started with.
- Connections are aiohttp's own request handlers, registered with the runner's server, so the
  runner's graceful shutdown drains them as it drains any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from hubhop.core.listener_limits import ListenerLimits
from hubhop.io.http_errors import error_document, error_response

log = logging.getLogger(__name__)

# A connection past the bound that sends nothing is closed after this long: enough for a client
# that connects and then writes its request, short enough that refused connections do not pile up.
REFUSED_WAIT_S = 1.0
# What a refused client is told to wait: about as long as it takes one request to finish and
# free a connection.
REFUSED_RETRY_AFTER_S = 1
# aiohttp's own backlog for a TCP site: connections the kernel holds until they are accepted.
BACKLOG = 128


def handler_options(limits: ListenerLimits) -> dict[str, Any]:
    """aiohttp request handler options for one client connection."""
    return {
        "max_line_size": limits.max_request_line_bytes,
        "max_field_size": limits.max_header_field_bytes,
        "max_headers": limits.max_headers,
        "keepalive_timeout": limits.keepalive_timeout_s,
        "access_log": None,  # a line per request costs every request; the app logs what matters
    }


class ClientConnection(web.RequestHandler):
    """aiohttp's handler of one client connection, answering a bad request head in JSON and
    telling the site when the connection is gone."""

    def __init__(self, on_close: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_close: Callable[[], None] | None = on_close

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage):  # a handler's failure: aiohttp's own answer
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong) or "Too many headers" in exc.message:
            status, code = 431, "request_header_fields_too_large"
            text = (
                "the request line or a header field is over this listener's limits "
                f"(line {self.max_line_size} bytes, field {self.max_field_size} bytes, "
                f"{self.max_headers} fields)"
            )
        else:
            status, code = 400, "malformed_request"
            text = f"malformed HTTP request: {exc.message}"
        log.debug("bad request head from %s: %s", request.remote, exc)
        response = error_response("/", status, text, code)
        response.force_close()
        return response


class RefusedConnection(asyncio.Protocol):
    """A connection past the bound: 503 once its request starts to arrive, then closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = self._loop.call_later(REFUSED_WAIT_S, self._close)

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(refusal(_request_path(data)))
        self._close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._close()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()


def refusal(path: str) -> bytes:
    """The whole answer to a request on a connection past the bound."""
    message = "this node has as many client connections open as it takes; retry shortly"
    document = error_document(path, 503, message, "too_many_connections")
    body = json.dumps(document).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {REFUSED_RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _request_path(data: bytes) -> str:
    """The path of the request line that starts `data`, as far as it arrived ("/" if none)."""
    parts = data.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 1 else "/"


class ClientSite(web.BaseSite):
    """A TCP site on the runner's server, for app clients, with a bound on open connections."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, limits: Callable[[], ListenerLimits]
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._limits = limits
        self.open_connections = 0

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._connection(loop),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )

    def _connection(self, loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
        limits = self._limits()
        server = self._runner.server
        if server is None or self.open_connections >= limits.max_client_connections:
            return RefusedConnection(loop)
        self.open_connections += 1
        return ClientConnection(self._closed, server, loop=loop, **handler_options(limits))

    def _closed(self) -> None:
        self.open_connections -= 1
