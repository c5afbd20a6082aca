"""Carrying a sans-IO GossipNode over real sockets: one UDP endpoint, one TCP listener, one timer.

Rules:
- Every input (a datagram, a stream, a timer) is handed to the node with `time.monotonic()` as
  `now` (not `loop.time()`: uvloop's has millisecond resolution, and latency probes on a LAN or
  loopback measure fractions of a millisecond);
  after each one the transport carries out everything the node then wants: datagrams to send,
  push-pull streams to open, events to deliver, and the one timer re-armed for the node's next
  deadline. The node never sees a socket; the transport never decides anything.
- UDP and TCP share the configured address and port number, as memberlist does.
- A push-pull stream is one framed request and one framed reply per connection (frame: 4-byte
  big-endian length, then the sealed bytes, at most MAX_STREAM_BYTES). Every stream is bounded
  in time; a failed or slow one is dropped and counted, never retried here (the node's next
  push-pull round repairs whatever it missed).
- Streams run as tasks whose references are kept until they finish, bounded in number so a
  flood of requests cannot exhaust the process.
- With an emulated WAN (`wan`, a lab feature), every datagram leaves with its send time in an
  envelope (`WanDelay.stamp_datagram`), is held on arrival for the delay from its sender's site
  and handed on with its exact emulated arrival time, send time plus delay
  (`WanDelay.receive_datagram`), and every stream write goes through the sender's delay line,
  keyed by the destination address; without one, straight through.
- Datagrams are read with the kernel's receive stamp (SO_TIMESTAMPNS, on Linux), handed to the
  node as `arrived`: an idle host takes a few hundred microseconds to wake this process, and
  latency probes must not read that wake-up as network latency. Where the stamp is missing,
  `arrived` is the read time. Reads and sends never block: the socket is non-blocking, a full
  send buffer drops the datagram (counted), as a full network queue would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any

from hubhop.core.secure_channel import MAX_STREAM_BYTES
from hubhop.core.swim import GossipEvent, GossipNode
from hubhop.io.wan_delay import DelayedStreamWriter, WanDelay

log = logging.getLogger(__name__)

Address = tuple[str, int]
FRAME_HEADER = struct.Struct(">I")
# A push-pull exchange on loopback or a LAN takes milliseconds; across the country tens. 5 s
# means the peer is gone or stuck, and the next round will try another.
STREAM_TIMEOUT_S = 5.0
# Linux's SO_TIMESTAMPNS (also the control message type carrying the stamp): a struct timespec
# of CLOCK_REALTIME. Python's socket module does not name it.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
# Datagrams read per wake-up before the loop gets a turn: a burst is drained in one go, but a
# flood cannot starve timers and streams.
MAX_READS_PER_WAKE = 64
# Gossip datagrams fit one MTU (swim's body budget); a larger one is malformed, read whole and
# refused by the channel.
MAX_DATAGRAM_BYTES = 65535
# Answers whose processing lag (input read -> answer handed to the socket) is remembered; the
# node is told their median as its reply lag. The median, so that the median of a peer's
# samples (what its estimate is built on) is neither high nor low: a lower quantile read as
# +0.01 ms on every link of the latency benchmark, measured against the 25th percentile. The
# replies that took longer than the median stay within the estimator's spread margin.
LAG_WINDOW = 64
LAG_QUANTILE = 0.5
# Concurrent push-pull streams, in and out. Joining 64 nodes at once stays far below this; a
# flood beyond it is refused rather than queued without bound.
MAX_STREAMS = 64


class GossipTransport:
    def __init__(self, node: GossipNode, bind: Address, wan: WanDelay | None = None) -> None:
        self.node = node
        self.bind = bind
        self.wan = wan
        self.counters: Counter[str] = Counter()
        self._subscribers: list[Callable[[GossipEvent], None]] = []
        self._udp: UdpSocket | None = None
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._input_at: float | None = None  # when the datagram now being answered was read
        self._lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._lags_seen = 0

    def subscribe(self, callback: Callable[[GossipEvent], None]) -> None:
        """Call `callback` with every event the node emits, in order."""
        self._subscribers.append(callback)

    @property
    def now(self) -> float:
        assert self._loop is not None
        return time.monotonic()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._udp = UdpSocket(self.bind, self.counters)
        self._loop.add_reader(self._udp.fileno, self._on_readable)
        self._server = await asyncio.start_server(self._serve_stream, self.bind[0], self.bind[1])
        self.pump()

    def pump(self, made_at: float | None = None) -> None:
        """Carry out what the node wants now, and arm the timer for its next deadline.

        `made_at`: the `now` the node was last called with, told when its datagrams left."""
        if self._closed or self._loop is None:
            return
        now = self.now
        first_send_at: float | None = None
        for data, addr in self.node.datagrams_to_send(now):
            if self._udp is not None:
                sent_at = time.monotonic()
                if first_send_at is None:
                    first_send_at = sent_at
                    if self._input_at is not None:
                        self._note_lag(first_send_at - self._input_at)
                if self.wan is not None:
                    self._udp.sendto(self.wan.stamp_datagram(data, sent_at), addr)
                else:
                    self._udp.sendto(data, addr)
                self.counters["datagrams_sent"] += 1
                self.counters["bytes_sent"] += len(data)
        if made_at is not None and first_send_at is not None:
            self.node.datagrams_left(made_at, first_send_at)
        for addr, request in self.node.streams_to_open(now):
            self._spawn_stream(self._push_pull(addr, request))
        while (event := self.node.next_event()) is not None:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    log.exception("gossip event subscriber failed on %s", event)
        self._arm()

    def _note_lag(self, lag: float) -> None:
        self._lags.append(lag)
        self._lags_seen += 1
        # Every 8th answer (not each one: this is the receive path) once there are 8.
        if self._lags_seen % 8 == 0:
            ordered = sorted(self._lags)
            self.node.reply_lag_s = ordered[int(LAG_QUANTILE * (len(ordered) - 1))]

    def _arm(self) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.node.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_later(max(0.0, deadline - self.now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.now
        self.node.handle_timer(now)
        self.pump(made_at=now)

    def _on_readable(self) -> None:
        assert self._udp is not None
        for _ in range(MAX_READS_PER_WAKE):
            got = self._udp.receive()
            if got is None:
                break
            data, addr, arrived = got
            self.counters["datagrams_received"] += 1
            self.counters["bytes_received"] += len(data)
            if self.wan is not None:
                self.wan.receive_datagram(data, addr, arrived, self._deliver)
            else:
                self._deliver(data, addr, arrived)

    def _deliver(self, data: bytes, addr: Address, arrived: float) -> None:
        """A datagram to the node (after the emulated WAN's delay, when there is one), and
        what the node then wants carried out."""
        if self._closed:
            return
        self._input_at = self.now
        self.node.receive_datagram(data, addr, self._input_at, arrived)
        self.pump()
        self._input_at = None

    def _spawn_stream(self, coro: Coroutine[Any, Any, None]) -> None:
        if len(self._streams) >= MAX_STREAMS:
            self.counters["streams_refused"] += 1
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _push_pull(self, addr: Address, request: bytes) -> None:
        try:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                reader, raw_writer = await asyncio.open_connection(addr[0], addr[1])
                writer = self._delayed(raw_writer, addr[0])
                try:
                    writer.write(FRAME_HEADER.pack(len(request)) + request)
                    await writer.drain()
                    reply = await _read_frame(reader)
                finally:
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, FrameTooLarge) as exc:
            self.counters[f"stream_out_failed_{type(exc).__name__}"] += 1
            return
        self.counters["streams_out"] += 1
        if reply:
            self.node.receive_stream_reply(reply, addr, self.now)
        self.pump()

    def _delayed(
        self, writer: asyncio.StreamWriter, dst_host: str
    ) -> asyncio.StreamWriter | DelayedStreamWriter:
        return writer if self.wan is None else self.wan.wrap_stream_writer(writer, dst_host)

    async def _serve_stream(
        self, reader: asyncio.StreamReader, raw_writer: asyncio.StreamWriter
    ) -> None:
        peer = raw_writer.get_extra_info("peername")
        writer = self._delayed(raw_writer, str(peer[0]) if peer else "")
        task = asyncio.current_task()
        if task is not None and len(self._streams) >= MAX_STREAMS:
            self.counters["streams_refused"] += 1
            writer.close()
            return
        if task is not None:
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
        try:
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                request = await _read_frame(reader)
                reply = self.node.receive_stream_request(request, self.now)
                writer.write(FRAME_HEADER.pack(len(reply)) + reply)
                await writer.drain()
            self.counters["streams_in"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, FrameTooLarge) as exc:
            self.counters[f"stream_in_failed_{type(exc).__name__}"] += 1
        finally:
            writer.close()
        self.pump()

    async def leave(self, wait_s: float) -> None:
        """Say goodbye to the cluster and give the goodbye up to `wait_s` to go out."""
        self.node.leave(self.now)
        self.pump()
        await asyncio.sleep(wait_s)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._udp is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._udp.fileno)
            self._udp.close()
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        if self.wan is not None:
            self.wan.close()


class FrameTooLarge(Exception):
    pass


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
    if length > MAX_STREAM_BYTES:
        raise FrameTooLarge(length)
    return await reader.readexactly(length)


class UdpSocket:
    """The gossip UDP socket: non-blocking reads with the kernel's receive stamp, and sends."""

    def __init__(self, bind: Address, counters: Counter[str]) -> None:
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._counters = counters
        try:
            self._sock.setblocking(False)
            self.stamped = False
            if sys.platform == "linux":
                self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.stamped = True
            self._sock.bind(bind)
        except OSError:
            self._sock.close()
            raise
        self._ancillary = socket.CMSG_SPACE(TIMESPEC.size)
        self._closed = False

    @property
    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> tuple[bytes, Address, float] | None:
        """One waiting datagram, its sender and when it arrived (monotonic); None: none waits."""
        while True:
            try:
                data, ancillary, _, addr = self._sock.recvmsg(MAX_DATAGRAM_BYTES, self._ancillary)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError:
                # ICMP port unreachable from a peer that is gone: the failure detector's business.
                self._counters["udp_errors"] += 1
                continue
            now = time.monotonic()
            arrived = now
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = TIMESPEC.unpack(payload[: TIMESPEC.size])
                    arrived = now - max(0.0, time.time() - (sec + nsec * 1e-9))
            return data, (str(addr[0]), int(addr[1])), arrived

    def sendto(self, data: bytes, addr: Address) -> None:
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            self._counters["udp_send_dropped"] += 1
        except OSError:
            self._counters["udp_errors"] += 1

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._sock.close()
