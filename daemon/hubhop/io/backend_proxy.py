"""Forwarding one request to a backend and streaming its answer back.

Rules:
- Bodies stream both ways. A request body is handed on in the pieces it arrives in (a CT series
  of hundreds of MB is never held whole: the server's read buffer pauses the client while the
  backend reads slower), and the answer is written to the client chunk by chunk as the backend
  produces it, so server-sent events keep their pacing.
- Bytes pass verbatim: the client session does not decompress, and hop-by-hop headers are
  dropped on both legs (`hubhop.core.headers`).
- Connections to backends are pooled keep-alive connections, bounded per backend.
- Failures before the answer starts become JSON errors (503 backend unreachable, 504 backend too
  slow, 502 broken answer, 413 body over the limit). Once the answer has started the status line
  is gone, so a failure mid-stream can only cut the connection, which the client sees as a
  truncated answer rather than a silently short one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from hubhop.core.config import BackendConfig, HttpSettings
from hubhop.core.headers import REQUEST_ID_HEADER, end_to_end
from hubhop.io.http_errors import ApiError

log = logging.getLogger(__name__)

# Headers the client library would add on its own. A proxy passes what the client sent, no more:
# an added Accept-Encoding would invite a compressed answer the client never asked for.
CLIENT_AUTO_HEADERS = frozenset({"Accept-Encoding", "User-Agent", "Content-Type"})


# Answers of known length up to this size are read whole and written back in one go (one
# segment to the client instead of a header write and a body write); anything longer, or of
# unknown length such as server-sent events, streams chunk by chunk.
SMALL_ANSWER_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is over the limit of {limit} bytes")
        self.limit = limit


class LimitedBody:
    """A request body streamed on in chunks, cut off once more than `limit` bytes arrive.

    The client library wraps an exception raised while it sends a body in its own error type,
    so the overflow is also recorded here (`exceeded`) for the proxy to answer 413 whatever the
    wrapping.
    """

    def __init__(self, content: aiohttp.StreamReader, limit: int) -> None:
        self._content = content
        self.limit = limit
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        # Each piece as it arrived: cutting them to one size would join and copy them again.
        async for chunk in self._content.iter_any():
            total += len(chunk)
            if total > self.limit:
                self.exceeded = True
                raise BodyTooLarge(self.limit)
            yield chunk


@dataclass(frozen=True)
class Upstream:
    """Where a request goes next: one of this node's backends, or a peer daemon (`peer`)."""

    name: str  # the backend's name, or the peer node's
    url: str  # base URL, no trailing slash
    peer: bool = False


# The client's own request id is replaced by the one this daemon answers with; its own x-hubhop-*
# headers, on a hop to a peer daemon, by what this daemon tells the peer.
REQUEST_ID_ONLY = frozenset({REQUEST_ID_HEADER})
HUBHOP_PREFIX = "x-hubhop-"
SERVER_TIMING = "server-timing"

# Set by a daemon on an answer that refused a forwarded request before any work was done on it
# (admission full, draining, no such backend): the entry daemon may send it elsewhere.
REFUSED_HEADER = "x-hubhop-refused"


class UpstreamRefused(Exception):
    """A peer refused the request before doing any work (REFUSED_HEADER), before anything was
    written to the client: the caller may re-route it."""

    def __init__(self, upstream: Upstream, status: int, reason: str, retry_after: str | None):
        super().__init__(f"{upstream.name} refused: {status} {reason}")
        self.upstream = upstream
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class UpstreamUnreachable(ApiError):
    """No connection to the upstream: nothing was sent, so the caller may re-route."""

    def __init__(self, upstream: Upstream, error: object) -> None:
        what = "node" if upstream.peer else "backend"
        super().__init__(
            503, f"{what} {upstream.name} is unreachable: {error}", "backend_unavailable"
        )
        self.upstream = upstream


