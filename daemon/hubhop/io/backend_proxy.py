"""Forwarding one request to a backend and streaming its answer back.

Rules:
- Bodies stream both ways. A request body is handed on in the pieces it arrives in (a CT series
  of hundreds of MB is never held whole: the server's read buffer pauses the client while the
  backend reads slower), and the answer is written to the client chunk by chunk as the backend
  produces it, so server-sent events keep their pacing. A body of known length up to
  INLINE_BODY_BYTES is read first and goes out with the request head in one write.
- Bytes pass verbatim: nothing is decompressed, and hop-by-hop headers are dropped on both legs
  (`hubhop.core.headers`), `Expect` too: this hop has answered the client's expectation, and
  upstream the body follows the head at once. Nothing the client did not send is added but
  `Host` and the body's framing (hubhop.io.http1_messages).
- Connections to backends and peer daemons are pooled keep-alive HTTP/1.1 connections
  (hubhop.io.upstream_pool), bounded per backend; those to peers leave from this daemon's own
  address (`HttpSettings.peer_host`). A peer at an https:// URL (mutual TLS) is reached with
  the client context given at construction, its certificate checked for the peer's node name.
- Failures before the answer starts become JSON errors: 503 backend unreachable (no connection,
  or none within `backend_connect_timeout_s`: nothing was sent, so the router may re-route), 504
  backend too slow (no full answer within `backend_timeout_s`), 502 broken answer, 413 body over
  the limit. Once the answer has started the status line is gone: a failure mid-stream ends an
  event stream with an error event, and cuts any other answer's connection, which the client
  sees as a truncated answer rather than a silently short one (hubhop.io.cut_stream).
- A request without a body whose method may be repeated (GET, HEAD, ...) is sent once more on a
  fresh connection when a reused one broke before any byte of an answer came: the upstream
  closed it as it was being reused (RFC 9112 section 9.3.1), as aiohttp's client does.
- Whoever gives up an exchange (a hedge copy that lost, a client that left) closes its
  connection: the upstream sees its client leave.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from hubhop.core.config import BackendConfig, HttpSettings
from hubhop.core.headers import REQUEST_ID_HEADER, end_to_end
from hubhop.io.cut_stream import end_cut_answer
from hubhop.io.http1_messages import AnswerHead, BrokenAnswer, request_head
from hubhop.io.http_errors import ApiError
from hubhop.io.upstream_connection import RequestBodyFailed, UpstreamConnection
from hubhop.io.upstream_pool import ConnectFailed, Origin, UpstreamPool

log = logging.getLogger(__name__)

# Answers of known length up to this size are read whole and written back in one go (one
# segment to the client instead of a header write and a body write); anything longer, or of
# unknown length such as server-sent events, streams chunk by chunk.
SMALL_ANSWER_BYTES = 64 * 1024
# Streamed request bodies of known length up to this size (KServe JSON tensors, mostly) are read
# whole and sent with the head in one write: a few KB arrive in one piece anyway, and one write
# with no sender task of its own is the cheapest way to pass them on.
INLINE_BODY_BYTES = 64 * 1024
# Methods a client may repeat without harm (RFC 9110 section 9.2.2): retried once when a reused
# connection broke before any answer (see the module's rules).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# What the client already had answered by this hop, and must not go on (see the rules).
EXPECT_HEADER = "expect"


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

    async def read_whole(self, length: int) -> bytes:
        """The body whose Content-Length is `length`, in one read."""
        if length > self.limit:
            self.exceeded = True
            raise BodyTooLarge(self.limit)
        return await self._content.readexactly(length)


@dataclass(frozen=True)
class Upstream:
    """Where a request goes next: one of this node's backends, or a peer daemon (`peer`)."""

    name: str  # the backend's name, or the peer node's
    url: str  # base URL, no trailing slash
    peer: bool = False


