"""The emulated WAN at one site: hold each datagram or stream write for its one-way delay.

A daemon bound to its own 127.x address wraps what it sends: `WanDelay.delay_s(dst_host)` asks
the model (`hubhop.wan.model`) for this datagram's delay from our site to the site whose daemon
binds `dst_host`, and `send_datagram` hands the datagram to the socket that much later. Only the
sender delays, so a round trip between two daemons is both one-way delays, as on a real WAN.

Datagrams can instead be delayed where they arrive (`receive_datagram`, what the gossip
transport does): held for the delay from the SENDER's site, then delivered with the exact
emulated arrival time, the kernel's receive stamp plus the delay. The link is the same (every
datagram between two emulating daemons is delayed once, by its pair's model), but a host that
wakes late (tenths of a ms when 24 Python daemons share two cores, measured) only processes the
datagram late: its timestamps, and so every latency probe, still see the emulated network and
not this host's scheduler.

With receive-side holding, each datagram can carry its send time (`stamp_datagram`, an
envelope of 9 bytes put on by the sending daemon just before its sendto): the emulated arrival
is then the send time plus the delay, exactly as on a wire. Without the stamp it is the kernel's
receive stamp plus the delay, which also counts the sender's syscall and the loopback path
(tens of microseconds per datagram with two dozen daemons on two cores, measured: 0.08 ms
per round trip, a quarter of a 0.3 ms intra-city link). Every daemon of one emulated WAN runs
on one host, so the send time is on the receiver's clock (CLOCK_MONOTONIC is machine-wide).
An envelope that is missing, or whose time cannot be (ahead of now, or older than
MAX_STAMP_AGE_S), falls back to the kernel's stamp and is counted as `unstamped`.

Rules:
- Never blocks: a send is put on a schedule and the call returns. The schedule is one heap of
  (due time, sequence) entries and one timer armed for its head; everything due is carried out
  in heap order when the timer fires. `close()` cancels everything still pending.
- Precision: the event loop's own timers wake on whole milliseconds (epoll and libuv both count
  in ms), so a 0.2 ms intra-city delay would become 1 ms on the stock loop and 0 under uvloop.
  On Linux the schedule therefore wakes through a timerfd armed at an absolute CLOCK_MONOTONIC
  time (`time.monotonic`'s clock) and watched with `loop.add_reader`: tens of microseconds late
  instead of up to a millisecond. Elsewhere (or with `precise=False`) it falls back to
  `loop.call_later`, which keeps order and counts but not sub-millisecond delays.
- Datagrams: an unknown destination (outside the topology) goes at once; a lost or partitioned
  one is dropped and counted; pending datagrams are bounded (beyond the bound: dropped and
  counted). Datagrams may overtake each other under jitter, as UDP does.
- Streams keep byte ORDER: each write is due at max(the previous write's due time, now + this
  write's delay), and entries of equal due time run in the order they were made. A stream is
  reliable, so loss does not apply to it (TCP turns loss into delay; that delay is not
  modelled); a partition breaks it (the connection is aborted, the write raises
  ConnectionResetError). Bytes held back are bounded by back-pressure: `drain()` waits while
  more than the high-water mark is pending, as asyncio's own writers do.
- Not emulated: the TCP handshake (a connect costs no emulated round trip) and bandwidth.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import random
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from hubhop.wan.model import WanModel

log = logging.getLogger(__name__)

Address = tuple[str, int]

# Datagrams held back at once. Gossip and probes send a few hundred datagrams a second and hold
# each for at most ~15 ms, so a few dozen are pending; 4096 (about 6 MB of 1400-byte datagrams)
# absorbs any burst we make and bounds memory against a runaway sender.
MAX_PENDING_DATAGRAMS = 4096
# Bytes one stream may hold back before `drain()` waits. The delay line holds rate x delay:
# 4 MiB carries ~3 Gbit/s through a 10 ms link, beyond what loopback emulation needs, and
# bounds what one stream pins in memory.
STREAM_HIGH_WATER_BYTES = 4 * 1024 * 1024
# Entries due within this much of the one being carried out go with it: one wake-up instead of
# several, at most 20 us early, below what the timer itself scatters by.
BATCH_WINDOW_S = 20e-6
# A timerfd wake-up reaches Python late: ~30 us after a short sleep, ~150 us after a 5 ms one
# (the idle CPU has gone into a deeper sleep state). Measured here, that would add 3% to a 5 ms
# link, the whole accuracy budget of the latency benchmark. So the schedule learns the
# lateness per length of sleep (these bucket edges) and arms the timer that much early.
SLEEP_BUCKETS_S = (0.5e-3, 2e-3, 8e-3)
# Lateness beyond this is the loop being busy, not the wake-up: arming earlier for it would
# only send early. Samples are clipped here.
MAX_LEAD_S = 0.25e-3
# Learning gain of the lateness average: RFC 6298's 1/8, smooth over a few dozen wake-ups.
LEAD_GAIN = 1 / 8

# The send-time envelope: one marker byte the secure channel never starts with (its version byte
# is 1), then the sender's time.monotonic() as a big-endian double.
STAMP_MARKER = 0xE7
STAMP = struct.Struct(">Bd")
# A stamp older than this on arrival is not from this machine's clock (or the receiver was
# stopped): the kernel's receive stamp is used instead. A datagram on loopback spends
# microseconds between the two; even a daemon paused for a second would be within this.
MAX_STAMP_AGE_S = 10.0

# Delayed datagrams whose lateness is remembered for `lateness_ms`: a few seconds' worth.
LATENESS_WINDOW = 256

# Linux timerfd, through ctypes (os.timerfd_* arrives only in Python 3.13).
_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class DatagramSink(Protocol):
    """Where a delayed datagram goes: an asyncio DatagramTransport, or gossip's own socket."""

    def sendto(self, data: bytes, addr: Address) -> None: ...

    def is_closing(self) -> bool: ...