class BackendPool:
    """Pooled connections to this node's backends and to peer daemons, and how many requests
    each backend has in flight."""

    def __init__(self, settings: HttpSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._peer_session: aiohttp.ClientSession | None = None
        self.in_flight: Counter[str] = Counter()

    async def start(self) -> None:
        self._session = self._new_session(None)
        # Peers take a forwarded request only from an address a member's record names: ours is
        # the advertised (else the listen) address, so connections to peers leave from it.
        host = self._settings.peer_host
        self._peer_session = self._new_session(None if host is None else (host, 0))

    def _new_session(self, local_addr: tuple[str, int] | None) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,  # no global cap: the per-backend cap below is the one that means something
            limit_per_host=self._settings.max_connections_per_backend,
            enable_cleanup_closed=True,
            local_addr=local_addr,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                total=self._settings.backend_timeout_s,
                sock_connect=self._settings.backend_connect_timeout_s,
            ),
        )

    async def close(self) -> None:
        for session in (self._session, self._peer_session):
            if session is not None:
                await session.close()
        self._session = self._peer_session = None

    async def forward(
        self,
        request: web.Request,
        backend: BackendConfig,
        body: bytes | LimitedBody | None,
        extra_headers: dict[str, str],
        route_ms: float,
    ) -> web.StreamResponse:
        """Send `request` to one of this node's backends and stream the answer to the client."""
        opened = await self.open(request, backend, body, extra_headers, route_ms)
        return await opened.relay(request)

    async def open(
        self,
        request: web.Request,
        backend: BackendConfig | Upstream,
        body: bytes | LimitedBody | None,
        extra_headers: dict[str, str],
        route_ms: float,
        *,
        request_headers: list[tuple[str, str]] | None = None,
        timing: Callable[[float, float, str | None], str] | None = None,
        before_answer: Callable[[], Awaitable[None]] | None = None,
    ) -> Opened:
        """Send `request` (with `body`) to `backend` and wait for its answer head; nothing is
        written to the client yet, so the caller may still drop it (`Opened.close`).

        `extra_headers` (names in lower case) go on the answer in place of the upstream's own.
        `route_ms`, the time spent choosing the backend, is reported in `server-timing`, or
        what `timing(route_ms, upstream_ms, upstream's server-timing)` makes of it.
        `request_headers` go upstream in place of the client's own `x-hubhop-*` headers.
        `before_answer` is awaited once the upstream's answer head is in (the emulated WAN's
        way back). A peer's refusal (REFUSED_HEADER) raises UpstreamRefused; no connection
        raises UpstreamUnreachable.
        """
        peer = isinstance(backend, Upstream) and backend.peer
        session = self._peer_session if peer else self._session
        assert session is not None, "BackendPool.start() was not awaited"
        url = backend.url + request.rel_url.raw_path_qs
        headers = end_to_end(
            request.headers.items(),
            request.headers.getall("Connection", ()),
            also_drop=REQUEST_ID_ONLY,
            # A hop that says where the request goes replaces what the client said of it.
            drop_prefix=HUBHOP_PREFIX if request_headers is not None else None,
        )
        headers.append((REQUEST_ID_HEADER, extra_headers[REQUEST_ID_HEADER]))
        if request_headers:
            headers.extend(request_headers)
        if isinstance(body, LimitedBody) and request.content_length is not None:
            # A known length is passed on rather than re-framed as chunked: backends check
            # tensor sizes against it before they read.
            headers.append(("Content-Length", str(request.content_length)))
        sent_at = time.perf_counter()
        opened = Opened(self, backend.name, body)
        try:
            upstream = opened.upstream = await session.request(
                request.method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=CLIENT_AUTO_HEADERS,
            )
            backend_ms = (time.perf_counter() - sent_at) * 1000.0
            if peer and REFUSED_HEADER in upstream.headers:
                assert isinstance(backend, Upstream)
                raise UpstreamRefused(
                    backend,
                    upstream.status,
                    upstream.headers[REFUSED_HEADER],
                    upstream.headers.get("Retry-After"),
                )
            if before_answer is not None:
                await before_answer()
            ours = dict(extra_headers)
            ours[SERVER_TIMING] = (
                timing(route_ms, backend_ms, upstream.headers.get(SERVER_TIMING))
                if timing is not None
                else f"route;dur={route_ms:.3f}, backend;dur={backend_ms:.3f}"
            )
            # The upstream's own values of the headers this hop sets are replaced by ours.
            answer = end_to_end(
                upstream.headers.items(), upstream.headers.getall("Connection", ()), ours
            )
            answer.extend(ours.items())
            opened.headers = CIMultiDict(answer)
            return opened
        except BaseException as exc:
            opened.close()
            if isinstance(exc, aiohttp.ClientConnectorError):
                if not isinstance(backend, Upstream):
                    backend = Upstream(backend.name, backend.url)
                raise UpstreamUnreachable(backend, exc.os_error) from None
            if isinstance(exc, (BodyTooLarge, aiohttp.ClientError, TimeoutError)):
                raise opened.failure(exc) from None
            raise


