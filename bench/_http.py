"""A minimal HTTP/1.1 keep-alive client for measuring, with as little client cost as possible.

Why not aiohttp's client: it spends a few hundred microseconds of Python per request, as much
as the hop being measured, and its pool may open a new connection where a measurement wants
exactly one persistent connection. Here each request is prebuilt bytes written in one call, and
the answer is parsed only as far as framing needs (status, Content-Length or chunked).

Rules:
- One `Connection` is one TCP connection, used for one request at a time.
- The server must answer with Content-Length or chunked framing; `Connection: close` from the
  server is honoured by reconnecting before the next request (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# Response heads from these servers are a few hundred bytes; 64 KiB bounds a runaway one.
MAX_HEAD_BYTES = 64 * 1024
# A 200 MB upload on loopback takes about a second; 60 s only stops a stuck server.
REQUEST_TIMEOUT_S = 60.0


class HttpError(RuntimeError):
    """The server answered with something this client cannot frame."""


@dataclass(frozen=True)
class GeneratedBody:
    """A large body made piece by piece while it is sent, so neither it nor the client's memory
    holds it whole: `chunks()` yields `size` bytes in all."""

    size: int
    chunks: Callable[[], Iterable[bytes | memoryview]]


Payload = bytes | memoryview | GeneratedBody


@dataclass(frozen=True)
class Request:
    """A prebuilt request: its head and body bytes, and the body to send after them (if any)."""

    prefix: bytes  # head plus any small body: written in one call
    payload: Payload | None = None  # a large body written after the prefix


def _payload_size(payload: Payload | None) -> int:
    if payload is None:
        return 0
    return payload.size if isinstance(payload, GeneratedBody) else len(payload)


@dataclass(frozen=True)
class Response:
    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == wanted:
                return value.strip().decode("latin-1")
        return None


def build_request(
    url: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    payload: Payload | None = None,
) -> Request:
    """Prebuild a request to `url` (scheme://host:port); `payload` follows `body` unbuffered."""
    parts = urlsplit(url)
    length = len(body) + _payload_size(payload)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Request(head + body, payload)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} needs a host and a port")
    return parts.hostname, parts.port


class Connection:
    """One persistent HTTP/1.1 connection to one server."""

    def __init__(self, url: str) -> None:
        self.host, self.port = host_port(url)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connects = 0  # how many TCP connections this object has opened

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=MAX_HEAD_BYTES
        )
        self.connects += 1

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, request: Request) -> Response:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await self._send(request)

    async def _send(self, request: Request) -> Response:
        if self._writer is None:
            await self._connect()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        writer.write(request.prefix)
        if isinstance(request.payload, GeneratedBody):
            for chunk in request.payload.chunks():
                writer.write(chunk)
                await writer.drain()  # one chunk in the send buffer at a time
        elif request.payload is not None:
            writer.write(request.payload)
            await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            await self.close()
            raise HttpError("the server closed the connection before answering") from exc
        status_line, _, rest = head.partition(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            await self.close()
            raise HttpError(f"bad status line {status_line[:80]!r}") from None
        length, chunked, close = _framing(rest)
        if length is not None:
            body = await reader.readexactly(length)
        elif chunked:
            body = await _read_chunked(reader)
        else:
            await self.close()
            raise HttpError("answer has neither Content-Length nor chunked framing")
        if close:
            await self.close()
        return Response(status, head, body)


def _framing(header_block: bytes) -> tuple[int | None, bool, bool]:
    length: int | None = None
    chunked = close = False
    for line in header_block.split(b"\r\n"):
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = b"close" in value.lower()
    return (None if chunked else length), chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
