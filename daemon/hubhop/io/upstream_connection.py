"""One keep-alive HTTP/1.1 connection to an upstream (a backend or a peer daemon), carrying one
exchange at a time.

Rules:
- An exchange runs `begin` (the answer's reader, the deadline), the request written (`write`,
  and `send_body` for a body streamed after the head), `answer_head`, `read` until it gives
  b"", `body_sent` when a body was streamed (an upstream may answer before reading all of it:
  the exchange is over when both are done), then `finish`, which says whether the connection
  may carry another exchange. The messages themselves are hubhop.io.http1_messages'.
- Writes respect the transport's buffer: a streamed body's next piece waits while the
  transport has paused writing (pause_writing/resume_writing), so a fast client's upload to a
  slow upstream is held here no further than the transport's high-water mark.
- The answer's body is read with backpressure: once more than READ_HIGH_WATER bytes wait for
  the consumer, the socket is not read until the consumer takes them.
- Any failure fails the exchange: a broken answer, the connection lost, the deadline passed
  (TimeoutError), the streamed request body failing (RequestBodyFailed). It is raised to
  whoever waits on the exchange, and the connection is closed at once (aborted). An exchange
  given up by its caller (`abort`: a hedge copy that lost, a client that left) ends the same
  way, so the upstream sees its client leave and stops working for it.
- The connection is never used again after an exchange that did not end cleanly; the pool is
  told when the connection closes (`on_close`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import cast

from hubhop.io.http1_messages import (
    CHUNK_END,
    LAST_CHUNK,
    AnswerHead,
    BrokenAnswer,
    ResponseReader,
    chunk_header,
)

# Answer bytes held for a slow consumer before the socket is left unread: two of the 64 KiB
# pieces a loopback read gives, so a fast upstream is not paused on every read, and a
# 200 MB answer to a slow client holds at most this here (the kernel's buffers hold the rest).
READ_HIGH_WATER = 128 * 1024


class RequestBodyFailed(Exception):
    """The request body streamed to the upstream failed at its source (the client): its
    cause is the exception the body raised."""


class UpstreamConnection(asyncio.Protocol):
    """An asyncio protocol for one upstream connection; see the module's rules."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_close: Callable[[UpstreamConnection], None]
    ) -> None:
        self._loop = loop
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.exchanges = 0  # begun on this connection: more than one means it was reused
        self.idle_since = 0.0  # loop time it last went back to the pool
        self._reader: ResponseReader | None = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None  # answer_head or read waits here
        self._timer: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they are one.
        # TCP_NODELAY is already set: asyncio and uvloop set it on every TCP transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:  # bytes nobody asked for: the upstream is out of step
            self._fail(BrokenAnswer("the upstream sent bytes between exchanges"))
            return
        try:
            reader.feed(data)
        except BrokenAnswer as exc:
            self._fail(exc)
            return
        if reader.head is not None:
            self._wake()
            if reader.buffered > READ_HIGH_WATER and not self._read_paused:
                assert self._transport is not None
                self._transport.pause_reading()
                self._read_paused = True

    def eof_received(self) -> bool:
        reader = self._reader
        if reader is not None:
            try:
                reader.feed_eof()
            except BrokenAnswer as exc:
                self._fail(exc)
            self._wake()
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reader = self._reader
        if reader is not None and not reader.complete:
            try:
                if exc is not None:  # a reset: whatever was framed by the end is cut short
                    raise BrokenAnswer(
                        f"the connection to the upstream was lost: {exc}",
                        nothing_received=not reader.started,
                    )
                reader.feed_eof()
            except BrokenAnswer as broken:
                self._fail(broken)
            self._wake()
        self._fail(BrokenAnswer("the upstream connection is closed"))
        self._on_close(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The exchange

    @property
    def usable(self) -> bool:
        """Open and ready for an exchange (a pooled connection the upstream may have closed)."""
        transport = self._transport
        return not self.closed and transport is not None and not transport.is_closing()

    def begin(self, deadline: float, head_request: bool = False) -> None:
        """Start an exchange that must end by `deadline` (loop time). `head_request`: the
        request is a HEAD, whose answer has no body."""
        self.exchanges += 1
        self._reader = ResponseReader(head_request)
        self._error = None
        self._timer = self._loop.call_at(deadline, self._time_out)

    def write(self, data: bytes) -> None:
        """Write request bytes (the transport buffers what the socket does not take)."""
        if self._error is not None:
            raise self._error
        assert self._transport is not None
        self._transport.write(data)

    def send_body(self, pieces: AsyncIterable[bytes], chunked: bool) -> None:
        """Stream a request body after the head, as its pieces come, while the answer is
        awaited (an upstream may answer before it has read the body). `chunked`: framed in
        chunks, else the head gave its Content-Length."""
        self._sender = self._loop.create_task(self._send(pieces, chunked))
        self._sender.add_done_callback(self._sent)

    async def answer_head(self) -> AnswerHead:
        """Wait for the answer's head."""
        reader = self._reader
        assert reader is not None, "answer_head() outside an exchange"
        while reader.head is None:
            await self._wait()
        return reader.head

    async def read(self) -> bytes:
        """The answer body's next bytes, as they came; b"" once the answer has ended."""
        reader = self._reader
        assert reader is not None, "read() outside an exchange"
        while True:
            if reader.buffered:
                data = reader.take()
                if self._read_paused:
                    self._read_paused = False
                    assert self._transport is not None
                    self._transport.resume_reading()
                return data
            if reader.complete:
                return b""
            await self._wait()

    @property
    def sending(self) -> bool:
        """A streamed request body is still being sent."""
        return self._sender is not None and not self._sender.done()

    async def body_sent(self) -> None:
        """Wait until the streamed request body has been sent, or has failed (bounded by the
        exchange's deadline). An upstream may answer before it has read the whole body; the
        exchange is over once both are done, as aiohttp's client has it, which also leaves
        the client's connection to this daemon with its body read."""
        if self._sender is not None:
            await asyncio.wait((self._sender,))

    def finish(self) -> bool:
        """End an exchange whose answer was read to its end (and whose body was sent: see
        `body_sent`). True: the connection may carry another; False: it is closed."""
        reader, self._reader = self._reader, None
        self._cancel_timer()
        sender, self._sender = self._sender, None
        if sender is not None and not sender.done():
            sender.cancel()
            self.abort()
            return False
        if reader is None or not reader.reusable or self._error is not None or not self.usable:
            if self._transport is not None:
                self._transport.close()
            return False
        return True

    def close(self) -> None:
        """Close an idle connection, politely (the pool's reaping, the daemon stopping)."""
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Give the exchange up, or close an idle connection: closed at once, so the
        upstream sees its client leave."""
        self._cancel_timer()
        sender, self._sender = self._sender, None
        if sender is not None and not sender.done():
            sender.cancel()
        self._fail(BrokenAnswer("the exchange was given up"))

    # Inside

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send(self, pieces: AsyncIterable[bytes], chunked: bool) -> None:
        async for piece in pieces:
            if not piece:
                continue  # an empty chunk would end a chunked body
            if self._error is not None:
                raise self._error
            assert self._transport is not None
            if chunked:
                self._transport.writelines((chunk_header(len(piece)), piece, CHUNK_END))
            else:
                self._transport.write(piece)
            if self._write_paused:
                await self._drain()
        if chunked:
            self.write(LAST_CHUNK)

    async def _drain(self) -> None:
        while self._write_paused:
            if self._error is not None:
                raise self._error
            waiter = self._drain_waiter = self._loop.create_future()
            await waiter

    def _sent(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and exc is not self._error:
            failure = RequestBodyFailed(f"the request body failed: {exc}")
            failure.__cause__ = exc
            self._fail(failure)

    def _time_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError("the upstream did not answer in time"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: BaseException) -> None:
        """The exchange failed (the first failure counts): tell whoever waits, and close."""
        if self._error is not None:
            return
        self._error = exc
        for waiter in (self._waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        self._drain_waiter = None
        if self._transport is not None and not self.closed:
            self._transport.abort()
