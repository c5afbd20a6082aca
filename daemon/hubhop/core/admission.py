"""Admission at the serving daemon: slots per backend, a queue per lane, who waits, who is shed.

Each backend a node fronts takes `slots` requests at once. For every request that arrives for a
backend, admission decides whether it takes a slot now, waits, or is refused, and it hands each
freed slot to a waiter. It is a state machine: every call takes `now` (monotonic seconds) and
returns the tickets whose fate it settled, so the adapter (`hubhop.io.admission_gate`) can wake
those requests and answer the ones that were refused.

Rules:
- A ticket is ADMITTED (it holds one slot until `release` or `cancel`), QUEUED, or REFUSED with
  an HTTP status, a Retry-After in whole seconds (at least 1), a short reason and a sentence a
  client can read.
- Reserve: emergency requests may use every slot; standard and batch start only while fewer
  than `slots - emergency_reserve` slots are busy (whoever holds them), so the reserve is free
  for the next emergency.
- Order: a freed slot goes to the oldest emergency waiter, else the oldest standard waiter,
  else the oldest batch waiter (strict priority between lanes, FIFO within one). A new request
  takes a free slot only when nobody of its lane or a more urgent one waits, so nobody
  overtakes anyone within a lane.
- Bounds: a lane's queue holds at most `queue_per_slot[lane]` waiters per slot the lane may use
  (at most `queue_cap`). A request that finds its lane's queue full is refused 429
  "queue-full", except an emergency request: it takes the place of the newest batch waiter,
  else of the newest standard one (batch is shed first, emergency never), and the shed waiter
  is refused 503 "shed". The queues together never hold more than the sum of their bounds.
- Time: a request whose deadline has passed when it arrives is refused 503 "deadline". A waiter
  is refused 503 when its deadline passes ("deadline") or once it has waited `max_wait_s[lane]`
  ("max-wait"): nothing is held for ever. Every call applies the expiries due at its `now`
  first; `next_deadline()` says when the next one falls due, so the adapter arms one timer for
  `expire(now)`.
- Draining: new requests are refused 503 "draining"; waiters and holders are still served.
- Rotation: a backend out of rotation (ejected by outlier detection, hubhop.core.
  outlier_detection) refuses new requests and its waiters 503 "ejected", so their entry nodes
  send them elsewhere; its holders finish. Back in rotation, it takes requests again.
- Reload: `reconfigure` changes slots and reserves in place, so nobody holding or waiting is
  forgotten and the load a record publishes stays true across it.
- A request for a backend this node does not front is refused 503 "unknown-backend" (the
  caller's view of this node is older than a reload).
- Retry-After: the waiters that go before a request of its lane (its lane and the more urgent
  ones) plus one, times the service-time estimate, over the slots the lane may use; rounded up
  to whole seconds, kept between 1 and `max_retry_after_s`.
- Service time: an EWMA of the holding times that `release` is given, with gain
  `service_gain`; the first sample sets it. Until then `load()` says 0 ("not measured yet", as
  the capacity record means it) and Retry-After assumes `assumed_service_s`.

Pure: no clock, no I/O, no asyncio. Memory is bounded by the slots and the queue bounds.
"""

from __future__ import annotations

import enum
import heapq
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hubhop.core.capacity import LoadSample, default_emergency_reserve
from hubhop.core.config import BackendConfig
from hubhop.core.tiers import LANES, lane_index

# HTTP statuses of a refusal. 429: this lane's queue is full, the client sends faster than the
# backend serves and should slow down. 503: the node cannot serve this request now (draining,
# shed, out of time, unknown backend); another node may.
STATUS_QUEUE_FULL = 429
STATUS_UNAVAILABLE = 503

_EMERGENCY = lane_index("emergency")