class Opened:
    """An upstream's answer whose head is in and whose body is not yet read: `relay` streams it
    to the client, `close` drops it (the upstream connection is closed, so the upstream sees
    the request cancelled). Either way the backend's in-flight count goes back down once."""

    def __init__(self, pool: BackendPool, name: str, body: bytes | LimitedBody | None) -> None:
        self.name = name
        self.upstream: aiohttp.ClientResponse | None = None
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._pool: BackendPool | None = pool
        self._body = body
        pool.in_flight[name] += 1

    def failure(self, exc: BaseException) -> ApiError:
        """What the client hears of a failure before anything was written to it."""
        if isinstance(self._body, LimitedBody) and self._body.exceeded:
            message = f"request body is over the limit of {self._body.limit} bytes"
            return ApiError(413, message, "request_too_large")
        if isinstance(exc, TimeoutError):
            return ApiError(504, f"backend {self.name} did not answer in time", "timeout")
        return ApiError(502, f"backend {self.name} failed: {exc}", "bad_gateway")

    def close(self) -> None:
        """Drop the answer: its connection is closed, so the upstream sees the request cancelled."""
        if self.upstream is not None:
            self.upstream.close()
        self._done()

    async def _release(self) -> None:
        """The answer was read to its end: its connection goes back to the pool."""
        if self.upstream is not None:
            self.upstream.release()
            await self.upstream.wait_for_close()  # the request body's writer, if still busy
        self._done()

    def _done(self) -> None:
        if self._pool is not None:
            self._pool.in_flight[self.name] -= 1
            self._pool = None

    async def relay(self, request: web.Request) -> web.StreamResponse:
        """Write the answer to the client, streaming its body as it comes."""
        response: web.StreamResponse | None = None
        try:
            response = await self._write(request)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.close()
            if response is not None and response.prepared:
                # The client went away mid-answer; nothing is left to tell it.
                log.debug("client %s left while %s was answering", request.remote, self.name)
                return response
            raise
        except (BodyTooLarge, aiohttp.ClientError, TimeoutError) as exc:
            self.close()
            if response is not None and response.prepared:
                raise
            raise self.failure(exc) from None
        except BaseException:
            self.close()
            raise
        await self._release()
        return response

    async def _write(self, request: web.Request) -> web.StreamResponse:
        upstream = self.upstream
        assert upstream is not None, "relay() of an answer that never opened"
        length = upstream.content_length
        if length is not None and length <= SMALL_ANSWER_BYTES:
            # Read whole and answered in one write: headers and body in one segment.
            body_bytes = await upstream.read()
            return web.Response(
                status=upstream.status,
                reason=upstream.reason,
                body=body_bytes,
                headers=self.headers,
            )
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=self.headers
        )
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