@dataclass
class WanCounters:
    sent: int = 0  # datagrams handed to their socket after the delay
    received: int = 0  # datagrams delivered after the delay (receive-side emulation)
    unstamped: int = 0  # received without a usable send time: timed from the kernel's stamp
    dropped_loss: int = 0  # datagrams the model lost
    dropped_partition: int = 0  # datagrams and stream writes across an active partition
    dropped_overflow: int = 0  # datagrams beyond MAX_PENDING_DATAGRAMS
    dropped_closed: int = 0  # datagrams whose socket had closed when they fell due
    stream_writes: int = 0  # stream writes handed to their writer after the delay


class WanDelay:
    """The emulated WAN as seen from one site: delays, drops and counts what this site sends."""

    def __init__(
        self,
        model: WanModel,
        own_site: str,
        rng: random.Random,
        *,
        max_pending_datagrams: int = MAX_PENDING_DATAGRAMS,
        stream_high_water_bytes: int = STREAM_HIGH_WATER_BYTES,
        precise: bool = True,
    ) -> None:
        if own_site not in model.sites:
            raise ValueError(f"{own_site!r} is not a site of topology {model.topology.name!r}")
        if max_pending_datagrams < 1 or stream_high_water_bytes < 1:
            raise ValueError("max_pending_datagrams and stream_high_water_bytes must be >= 1")
        self.model = model
        self.own_site = own_site
        self.counters = WanCounters()
        self._rng = rng
        self._max_pending = max_pending_datagrams
        self._high_water = stream_high_water_bytes
        self._want_precise = precise
        self._schedule: _Schedule | None = None
        self._pending_datagrams = 0
        self._streams: set[DelayedStream] = set()
        self._closed = False
        self._lateness: deque[float] = deque(maxlen=LATENESS_WINDOW)

    # Delays ---------------------------------------------------------------------------------

    def delay_s(self, dst_host: str, *, lossy: bool = True) -> float | None:
        """One-way delay to `dst_host` in seconds for a datagram (or, not `lossy`, a stream
        write: TCP hides loss); None: it is dropped. A host outside the topology (a local
        backend, a client) gets no delay."""
        dst_site = self.model.site_of_host(dst_host)
        if dst_site is None:
            return 0.0
        delay_ms = self.model.sample_delay_ms(self.own_site, dst_site, self._rng, lossy=lossy)
        return None if delay_ms is None else delay_ms / 1000.0

    @property
    def precise(self) -> bool:
        """True when the schedule wakes through a timerfd (sub-millisecond delays hold).
        Known from the first delayed send on, when the schedule is made on the running loop."""
        return self._schedule is not None and self._schedule.precise

    @property
    def pending_datagrams(self) -> int:
        return self._pending_datagrams

    # Datagrams ------------------------------------------------------------------------------

    def send_datagram(self, transport: DatagramSink, data: bytes, addr: Address) -> None:
        """Send `data` to `addr` after the emulated delay; never blocks."""
        if self._closed:
            self.counters.dropped_closed += 1
            return
        dst_site = self.model.site_of_host(addr[0])
        if dst_site is not None and self.model.is_partitioned(self.own_site, dst_site):
            self.counters.dropped_partition += 1
            return
        delay = self.delay_s(addr[0])
        if delay is None:
            self.counters.dropped_loss += 1
            return
        if delay <= 0.0:
            self._send_now(transport, data, addr)
            return
        if self._pending_datagrams >= self._max_pending:
            self.counters.dropped_overflow += 1
            return
        self._pending_datagrams += 1
        self._get_schedule().at(
            (due := time.monotonic() + delay), lambda: self._send_due(transport, data, addr, due)
        )

    def _send_due(self, transport: DatagramSink, data: bytes, addr: Address, due: float) -> None:
        self._pending_datagrams -= 1
        self._lateness.append(time.monotonic() - due)
        self._send_now(transport, data, addr)

    @staticmethod
    def stamp_datagram(data: bytes, sent_at: float) -> bytes:
        """`data` in the send-time envelope: `sent_at` is time.monotonic() just before the
        sendto. The receiving daemon's `receive_datagram` takes the envelope off."""
        return STAMP.pack(STAMP_MARKER, sent_at) + data

    def _unstamp(self, data: bytes, arrived: float, now: float) -> tuple[bytes, float]:
        """The datagram without its envelope, and when it left (or `arrived`, counted as
        unstamped, when there is no usable send time)."""
        if len(data) >= STAMP.size and data[0] == STAMP_MARKER:
            _, sent_at = STAMP.unpack_from(data)
            if 0.0 <= now - sent_at <= MAX_STAMP_AGE_S:
                return data[STAMP.size :], sent_at
            data = data[STAMP.size :]
        self.counters.unstamped += 1
        return data, arrived

    def receive_datagram(
        self,
        data: bytes,
        addr: Address,
        arrived: float,
        deliver: Callable[[bytes, Address, float], None],
    ) -> None:
        """Hold a datagram from `addr` for the emulated one-way delay from the sender's site,
        then `deliver(data, addr, at)` with `at` its exact emulated arrival time: its send time
        (from the envelope, taken off) plus that delay, however late this busy process gets
        round to delivering it. `arrived` (the kernel's receive stamp) stands in for the send
        time when the datagram carries none. Never blocks; drops are counted."""
        if self._closed:
            self.counters.dropped_closed += 1
            return
        now = time.monotonic()
        data, arrived = self._unstamp(data, arrived, now)
        src_site = self.model.site_of_host(addr[0])
        if src_site is None:
            deliver(data, addr, arrived)
            return
        if self.model.is_partitioned(src_site, self.own_site):
            self.counters.dropped_partition += 1
            return
        delay_ms = self.model.sample_delay_ms(src_site, self.own_site, self._rng)
        if delay_ms is None:
            self.counters.dropped_loss += 1
            return
        due = arrived + delay_ms / 1000.0
        if due <= now:
            self.counters.received += 1
            deliver(data, addr, due)
            return
        if self._pending_datagrams >= self._max_pending:
            self.counters.dropped_overflow += 1
            return
        self._pending_datagrams += 1
        self._get_schedule().at(due, lambda: self._deliver_due(data, addr, due, deliver))

    def _deliver_due(
        self,
        data: bytes,
        addr: Address,
        due: float,
        deliver: Callable[[bytes, Address, float], None],
    ) -> None:
        self._pending_datagrams -= 1
        self._lateness.append(time.monotonic() - due)
        self.counters.received += 1
        deliver(data, addr, due)

    @property
    def lateness_ms(self) -> float | None:
        """The median of how late recent held datagrams were released, in ms: how late this
        busy host wakes. Sent datagrams arrive that much late; received ones keep their exact
        emulated arrival time as their stamp, and are only processed late."""
        if not self._lateness:
            return None
        return 1000.0 * sorted(self._lateness)[len(self._lateness) // 2]

    def _send_now(self, transport: DatagramSink, data: bytes, addr: Address) -> None:
        if transport.is_closing():
            self.counters.dropped_closed += 1
            return
        transport.sendto(data, addr)
        self.counters.sent += 1

    # Streams --------------------------------------------------------------------------------

    def stream(
        self,
        dst_host: str,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        abort: Callable[[], None],
    ) -> DelayedStream:
        """A delay line for a byte stream to `dst_host`: `write`/`close` are carried out late,
        in order; `abort` breaks the connection when a partition cuts it."""
        stream = DelayedStream(self, dst_host, write, close, abort)
        if self._closed:
            stream._break(ConnectionResetError("the emulated WAN was closed"), abort=False)
        else:
            self._streams.add(stream)
        return stream

    def wrap_stream_writer(
        self, writer: asyncio.StreamWriter, dst_host: str | None = None
    ) -> DelayedStreamWriter:
        """A StreamWriter look-alike whose writes reach the peer after the emulated delay.

        `dst_host` defaults to the connection's peer address."""
        if dst_host is None:
            peer = writer.get_extra_info("peername")
            dst_host = str(peer[0]) if peer else ""
        return DelayedStreamWriter(self, writer, dst_host)

    async def hold(self, dst_host: str) -> None:
        """Wait out the one-way delay to `dst_host`: a data-plane hop to a peer daemon holds its
        request this long before sending it, and the answer's head as long on its way back.
        ConnectionResetError across an emulated partition."""
        delay = self.delay_s(dst_host, lossy=False)
        if delay is None:
            self.counters.dropped_partition += 1
            raise ConnectionResetError(f"cut by an emulated partition from {dst_host}")
        if delay <= 0.0 or self._closed:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        self._get_schedule().at(time.monotonic() + delay, wake)
        await done

    # Lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel everything pending; later sends are dropped (counted as dropped_closed)."""
        self._closed = True
        if self._schedule is not None:
            self._schedule.close()
            self._schedule = None
        self._pending_datagrams = 0
        for stream in list(self._streams):
            stream._break(ConnectionResetError("the emulated WAN was closed"), abort=False)
        self._streams.clear()

    def _get_schedule(self) -> _Schedule:
        if self._schedule is None:
            self._schedule = _Schedule(asyncio.get_running_loop(), self._want_precise)
        return self._schedule

    def _forget(self, stream: DelayedStream) -> None:
        self._streams.discard(stream)


class DelayedStream:
    """One byte stream's delay line: writes and the final close are carried out in order."""

    def __init__(
        self,
        wan: WanDelay,
        dst_host: str,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        abort: Callable[[], None],
    ) -> None:
        self._wan = wan
        self._dst_host = dst_host
        self._write = write
        self._close = close
        self._abort = abort
        self._last_due = 0.0
        self._pending_bytes = 0
        self._closing = False
        self._closed: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._broken: Exception | None = None

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def closing(self) -> bool:
        """True once closed or broken: no more writes are taken."""
        return self._closing or self._broken is not None

    def write(self, data: bytes) -> None:
        """Queue `data` behind everything written before; ConnectionResetError once broken."""
        if self._broken is not None:
            raise ConnectionResetError(str(self._broken))
        if self._closing:
            raise RuntimeError("write after close")
        if not data:
            return
        delay = self._wan.delay_s(self._dst_host, lossy=False)
        if delay is None:
            self._wan.counters.dropped_partition += 1
            self._break(ConnectionResetError("cut by an emulated partition"), abort=True)
            raise ConnectionResetError("cut by an emulated partition")
        self._pending_bytes += len(data)
        chunk = bytes(data)
        self._wan._get_schedule().at(self._next_due(delay), lambda: self._deliver(chunk))

    def close(self) -> None:
        """Close the stream after every byte already written has gone out (at once if the
        stream is broken: nothing is pending then)."""
        if self._closing:
            return
        self._closing = True
        if self._broken is not None:
            self._close()
            return
        delay = self._wan.delay_s(self._dst_host, lossy=False) or 0.0
        self._wan._get_schedule().at(self._next_due(delay), self._deliver_close)

    async def drain(self) -> None:
        """Wait while more than the high-water mark is held back; raise once broken."""
        while self._broken is None and self._pending_bytes > self._wan._high_water:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)
        if self._broken is not None:
            raise ConnectionResetError(str(self._broken))

    async def wait_sent(self) -> None:
        """Wait until the close (and so every byte before it) has been carried out."""
        if not self._closing and self._broken is None:
            raise RuntimeError("wait_sent() before close()")
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            if self._broken is not None:
                self._closed.set_result(None)
        await asyncio.shield(self._closed)

    def _next_due(self, delay_s: float) -> float:
        due = max(self._last_due, time.monotonic() + delay_s)
        self._last_due = due
        return due

    def _deliver(self, chunk: bytes) -> None:
        if self._broken is not None:
            return
        self._pending_bytes -= len(chunk)
        self._write(chunk)
        self._wan.counters.stream_writes += 1
        if self._pending_bytes <= self._wan._high_water:
            self._wake_drain()

    def _deliver_close(self) -> None:
        if self._broken is None:
            self._close()
        self._finish()

    def _break(self, exc: Exception, *, abort: bool) -> None:
        if self._broken is not None:
            return
        self._broken = exc
        self._pending_bytes = 0
        if abort:
            self._abort()
        self._wake_drain()
        self._finish()

    def _wake_drain(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _finish(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._wan._forget(self)


class DelayedStreamWriter:
    """An asyncio.StreamWriter whose bytes reach the peer after the emulated one-way delay.

    Offers what a framed request/reply exchange uses: write, writelines, drain, close,
    wait_closed, is_closing, get_extra_info. The wrapped writer is `.writer`."""

    def __init__(self, wan: WanDelay, writer: asyncio.StreamWriter, dst_host: str) -> None:
        self.writer = writer
        self._line = wan.stream(dst_host, writer.write, writer.close, writer.transport.abort)

    @property
    def pending_bytes(self) -> int:
        return self._line.pending_bytes

    def write(self, data: bytes) -> None:
        self._line.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self._line.write(b"".join(data))

    async def drain(self) -> None:
        await self._line.drain()
        await self.writer.drain()

    def close(self) -> None:
        self._line.close()

    def is_closing(self) -> bool:
        return self._line.closing or self.writer.is_closing()

    async def wait_closed(self) -> None:
        await self._line.wait_sent()
        await self.writer.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.writer.get_extra_info(name, default)


class _Schedule:
    """A heap of (due, sequence, action) and one wake-up armed for its head."""

    def __init__(self, loop: asyncio.AbstractEventLoop, precise: bool) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._armed_for: float | None = None
        self._armed_target = 0.0
        self._armed_bucket = 0
        self._lead_s = [0.0] * (len(SLEEP_BUCKETS_S) + 1)
        self._handle: asyncio.TimerHandle | None = None
        self._timerfd = _TimerFd.open() if precise else None
        if self._timerfd is not None:
            loop.add_reader(self._timerfd.fd, self._on_timerfd)

    @property
    def precise(self) -> bool:
        return self._timerfd is not None

    def at(self, due: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._sequence), action))
        if self._armed_for is None or due < self._armed_for:
            self._arm(due)

    def _arm(self, due: float) -> None:
        self._armed_for = due
        sleep = due - time.monotonic()
        if self._timerfd is not None:
            # Early by the lateness learnt for sleeps this long; never so early that the wake-up
            # would come before there is anything to send (that would only spin).
            bucket = bisect.bisect(SLEEP_BUCKETS_S, sleep)
            lead = self._lead_s[bucket]
            self._armed_bucket = bucket
            self._armed_target = due - lead if sleep > lead else due
            self._timerfd.arm(self._armed_target)
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(0.0, sleep), self._run_due)

    def _on_timerfd(self) -> None:
        assert self._timerfd is not None
        self._timerfd.consume()
        if self._armed_for is not None:
            late = min(max(time.monotonic() - self._armed_target, 0.0), MAX_LEAD_S)
            bucket = self._armed_bucket
            self._lead_s[bucket] += (late - self._lead_s[bucket]) * LEAD_GAIN
        self._run_due()

    def _run_due(self) -> None:
        self._handle = None
        self._armed_for = None
        horizon = time.monotonic() + BATCH_WINDOW_S
        while self._heap and self._heap[0][0] <= horizon:
            _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                log.exception("emulated WAN: a delayed send failed")
        if self._heap:
            self._arm(self._heap[0][0])

    def close(self) -> None:
        self._heap.clear()
        self._armed_for = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._timerfd is not None:
            self._loop.remove_reader(self._timerfd.fd)
            self._timerfd.close()
            self._timerfd = None


class _TimerFd:
    """A Linux timerfd on CLOCK_MONOTONIC, armed at absolute times; None where unavailable."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd

    @classmethod
    def open(cls) -> _TimerFd | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            create = libc.timerfd_create
            settime = libc.timerfd_settime
        except (OSError, AttributeError):
            return None
        create.argtypes = [ctypes.c_int, ctypes.c_int]
        create.restype = ctypes.c_int
        settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        settime.restype = ctypes.c_int
        fd = create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.warning(
                "emulated WAN: no timerfd (errno %d); using loop timers", ctypes.get_errno()
            )
            return None
        return cls(libc, fd)

    def arm(self, when: float) -> None:
        # An all-zero it_value disarms the timer, so a due time at or before 0 becomes 1 ns.
        ns = max(1, int(when * 1e9))
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
        if self._libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    def consume(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)
