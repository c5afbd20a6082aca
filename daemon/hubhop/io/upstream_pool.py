"""Pooled keep-alive connections to upstreams (backends and peer daemons), per origin: host,
port, the local address the connections leave from, and the name a TLS upstream's certificate
must carry (None: plain TCP).

Rules:
- At most `limit` connections per origin, open or opening. A request that finds none idle and
  the origin at its limit waits its turn (first come, first served) until its deadline: the
  next connection handed back, or a closed one's place to open its own.
- An idle connection is reused most-recently-used first (the one likeliest still open on both
  sides) and closed once idle for `idle_s` (looked for every `idle_s / 2`); one the upstream
  closed leaves the pool at once.
- Only a connection whose exchange ended cleanly comes back (`release`); any other is closed
  by its exchange, and its place frees once it has closed.
- Connecting is bounded by the connect timeout and by the request's deadline. A connect that
  fails or times out on its own timeout raises ConnectFailed: nothing was sent, so the caller
  may try elsewhere. The request's deadline passing raises TimeoutError.
- A TLS origin (peer daemons under mutual TLS) is connected with the pool's client context and
  its name as server_hostname; the handshake is part of connecting, under the same bounds, and
  a handshake refused (a certificate that does not verify, or names another node) is a
  ConnectFailed like a refused connection. Keep-alive pays for a handshake over many requests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from hubhop.io.upstream_connection import UpstreamConnection

# Origin: (host, port, local address or None, TLS server name or None for plain TCP).
Origin = tuple[str, int, tuple[str, int] | None, str | None]

# aiohttp's client keeps an idle connection 15 s; servers keep theirs longer (aiohttp's and
# nginx's 75 s), so a connection this pool reuses is almost never one the server is closing.
# Servers that keep theirs shorter (uvicorn, 5 s) close it first, which this pool sees at once.
IDLE_S = 15.0


class ConnectFailed(Exception):
    """No connection to the origin: refused, unreachable, or not made within the connect
    timeout. Nothing was sent."""


class _OriginConnections:
    __slots__ = ("idle", "opened", "waiters")

    def __init__(self) -> None:
        self.idle: list[UpstreamConnection] = []  # the most recently used last
        self.opened = 0  # connections open or opening: idle, busy, or being made
        # Each waiter is given a connection, or None: a place is free to open one.
        self.waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()


class UpstreamPool:
    """See the module's rules. Built inside the running loop."""

    def __init__(
        self,
        limit: int,
        connect_timeout_s: float,
        idle_s: float = IDLE_S,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls  # for origins with a server name
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._idle_s = idle_s
        self._origins: dict[Origin, _OriginConnections] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False

    def counts(self, origin: Origin) -> tuple[int, int]:
        """(open or opening, idle) connections to `origin`: for tests and status."""
        state = self._origins.get(origin)
        return (0, 0) if state is None else (state.opened, len(state.idle))

    async def acquire(self, origin: Origin, deadline: float) -> UpstreamConnection:
        """A connection to `origin` for one exchange: an idle one, a new one, or, at the limit,
        the next one handed back. `deadline`: loop time."""
        if self._closed:
            raise ConnectFailed("the pool is closed")
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _OriginConnections()
        idle = state.idle
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.abort()  # closing already: its place frees when it has closed
        if state.opened < self._limit:
            state.opened += 1
        else:
            handed = await self._wait_turn(state, deadline)
            if handed is not None:
                return handed
        try:
            return await self._connect(origin, state, deadline)
        except BaseException:
            state.opened -= 1
            self._give_place(state)
            raise

    def release(self, connection: UpstreamConnection, origin: Origin) -> None:
        """Hand back a connection whose exchange ended cleanly."""
        state = self._origins.get(origin)
        if state is None or self._closed or not connection.usable:
            connection.close()
            return
        waiters = state.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle_since = self._loop.time()
        state.idle.append(connection)
        if self._reaper is None:
            self._reaper = self._loop.call_later(self._idle_s, self._reap)

    async def close(self) -> None:
        """Close every idle connection; those in use close with their exchanges."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for state in self._origins.values():
            idle, state.idle = state.idle, []
            for connection in idle:
                connection.close()
            while state.waiters:
                waiter = state.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(ConnectFailed("the pool is closed"))

    async def _wait_turn(
        self, state: _OriginConnections, deadline: float
    ) -> UpstreamConnection | None:
        waiter: asyncio.Future[UpstreamConnection | None] = self._loop.create_future()
        state.waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection or a place just as it gave up: passed on to the next.
                handed = waiter.result()
                if handed is not None:
                    handed.idle_since = self._loop.time()
                    state.idle.append(handed)
                    self._pass_on(state)
                else:
                    state.opened -= 1
                    self._give_place(state)
            elif waiter in state.waiters:
                state.waiters.remove(waiter)
            raise

    async def _connect(
        self, origin: Origin, state: _OriginConnections, deadline: float
    ) -> UpstreamConnection:
        host, port, local_addr, server_name = origin
        loop = self._loop
        tls = None
        if server_name is not None:
            if self._tls is None:
                raise ConnectFailed(f"{server_name} is reached over TLS, and this pool has none")
            tls = self._tls
        left = deadline - loop.time()
        connect_s = self._connect_timeout_s

        def made() -> UpstreamConnection:
            return UpstreamConnection(loop, lambda closed: self._closed_one(origin, closed))

        try:
            async with asyncio.timeout(min(connect_s, left)):
                _, connection = await loop.create_connection(
                    made, host, port, local_addr=local_addr, ssl=tls, server_hostname=server_name
                )
        except TimeoutError:
            if left < connect_s:
                raise  # the request's deadline, not the connect timeout
            raise ConnectFailed(f"no connection within {connect_s:g} s") from None
        except OSError as exc:
            raise ConnectFailed(str(exc)) from None
        return connection

    def _closed_one(self, origin: Origin, connection: UpstreamConnection) -> None:
        state = self._origins.get(origin)
        if state is None:
            return
        state.opened -= 1
        if connection in state.idle:
            state.idle.remove(connection)
        self._give_place(state)

    def _give_place(self, state: _OriginConnections) -> None:
        """A place under the limit freed: the first waiter opens a connection in it."""
        while state.waiters and state.opened < self._limit:
            waiter = state.waiters.popleft()
            if not waiter.done():
                state.opened += 1
                waiter.set_result(None)

    def _pass_on(self, state: _OriginConnections) -> None:
        """An idle connection came back while someone waits: theirs."""
        while state.waiters and state.idle:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(state.idle.pop())

    def _reap(self) -> None:
        """Close connections idle for `idle_s`; drop origins with nothing left."""
        self._reaper = None
        oldest_kept = self._loop.time() - self._idle_s
        for origin, state in list(self._origins.items()):
            idle = state.idle
            stale = 0
            while stale < len(idle) and idle[stale].idle_since <= oldest_kept:
                stale += 1
            if stale:
                closing, state.idle = idle[:stale], idle[stale:]
                for connection in closing:
                    connection.close()
            if not state.idle and not state.opened and not state.waiters:
                del self._origins[origin]
        if any(state.idle for state in self._origins.values()):
            self._reaper = self._loop.call_later(self._idle_s / 2, self._reap)