# The client's own request id is replaced by the one this daemon answers with, and its Expect is
# not passed on (see the rules); its own x-hubhop-* headers, on a hop to a peer daemon, are
# replaced by what this daemon tells the peer.
REQUEST_DROPPED = frozenset({REQUEST_ID_HEADER, EXPECT_HEADER})
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

    def __init__(self, settings: HttpSettings, peer_tls: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._peer_tls = peer_tls  # the client context for peers under mutual TLS
        self._pool: UpstreamPool | None = None
        # Peers take a forwarded request only from an address a member's record names: ours is
        # the advertised (else the listen) address, so connections to peers leave from it.
        host = settings.peer_host
        self._peer_source = None if host is None else (host, 0)
        self._urls: dict[str, _UrlParts] = {}
        self.in_flight: Counter[str] = Counter()

    async def start(self) -> None:
        self._pool = UpstreamPool(
            self._settings.max_connections_per_backend,
            self._settings.backend_connect_timeout_s,
            tls=self._peer_tls,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

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
        pool = self._pool
        assert pool is not None, "BackendPool.start() was not awaited"
        peer = isinstance(backend, Upstream) and backend.peer
        url = self._url_parts(backend.url)
        # Over TLS, the peer's certificate must name the node (backend.name) the route chose.
        server_name = backend.name if url.tls else None
        origin = (url.host, url.port, self._peer_source if peer else None, server_name)
        headers = end_to_end(
            request.headers.items(),
            request.headers.getall("Connection", ()),
            also_drop=REQUEST_DROPPED,
            # A hop that says where the request goes replaces what the client said of it.
            drop_prefix=HUBHOP_PREFIX if request_headers is not None else None,
        )
        headers.append((REQUEST_ID_HEADER, extra_headers[REQUEST_ID_HEADER]))
        if request_headers:
            headers.extend(request_headers)
        sent_at = time.perf_counter()
        opened = Opened(self, backend.name, body, pool, origin)
        try:
            # A known length is passed on rather than re-framed as chunked: backends check
            # tensor sizes against it before they read.
            payload, stream, length = await _request_body(request, body)
            method = request.method
            head = request_head(
                method,
                url.path + request.rel_url.raw_path_qs,
                url.host_header,
                headers,
                length,
                chunked=stream is not None and length is None,
            )
            if payload and len(payload) <= INLINE_BODY_BYTES:
                head, payload = head + payload, b""
            deadline = asyncio.get_running_loop().time() + self._settings.backend_timeout_s
            retry = stream is None and method in IDEMPOTENT_METHODS
            while True:
                connection = opened.connection = await pool.acquire(origin, deadline)
                connection.begin(deadline, head_request=method == "HEAD")
                connection.write(head)
                if payload:
                    connection.write(payload)
                if stream is not None:
                    connection.send_body(stream, chunked=length is None)
                try:
                    answer = opened.head = await connection.answer_head()
                    break
                except BrokenAnswer as exc:
                    if not (retry and exc.nothing_received and connection.exchanges > 1):
                        raise
                    retry = False
                    connection.abort()
            backend_ms = (time.perf_counter() - sent_at) * 1000.0
            if peer and (refused := answer.get(REFUSED_HEADER)) is not None:
                assert isinstance(backend, Upstream)
                raise UpstreamRefused(backend, answer.status, refused, answer.get("retry-after"))
            if before_answer is not None:
                await before_answer()
            ours = dict(extra_headers)
            ours[SERVER_TIMING] = (
                timing(route_ms, backend_ms, answer.get(SERVER_TIMING))
                if timing is not None
                else f"route;dur={route_ms:.3f}, backend;dur={backend_ms:.3f}"
            )
            # The upstream's own values of the headers this hop sets are replaced by ours.
            headers = end_to_end(answer.headers, answer.connection, ours)
            headers.extend(ours.items())
            opened.headers = CIMultiDict(headers)
            return opened
        except BaseException as exc:
            opened.close()
            if isinstance(exc, ConnectFailed):
                if not isinstance(backend, Upstream):
                    backend = Upstream(backend.name, backend.url)
                raise UpstreamUnreachable(backend, exc) from None
            if isinstance(exc, UPSTREAM_FAILURES):
                raise opened.failure(exc) from None
            raise

    def _url_parts(self, url: str) -> _UrlParts:
        parts = self._urls.get(url)
        if parts is None:
            if len(self._urls) > MAX_URLS_KEPT:  # peers come and go: keep the cache bounded
                self._urls.clear()
            parts = self._urls[url] = _UrlParts.of(url)
        return parts


# Backends and peers whose URLs are kept parsed: far above any cluster's member count.
MAX_URLS_KEPT = 4096

# An upstream's failure to answer (or, for BodyTooLarge and RequestBodyFailed, the client's
# failure to send), as the exchange raises it: the client hears of it (Opened.failure).
UPSTREAM_FAILURES = (BrokenAnswer, TimeoutError, BodyTooLarge, RequestBodyFailed)


@dataclass(frozen=True, slots=True)
class _UrlParts:
    """An upstream's base URL, as a request to it needs it."""

    host: str
    port: int
    host_header: str  # host[:port], as the URL spells it
    path: str  # a path the base URL carries, prefixed to every request's
    tls: bool  # https: only peer daemons under mutual TLS (backends are http://, by config)

    @staticmethod
    def of(url: str) -> _UrlParts:
        parts = urlsplit(url)
        assert parts.hostname is not None, f"{url!r} has no host"  # the config checks this
        tls = parts.scheme == "https"
        return _UrlParts(
            parts.hostname,
            parts.port or (443 if tls else 80),
            parts.netloc.rpartition("@")[2],
            parts.path.rstrip("/"),
            tls,
        )


async def _request_body(
    request: web.Request, body: bytes | LimitedBody | None
) -> tuple[bytes, LimitedBody | None, int | None]:
    """What to send after the head: (bytes written with it, a body to stream after it, the
    Content-Length to announce, None for none or chunked)."""
    if body is None:
        return b"", None, None
    if isinstance(body, bytes):
        return body, None, len(body)
    length = request.content_length
    if length is not None and length <= INLINE_BODY_BYTES:
        try:
            return await body.read_whole(length), None, length
        except (EOFError, OSError, aiohttp.ClientError) as exc:  # the client stopped sending
            raise RequestBodyFailed(f"the request body failed: {exc}") from exc
    return b"", body, length


class Opened:
    """An upstream's answer whose head is in and whose body is not yet read: `relay` streams it
    to the client, `close` drops it (the upstream connection is closed, so the upstream sees
    the request cancelled). Either way the backend's in-flight count goes back down once."""

    def __init__(
        self,
        pool: BackendPool,
        name: str,
        body: bytes | LimitedBody | None,
        upstreams: UpstreamPool,
        origin: Origin,
    ) -> None:
        self.name = name
        self.connection: UpstreamConnection | None = None
        self.head: AnswerHead | None = None
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._streaming: web.StreamResponse | None = None  # the answer, once its head is sent
        self._pool: BackendPool | None = pool
        self._upstreams = upstreams
        self._origin = origin
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
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.abort()
        self._done()

    async def _release(self) -> None:
        """The answer was read to its end: its connection goes back to the pool if it can."""
        connection = self.connection
        if connection is not None:
            if connection.sending:
                await connection.body_sent()
            self.connection = None
            if connection.finish():
                self._upstreams.release(connection, self._origin)
        self._done()

    def _done(self) -> None:
        if self._pool is not None:
            self._pool.in_flight[self.name] -= 1
            self._pool = None

    async def relay(self, request: web.Request) -> web.StreamResponse:
        """Write the answer to the client, streaming its body as it comes."""
        try:
            response = await self._write(request)
            await self._release()
            return response
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            self.close()
            if self._streaming is None:
                raise
            # The client went away mid-answer; nothing is left to tell it.
            log.debug("client %s left while %s was answering", request.remote, self.name)
            return self._streaming
        except UPSTREAM_FAILURES as exc:
            self.close()
            if self._streaming is None:
                raise self.failure(exc) from None
            # The status line is gone: an error event, or a cut connection (hubhop.io.cut_stream).
            log.warning("backend %s failed mid-answer to %s: %s", self.name, request.remote, exc)
            message = (
                f"{self.name} did not finish its answer in time"
                if isinstance(exc, TimeoutError)
                else f"{self.name} failed mid-answer: {exc}"
            )
            return await end_cut_answer(request, self._streaming, message)
        except BaseException:
            self.close()
            raise

    async def _write(self, request: web.Request) -> web.StreamResponse:
        connection, head = self.connection, self.head
        assert connection is not None and head is not None, "relay() of an answer never opened"
        length = head.content_length
        if length is not None and length <= SMALL_ANSWER_BYTES:
            # Read whole and answered in one write: headers and body in one segment.
            pieces = []
            while piece := await connection.read():
                pieces.append(piece)
            return web.Response(
                status=head.status,
                reason=head.reason or None,
                body=pieces[0] if len(pieces) == 1 else b"".join(pieces),
                headers=self.headers,
            )
        response = web.StreamResponse(
            status=head.status, reason=head.reason or None, headers=self.headers
        )
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        self._streaming = response
        while chunk := await connection.read():
            await response.write(chunk)
        await response.write_eof()
        return response
