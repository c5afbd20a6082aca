"""The asyncio side of admission: requests wait on futures for the slots `core.admission` hands out.

`async with gate.slot(backend, lane, deadline) as ticket:` holds one slot of the backend for the
body; `held = await gate.acquire(backend, lane, deadline)` ... `held.release(measured)` does the
same for a caller whose slot outlives one block (the router holds it until the answer is
written). The decisions are all the core's; this adapter only carries them out:
- A request that has to wait awaits a future, resolved when a release, a cancel or an expiry
  settles its ticket: no polling. One loop timer, armed for the core's `next_deadline()`, calls
  `expire` when nothing else happens.
- A refusal, at once or after waiting, raises `Refused` with the status, the Retry-After and a
  sentence for the client.
- When the waiting task is cancelled (the client went away) its ticket is cancelled, which
  frees its place, or its slot when the slot arrived just as the cancellation did.
- On leaving the body normally the slot is released with the time it was held (monotonic
  clock), which feeds the service-time estimate; leaving by an exception releases it without a
  measurement (a failed request says nothing about service time). A held slot is released
  once: a second release does nothing.
- A load listener (`watch_load`) hears a backend's busy slots and queues after every call that
  may have changed them, so what reads them (this node's own rows in the routing table) is as
  current as admission itself, not as the record last published.

Every future it keeps belongs to a queued ticket, so they are as bounded as the core's queues.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from hubhop.core.admission import Admission, Ticket, TicketState
from hubhop.core.capacity import LoadSample
from hubhop.io.deadline_timer import DeadlineTimer

if TYPE_CHECKING:
    from hubhop.io.backend_health import BackendHealth

# Told a backend's busy slots, queues and service time after admission may have changed them.
LoadListener = Callable[[str, LoadSample], None]


class Refused(Exception):
    """Admission refused the request: answer `status` with `Retry-After: retry_after_s`."""

    def __init__(self, status: int, retry_after_s: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status = status
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.detail = detail or reason

    @classmethod
    def of(cls, ticket: Ticket) -> Refused:
        return cls(ticket.status, ticket.retry_after_s, ticket.reason, ticket.detail)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class HeldSlot:
    """One slot a request holds: `release` gives it back, once."""

    __slots__ = ("_gate", "_since", "ticket")

    def __init__(self, gate: AdmissionGate, ticket: Ticket, since: float) -> None:
        self._gate: AdmissionGate | None = gate
        self._since = since
        self.ticket = ticket

    def release(self, measured: bool = True) -> None:
        """Give the slot back; `measured`: the request was served whole, so the time it held
        the slot is a service-time sample (not after a failure)."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._release(self.ticket, self._since, measured)


class AdmissionGate:
    """Waits for, holds and gives back the slots of one `Admission`, on the running loop."""

    def __init__(self, admission: Admission, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` must be the clock the deadlines given to `slot` are read on."""
        self.admission = admission
        self._clock = clock
        self._waiters: dict[int, asyncio.Future[Ticket]] = {}
        self._timer = DeadlineTimer(self._on_timer, clock)
        self._listener: LoadListener | None = None
        # Outlier detection of these backends (hubhop.io.backend_health), once the app sets it:
        # the request path tells it how each call to a backend ended.
        self.health: BackendHealth | None = None

    def watch_load(self, listener: LoadListener | None) -> None:
        """Tell `listener` every backend's load now, then after each change (None: stop)."""
        self._listener = listener
        if listener is not None:
            for name, sample in self.admission.load().items():
                listener(name, sample)

    @asynccontextmanager
    async def slot(
        self, backend: str, lane: str, deadline: float | None = None
    ) -> AsyncIterator[Ticket]:
        """Hold one slot of `backend` for the body; raises Refused when refused or timed out."""
        held = await self.acquire(backend, lane, deadline)
        try:
            yield held.ticket
        except BaseException:
            held.release(measured=False)
            raise
        held.release()

    async def acquire(self, backend: str, lane: str, deadline: float | None = None) -> HeldSlot:
        """One slot of `backend`, held until its `release`; raises Refused when refused or
        timed out."""
        ticket = await self._acquire(backend, lane, deadline)
        return HeldSlot(self, ticket, self._clock())

    def _release(self, ticket: Ticket, since: float, measured: bool) -> None:
        now = self._clock()
        settled = self.admission.release(ticket, now, now - since if measured else None)
        self._settle(settled, ticket.backend)

    def reconfigure(self, backends: Mapping[str, tuple[int, int]]) -> None:
        """New slots and reserves per backend (a reload); waiters this settles are woken."""
        self._settle(self.admission.reconfigure(backends, self._clock()))
        if self._listener is not None:  # backends new, or back after a reload took them out
            self.watch_load(self._listener)

    def set_ejected(self, backend: str, detail: str) -> None:
        """Take `backend` out of rotation (`detail`: why) or, with "", back in; its waiters are
        refused, and woken."""
        self._settle(self.admission.set_ejected(backend, detail, self._clock()), backend)

    def close(self) -> None:
        """Stop the expiry timer (the loop is going away)."""
        self._timer.cancel()

    async def _acquire(self, backend: str, lane: str, deadline: float | None) -> Ticket:
        ticket, settled = self.admission.offer(backend, lane, self._clock(), deadline)
        self._settle(settled, backend)
        if ticket.state is TicketState.QUEUED:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[ticket.id] = waiter
            self._arm()
            try:
                ticket = await waiter
            except asyncio.CancelledError:
                self._waiters.pop(ticket.id, None)
                # Frees the place, or the slot if it was handed over as we were cancelled.
                self._settle(self.admission.cancel(ticket, self._clock()), backend)
                raise
        if ticket.state is TicketState.REFUSED:
            raise Refused.of(ticket)
        return ticket

    def _settle(self, tickets: Collection[Ticket], backend: str | None = None) -> None:
        """Hand each settled ticket to its waiter, re-arm the timer, and tell the load listener
        about `backend` (the one the call was about) and the settled tickets' backends."""
        for ticket in tickets:
            waiter = self._waiters.pop(ticket.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ticket)
            # A waiter already cancelled cancels its ticket itself, in `_acquire`.
        self._arm()
        if self._listener is not None:
            if backend is not None:
                self._tell(backend)
            for ticket in tickets:  # a waiter admitted or refused: usually `backend` again
                if ticket.backend != backend:
                    self._tell(ticket.backend)

    def _tell(self, backend: str) -> None:
        sample = self.admission.load_of(backend)
        if sample is not None and self._listener is not None:
            self._listener(backend, sample)

    def _arm(self) -> None:
        self._timer.arm(self.admission.next_deadline())

    def _on_timer(self, now: float) -> None:
        self._settle(self.admission.expire(now))