class TicketState(enum.Enum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    REFUSED = "refused"


@dataclass(frozen=True)
class Ticket:
    """What admission decided about one request, at one moment. `id` names it across calls."""

    id: int
    backend: str
    lane: str
    state: TicketState
    status: int = 0  # HTTP status of a refusal (429 or 503); 0 otherwise
    retry_after_s: int = 0  # whole seconds, at least 1, for a refusal; 0 otherwise
    reason: str = ""  # short and stable, for counters and logs: "queue-full", "shed", ...
    detail: str = ""  # one sentence a client can read


@dataclass(frozen=True)
class AdmissionLimits:
    """Queue bounds, waiting times and smoothing. Tuples are per lane, in `LANES` order."""

    # Waiters per usable slot. Emergency 1: more waiting emergencies than slots means this node
    # is the wrong place, and a quick answer lets the entry node go elsewhere. Standard 4: four
    # rounds of service (160 ms at a 40 ms median) still beat a trip to another node. Batch 16:
    # a backlog deep enough to fill every slot as it frees, while memory stays bounded.
    queue_per_slot: tuple[float, float, float] = (1.0, 4.0, 16.0)
    # Waiters per lane whatever the slots: a 4096-deep queue is over two seconds of work for 64
    # slots at 40 ms, and bounds the memory of a backend configured with huge slot counts.
    queue_cap: int = 4096
    # Longest wait per lane. Emergency 1 s: remote surgery or emergency imaging that has not
    # started within a second is better hedged on another node. Standard 10 s: the CT diagnosis
    # figure apps are built around (an answer within 10 s). Batch 30 s: batch can wait, but a
    # refusal must reach the client before common proxies cut an idle connection (nginx: 60 s).
    max_wait_s: tuple[float, float, float] = (1.0, 10.0, 30.0)
    # EWMA gain of the service-time estimate: TCP's srtt gain (RFC 6298), so a backend that got
    # slower shows within about eight requests and one slow outlier moves it by an eighth.
    service_gain: float = 0.125
    # Service time Retry-After assumes before anything was measured: one second, the floor of
    # Retry-After anyway; on the long side, so clients of an unmeasured backend do not come back
    # too soon.
    assumed_service_s: float = 1.0
    # Largest Retry-After: an estimate beyond a minute is a guess, and a client told to wait that
    # long is better off on another node (its router sees this node's queue in gossip).
    max_retry_after_s: int = 60

    def __post_init__(self) -> None:
        faults = []
        for name, values in (
            ("queue_per_slot", self.queue_per_slot),
            ("max_wait_s", self.max_wait_s),
        ):
            if len(values) != len(LANES) or not all(math.isfinite(v) and v >= 0 for v in values):
                faults.append(f"{name} must be {len(LANES)} finite numbers >= 0, got {values}")
        if self.queue_cap < 0:
            faults.append(f"queue_cap must not be negative, got {self.queue_cap}")
        if not 0.0 < self.service_gain <= 1.0:
            faults.append(f"service_gain must be in (0, 1], got {self.service_gain}")
        if not (math.isfinite(self.assumed_service_s) and self.assumed_service_s > 0):
            faults.append(f"assumed_service_s must be > 0, got {self.assumed_service_s}")
        if self.max_retry_after_s < 1:
            faults.append(f"max_retry_after_s must be at least 1, got {self.max_retry_after_s}")
        if faults:
            raise ValueError("; ".join(faults))


def backend_slots(backends: Iterable[BackendConfig]) -> dict[str, tuple[int, int]]:
    """(slots, emergency reserve) per backend of a config, the reserve its record publishes."""
    return {b.name: (b.slots, default_emergency_reserve(b.slots)) for b in backends}


class _Backend:
    __slots__ = ("bounds", "busy", "ejected", "name", "queues", "reserve", "service_s", "slots")

    def __init__(self, name: str, slots: int, reserve: int, limits: AdmissionLimits) -> None:
        self.name = name
        self.busy = 0
        self.service_s: float | None = None
        self.ejected = ""  # why it is out of rotation; "" while in
        # Per lane, waiting ticket id -> its waiter, oldest first.
        self.queues: tuple[OrderedDict[int, _Waiter], ...] = tuple(OrderedDict() for _ in LANES)
        self.resize(slots, reserve, limits)

    @staticmethod
    def check(name: str, slots: int, reserve: int) -> None:
        if slots < 1 or not 0 <= reserve < slots:
            raise ValueError(
                f"backend {name!r}: need slots >= 1 and 0 <= emergency_reserve < slots,"
                f" got slots {slots}, reserve {reserve}"
            )

    def resize(self, slots: int, reserve: int, limits: AdmissionLimits) -> None:
        self.check(self.name, slots, reserve)
        self.slots = slots
        self.reserve = reserve
        self.bounds = tuple(
            min(limits.queue_cap, math.ceil(per_slot * self.usable(lane)))
            for lane, per_slot in enumerate(limits.queue_per_slot)
        )

    def usable(self, lane: int) -> int:
        return self.slots if lane == _EMERGENCY else self.slots - self.reserve

    def waiting_up_to(self, lane: int) -> int:
        """Waiters served before a newcomer of `lane`: its lane and the more urgent ones."""
        return sum(len(queue) for queue in self.queues[: lane + 1])


def _load_of(b: _Backend) -> LoadSample:
    queues = b.queues
    return (
        float(b.busy),
        (float(len(queues[0])), float(len(queues[1])), float(len(queues[2]))),
        0.0 if b.service_s is None else b.service_s * 1000.0,
    )


@dataclass(frozen=True)
class _Waiter:
    backend: _Backend
    lane: int
    ticket_id: int
    since: float
    expires: float
    expiry_reason: str  # "deadline" or "max-wait": whichever falls first


class Admission:
    """Slots and lane queues of every backend of one node; see the module rules."""

    def __init__(
        self,
        backends: Mapping[str, tuple[int, int]],
        limits: AdmissionLimits | None = None,
    ) -> None:
        """`backends` maps name to (slots, emergency_reserve)."""
        self.limits = limits or AdmissionLimits()
        self._backends = {
            name: _Backend(name, slots, reserve, self.limits)
            for name, (slots, reserve) in backends.items()
        }
        self._draining = False
        self._next_id = 1
        self._waiting: dict[int, _Waiter] = {}
        self._holding: dict[int, tuple[_Backend, int]] = {}
        # (expires, ticket id) of waiters; entries of waiters gone are dropped lazily.
        self._expiries: list[tuple[float, int]] = []
        self._counts: Counter[tuple[str, str, str]] = Counter()

    @classmethod
    def for_backends(
        cls, backends: Iterable[BackendConfig], limits: AdmissionLimits | None = None
    ) -> Admission:
        """From the config's backends, with the reserve the capacity record publishes."""
        return cls(backend_slots(backends), limits)

    # ----------------------------------------------------------------------------------------
    # Questions

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def pending(self) -> int:
        """Requests holding a slot or waiting for one, over all backends."""
        return len(self._holding) + len(self._waiting)

    def next_deadline(self) -> float | None:
        """When the next waiter times out (call `expire` then), or None when nobody waits."""
        while self._expiries and self._expiries[0][1] not in self._waiting:
            heapq.heappop(self._expiries)
        return self._expiries[0][0] if self._expiries else None

    def load(self) -> dict[str, LoadSample]:
        """Per backend: busy slots, waiters per lane, service_ms (0: not measured yet)."""
        return {name: _load_of(b) for name, b in self._backends.items()}

    def load_of(self, backend: str) -> LoadSample | None:
        """One backend's figures as `load()` gives them; None for a backend not fronted here."""
        b = self._backends.get(backend)
        return None if b is None else _load_of(b)

    def counts(self) -> Counter[tuple[str, str, str]]:
        """A copy of the counters, keyed (outcome, lane, reason).

        Outcomes and their reasons: admitted (free-slot, from-queue), queued (busy), refused
        (queue-full, shed, deadline, max-wait, draining, ejected, unknown-backend), released
        (measured, unmeasured), cancelled (waiting, holding).
        """
        return Counter(self._counts)

    # ----------------------------------------------------------------------------------------
    # Events

    def set_draining(self, draining: bool = True) -> None:
        self._draining = draining

    def set_ejected(self, backend: str, detail: str, now: float) -> list[Ticket]:
        """Take `backend` out of rotation (`detail`: why, a sentence for its clients) or, with
        "", back in. Returns the tickets this settled: its waiters, refused "ejected"."""
        settled = self.expire(now)
        b = self._backends.get(backend)
        if b is None:
            return settled
        b.ejected = detail
        if detail:
            for queue in b.queues:
                for waiter in list(queue.values()):
                    self._unqueue(waiter)
                    settled.append(
                        self._refused(waiter.ticket_id, b.name, waiter.lane, "ejected", detail, b)
                    )
        return settled

    def reconfigure(self, backends: Mapping[str, tuple[int, int]], now: float) -> list[Ticket]:
        """The node's backends changed (a reload). Returns the tickets this settled.

        A backend that stays keeps its holders, waiters and service-time estimate under its
        new slots and reserve: more slots go to waiters at once; fewer are reached as holders
        leave, and a queue over its new bound drains rather than being cut. A backend that is
        gone refuses its waiters (503 "unknown-backend") while its holders finish. New ones
        start empty. (`backends` as for the constructor.)
        """
        for name, (slots, reserve) in backends.items():
            _Backend.check(name, slots, reserve)  # all of them before anything changes
        settled = self.expire(now)
        kept = {}
        for name, (slots, reserve) in backends.items():
            b = self._backends.get(name)
            if b is None:
                kept[name] = _Backend(name, slots, reserve, self.limits)
                continue
            b.resize(slots, reserve, self.limits)
            kept[name] = b
        for name, b in self._backends.items():
            if name in kept:
                continue
            for queue in b.queues:
                for waiter in list(queue.values()):
                    self._unqueue(waiter)
                    detail = f"backend {name!r} was taken out of this node's config"
                    settled.append(
                        self._refused(waiter.ticket_id, name, waiter.lane, "unknown-backend",
                                      detail, b)
                    )  # fmt: skip
        self._backends = kept
        for b in kept.values():
            settled += self._fill(b)
        return settled

    def offer(
        self, backend: str, lane: str, now: float, deadline: float | None = None
    ) -> tuple[Ticket, list[Ticket]]:
        """A request arrives; returns its ticket and the other tickets this settled.

        `deadline` is on the same clock as `now`. ValueError for an unknown lane name.
        """
        lane_i = lane_index(lane)
        settled = self.expire(now)
        ticket_id = self._next_id
        self._next_id += 1
        b = self._backends.get(backend)
        if b is None:
            detail = f"this node fronts no backend named {backend!r}"
            ticket = self._refused(ticket_id, backend, lane_i, "unknown-backend", detail, None)
        elif self._draining:
            detail = "this node is draining and takes no new requests; try another node"
            ticket = self._refused(ticket_id, backend, lane_i, "draining", detail, b)
        elif b.ejected:
            ticket = self._refused(ticket_id, backend, lane_i, "ejected", b.ejected, b)
        elif deadline is not None and now >= deadline:
            detail = f"the request's deadline had passed when it reached backend {b.name!r}"
            ticket = self._refused(ticket_id, backend, lane_i, "deadline", detail, b)
        elif b.waiting_up_to(lane_i) == 0 and b.busy < b.usable(lane_i):
            ticket = self._admit(b, lane_i, ticket_id, "free-slot")
        else:
            ticket, shed = self._enqueue(b, lane_i, ticket_id, now, deadline)
            settled += shed
        return ticket, settled

    def release(self, ticket: Ticket, now: float, service_s: float | None = None) -> list[Ticket]:
        """An admitted request finished after holding its slot `service_s` seconds (None: not
        measured, e.g. it failed; NaN and negatives are ignored too). Returns the tickets this
        settled (waiters now admitted). ValueError when the ticket holds no slot.
        """
        held = self._holding.pop(ticket.id, None)
        if held is None:
            raise ValueError(f"ticket {ticket.id} holds no slot")
        b, lane = held
        sample = service_s if service_s is not None and 0 <= service_s < math.inf else None
        if sample is not None:
            old = b.service_s
            b.service_s = sample if old is None else old + self.limits.service_gain * (sample - old)
        measured = sample is not None
        self._counts["released", LANES[lane], "measured" if measured else "unmeasured"] += 1
        return self._free(b, now)

    def cancel(self, ticket: Ticket, now: float) -> list[Ticket]:
        """The request went away: a waiter leaves its queue, a holder frees its slot without a
        measurement. A ticket already refused or released is ignored. Returns what this settled.
        """
        settled = self.expire(now)
        waiter = self._waiting.get(ticket.id)
        if waiter is not None:
            self._unqueue(waiter)
            self._counts["cancelled", LANES[waiter.lane], "waiting"] += 1
            return settled
        held = self._holding.pop(ticket.id, None)
        if held is None:
            return settled
        self._counts["cancelled", LANES[held[1]], "holding"] += 1
        return settled + self._free(held[0], now)

    def expire(self, now: float) -> list[Ticket]:
        """Refuse the waiters whose deadline or longest wait has come; returns their tickets."""
        refused = []
        while self._expiries and self._expiries[0][0] <= now:
            _, ticket_id = heapq.heappop(self._expiries)
            waiter = self._waiting.get(ticket_id)
            if waiter is None:
                continue
            b = waiter.backend
            self._unqueue(waiter)
            if waiter.expiry_reason == "deadline":
                detail = f"the request's deadline passed while it waited for backend {b.name!r}"
            else:
                waited = now - waiter.since
                detail = (
                    f"the request waited {waited:.1f} s for backend {b.name!r}, the longest the"
                    f" {LANES[waiter.lane]} lane waits"
                )
            refused.append(
                self._refused(ticket_id, b.name, waiter.lane, waiter.expiry_reason, detail, b)
            )
        return refused

    # ----------------------------------------------------------------------------------------
    # Inside

    def _admit(self, b: _Backend, lane: int, ticket_id: int, reason: str) -> Ticket:
        b.busy += 1
        self._holding[ticket_id] = (b, lane)
        self._counts["admitted", LANES[lane], reason] += 1
        return Ticket(ticket_id, b.name, LANES[lane], TicketState.ADMITTED)

    def _enqueue(
        self, b: _Backend, lane: int, ticket_id: int, now: float, deadline: float | None
    ) -> tuple[Ticket, list[Ticket]]:
        shed: list[Ticket] = []
        if len(b.queues[lane]) >= b.bounds[lane]:
            victim = self._victim(b) if lane == _EMERGENCY else None
            if victim is None:
                detail = (
                    f"the {LANES[lane]} queue of backend {b.name!r} is full"
                    f" ({len(b.queues[lane])} waiting)"
                )
                return self._refused(ticket_id, b.name, lane, "queue-full", detail, b), shed
            self._unqueue(victim)
            detail = (
                f"the {LANES[victim.lane]} request was shed from backend {b.name!r}"
                " to make room for an emergency request"
            )
            shed.append(self._refused(victim.ticket_id, b.name, victim.lane, "shed", detail, b))
        expires, reason = now + self.limits.max_wait_s[lane], "max-wait"
        if deadline is not None and deadline <= expires:
            expires, reason = deadline, "deadline"
        waiter = _Waiter(b, lane, ticket_id, now, expires, reason)
        b.queues[lane][ticket_id] = waiter
        self._waiting[ticket_id] = waiter
        heapq.heappush(self._expiries, (expires, ticket_id))
        self._counts["queued", LANES[lane], "busy"] += 1
        return Ticket(ticket_id, b.name, LANES[lane], TicketState.QUEUED), shed

    def _victim(self, b: _Backend) -> _Waiter | None:
        """The newest batch waiter, else the newest standard one: who an emergency displaces."""
        for queue in reversed(b.queues[_EMERGENCY + 1 :]):
            if queue:
                return next(reversed(queue.values()))
        return None

    def _unqueue(self, waiter: _Waiter) -> None:
        del waiter.backend.queues[waiter.lane][waiter.ticket_id]
        del self._waiting[waiter.ticket_id]
        if len(self._expiries) > 2 * len(self._waiting) + 64:  # keep the lazy heap bounded
            self._expiries = [(w.expires, i) for i, w in self._waiting.items()]
            heapq.heapify(self._expiries)

    def _free(self, b: _Backend, now: float) -> list[Ticket]:
        """One slot of `b` came free: expire what is due, then hand slots to waiters in order."""
        b.busy -= 1
        return self.expire(now) + self._fill(b)

    def _fill(self, b: _Backend) -> list[Ticket]:
        """Hand the free slots of `b` to its waiters, most urgent lane first."""
        settled = []
        for lane, queue in enumerate(b.queues):
            while queue and b.busy < b.usable(lane):
                waiter = next(iter(queue.values()))
                self._unqueue(waiter)
                settled.append(self._admit(b, lane, waiter.ticket_id, "from-queue"))
            if queue:  # strict priority: a lane still waiting keeps the less urgent ones out
                break
        return settled

    def _refused(
        self, ticket_id: int, backend: str, lane: int, reason: str, detail: str, b: _Backend | None
    ) -> Ticket:
        self._counts["refused", LANES[lane], reason] += 1
        status = STATUS_QUEUE_FULL if reason == "queue-full" else STATUS_UNAVAILABLE
        retry_after = self._retry_after(b, lane)
        return Ticket(
            ticket_id,
            backend,
            LANES[lane],
            TicketState.REFUSED,
            status,
            retry_after,
            reason,
            f"{detail}; retry after {retry_after} s",
        )

    def _retry_after(self, b: _Backend | None, lane: int) -> int:
        """Whole seconds until a request of `lane` could expect a slot (see the rules)."""
        cap = self.limits.max_retry_after_s
        if b is None:
            return cap
        service_s = self.limits.assumed_service_s if b.service_s is None else b.service_s
        seconds = (b.waiting_up_to(lane) + 1) * service_s / b.usable(lane)
        return int(min(cap, max(1, math.ceil(seconds))))
