"""The oracle: a central router with perfect knowledge, the floor the routing benchmark measures
hubhop and the baselines against.

It knows every backend as it truly is (site, models, chip, slots, price, green share, median
prefill and token rate) and the true one-way latency from every entry site to every serving
site, and every request it routes passes through it, so the load it counts is exact: no gossip
lag, no estimates, no backend queues. What hubhop loses against it is the price of not knowing.

Rules:
- Occupancy is exact: `in_flight(site)` counts the requests dispatched there and not yet
  released or cancelled. A backend is never sent more than its slots, so no backend FIFO forms.
- Emergency reserve: a request of another lane may not take a backend's last
  `hubhop.core.capacity.default_emergency_reserve(slots)` slots, the reserve hubhop keeps, so
  the comparison is fair.
- Candidates: backends serving the model (on the chip, when one is asked) whose one-way latency
  from the entry is within the asked bound. When none of them has a slot the request's lane may
  use, `spill` widens the bound as hubhop does (`hubhop.scoring.route.spill_bounds`: `next` to
  the next looser named tier, `any` anywhere, `none` never), to a candidate with such a slot
  only. No candidate at all within the widest bound the request allows: Unroutable (a 503).
- Choice among the candidates with a usable slot: emergency and standard take the least
  expected completion, there + back + median prefill + tokens / token rate (so a slow CPU box
  near by loses to a fast GPU a few ms away); batch takes the lowest price, then the least
  expected completion. Ties go to the backend listed first.
- Nothing usable is free: the request waits in the oracle's own queue, one FIFO per (lane,
  entry, model, chip, bound, spill). Every request of one queue has the same candidates, so only
  a head can be the next to go, and there is no head-of-line blocking inside a queue.
- Invariant: no waiting request has a usable free slot among its candidates. So a release frees
  one slot and at most one request goes: the heads are offered it in lane order (emergency,
  standard, batch), oldest head first within a lane, until one may use it. One release costs
  O(number of queues), never a scan of the waiting requests.
- Bounded: a queue that holds `queue_turns` x the usable slots of its candidates sheds the next
  request (Shed: a 429 with Retry-After), so its backlog is at most that many full turns of the
  capacity it can use. Retry-After is the fastest candidate's expected completion, rounded up
  to whole seconds (at least MIN_RETRY_AFTER_S).
- Nothing is lost silently: every offer ends as exactly one of dispatched, shed, unroutable or
  cancelled (its client left while it waited), and `counters()` counts each, per lane.
- Pure: no clock, no I/O, no randomness. The caller names each request, carries out what each
  call returns, and calls `release` once the request's answer has ended.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hubhop.core.capacity import default_emergency_reserve
from hubhop.core.routing_config import SPILLS
from hubhop.core.tiers import LANES, lane_index, tier_of
from hubhop.scoring.route import spill_bounds

RequestId = int
# entry site -> serving site -> (there, back): one-way ms of the request and of the answer.
OneWayTable = Mapping[str, Mapping[str, tuple[float, float]]]

# One full turn of the capacity a queue can use: a request that would wait longer than every
# usable slot takes to serve once is better told to retry (as a backend's full queue says) than
# left to time out, and the backlog then stays what one turn of that capacity clears.
DEFAULT_QUEUE_TURNS = 1
# The least Retry-After of a shed request, in seconds: what hubhop and the demo backend say on a
# 429 or 503. A longer request is told its fastest candidate's expected completion (rounded up):
# about when a slot it could use frees, at the earliest.
MIN_RETRY_AFTER_S = 1
# The emergency lane: the one that may take a backend's reserved slots.
EMERGENCY = LANES[0]
BATCH = LANES[-1]


@dataclass(frozen=True)
class Backend:
    """One serving site's backend, as it truly is."""

    site: str
    models: tuple[str, ...]
    chip: str
    slots: int
    price: float
    green_share: float
    prefill_ms: float  # the median of its prefill (service) time
    token_rate: float  # tokens per second per request

    def expected_ms(self, there_ms: float, back_ms: float, tokens: int) -> float:
        """Expected completion of a request of `tokens` tokens sent here now, with nothing
        ahead of it: the way there and back, the prefill median, then the decode."""
        return there_ms + back_ms + self.prefill_ms + 1000.0 * tokens / self.token_rate


@dataclass(frozen=True)
class Ask:
    """What one request asks for."""

    model: str
    lane: str = "standard"
    max_one_way_ms: float = math.inf  # the asked tier's bound, or an explicit max latency
    spill: str = "next"
    chip: str | None = None
    tokens: int = 0  # the answer's length (max_tokens); 0 for a call that decodes nothing


@dataclass(frozen=True)
class Dispatch:
    """Send the request to `site` now; it holds one of that backend's slots until released."""

    request_id: RequestId
    site: str
    one_way_ms: float  # entry to site
    tier: str  # the tightest tier holding that one-way latency
    spilled: bool  # it left the asked bound, as its spill allowed
    expected_ms: float  # its expected completion when it was sent


@dataclass(frozen=True)
class Queued:
    """The request waits in the oracle's queue; a later release or cancel dispatches it."""

    request_id: RequestId
    waiting: int  # the queue's length, this request included


@dataclass(frozen=True)
class Shed:
    """The request's queue is full: answer 429 with Retry-After."""

    request_id: RequestId
    waiting: int
    limit: int
    retry_after_s: int


@dataclass(frozen=True)
class Unroutable:
    """No backend within the widest bound the request allows serves its model (and chip)."""

    request_id: RequestId
    reason: str


Outcome = Dispatch | Queued | Shed | Unroutable
QueueKey = tuple[str, str, str, str | None, float, str]  # lane, entry, model, chip, bound, spill
# Candidate backends (indices) per bound tried, tightest first.
Tiers = tuple[tuple[int, ...], ...]


@dataclass
class LaneCounters:
    offered: int = 0
    dispatched: int = 0
    queued: int = 0  # offers that had to wait (then dispatched or cancelled)
    shed: int = 0
    unroutable: int = 0
    cancelled: int = 0  # left while waiting
    waiting: int = 0  # now


class _Queue:
    """One FIFO of requests with the same candidates: id -> (arrival number, ask), in order."""

    __slots__ = ("entry", "limit", "tiers", "waiting")

    def __init__(self, entry: str, tiers: Tiers, limit: int) -> None:
        self.entry = entry
        self.tiers = tiers
        self.limit = limit
        self.waiting: dict[RequestId, tuple[int, Ask]] = {}  # id -> (arrival number, ask)

    def head(self) -> tuple[RequestId, int, Ask]:
        request_id = next(iter(self.waiting))
        arrival, ask = self.waiting[request_id]
        return request_id, arrival, ask


class OracleScheduler:
    """The oracle's decisions; see the module's rules."""

    def __init__(
        self,
        backends: Iterable[Backend],
        one_way_ms: OneWayTable,
        queue_turns: int = DEFAULT_QUEUE_TURNS,
    ) -> None:
        self._backends = tuple(backends)
        sites = [b.site for b in self._backends]
        if len(set(sites)) != len(sites):
            raise ValueError(f"a site is listed twice among the backends: {sites}")
        for b in self._backends:
            if b.slots < 1 or not b.token_rate > 0.0 or not b.prefill_ms >= 0.0:
                raise ValueError(f"{b.site}: slots >= 1, token_rate > 0, prefill_ms >= 0")
        if queue_turns < 1:
            raise ValueError(f"queue_turns must be at least 1, got {queue_turns}")
        self._one_way: dict[str, tuple[tuple[float, float], ...]] = {}
        for entry, row in one_way_ms.items():
            missing = [s for s in sites if s not in row]
            if missing:
                raise ValueError(f"no one-way latency from {entry} to {', '.join(missing)}")
            self._one_way[entry] = tuple(row[s] for s in sites)
        self._queue_turns = queue_turns
        self._reserve = [default_emergency_reserve(b.slots) for b in self._backends]
        self._in_flight = [0] * len(self._backends)
        self._dispatched: dict[RequestId, int] = {}  # -> backend index
        self._waiting_in: dict[RequestId, QueueKey] = {}
        self._queues: dict[QueueKey, _Queue] = {}
        self._tiers: dict[tuple[str, str, str | None, float, str], Tiers] = {}
        self._arrivals = itertools.count()
        self._lanes = {lane: LaneCounters() for lane in LANES}
        self._max_waiting = 0

    # What the caller does --------------------------------------------------------------------

    def offer(self, request_id: RequestId, entry: str, ask: Ask) -> Outcome:
        """A new request at `entry`: dispatched, queued, shed or unroutable."""
        if request_id in self._dispatched or request_id in self._waiting_in:
            raise ValueError(f"request {request_id} was offered already")
        if entry not in self._one_way:
            raise ValueError(f"{entry!r} is not an entry site ({', '.join(self._one_way)})")
        if ask.lane not in LANES or ask.spill not in SPILLS:
            raise ValueError(f"lane {ask.lane!r} / spill {ask.spill!r}: one of {LANES} / {SPILLS}")
        counters = self._lanes[ask.lane]
        counters.offered += 1
        tiers = self._candidates(entry, ask)
        if not tiers[-1]:
            counters.unroutable += 1
            return Unroutable(request_id, self._unroutable_reason(entry, ask))
        key: QueueKey = (ask.lane, entry, ask.model, ask.chip, ask.max_one_way_ms, ask.spill)
        queue = self._queues.get(key)
        if queue is None:  # an empty queue is dropped; the invariant says a non-empty one
            picked = self._pick(entry, ask, tiers)  # has no usable free slot
            if picked is not None:
                return self._dispatch(request_id, entry, ask, *picked)
            limit = self._queue_turns * self._usable_slots(tiers[-1], ask.lane)
            queue = self._queues[key] = _Queue(entry, tiers, limit)
        if len(queue.waiting) >= queue.limit:
            counters.shed += 1
            fastest_ms = min(
                self._backends[i].expected_ms(*self._one_way[entry][i], ask.tokens)
                for i in tiers[-1]
            )
            retry_after_s = max(MIN_RETRY_AFTER_S, math.ceil(fastest_ms / 1000.0))
            return Shed(request_id, len(queue.waiting), queue.limit, retry_after_s)
        queue.waiting[request_id] = (next(self._arrivals), ask)
        self._waiting_in[request_id] = key
        counters.queued += 1
        counters.waiting += 1
        self._max_waiting = max(self._max_waiting, len(self._waiting_in))
        return Queued(request_id, len(queue.waiting))

    def release(self, request_id: RequestId) -> list[Dispatch]:
        """A dispatched request's answer has ended: its slot is free. The waiting requests that
        now go (at most one)."""
        index = self._dispatched.pop(request_id, None)
        if index is None:
            raise ValueError(f"request {request_id} is not in flight")
        self._in_flight[index] -= 1
        return self._offer_freed()

    def cancel(self, request_id: RequestId) -> list[Dispatch]:
        """The client left: a waiting request leaves its queue (nothing else goes: its queue's
        next request has the same candidates), a dispatched one is released. An id the oracle
        no longer holds is ignored, so a cancel may follow a release safely."""
        if request_id in self._dispatched:
            return self.release(request_id)
        key = self._waiting_in.pop(request_id, None)
        if key is None:
            return []
        queue = self._queues[key]
        _, ask = queue.waiting.pop(request_id)
        if not queue.waiting:
            del self._queues[key]
        counters = self._lanes[ask.lane]
        counters.cancelled += 1
        counters.waiting -= 1
        return []

    def locate(self, entry: str, ask: Ask) -> tuple[str, bool] | None:
        """Where a call that takes no slot (model metadata, readiness) goes, and whether it
        spilled: the nearest candidate in the first bound that has one. It holds nothing."""
        for bound_index, group in enumerate(self._candidates(entry, ask)):
            if group:
                index = min(group, key=lambda i: (self._one_way[entry][i][0], i))
                return self._backends[index].site, bound_index > 0
        return None

    # What the caller reads -------------------------------------------------------------------

    def in_flight(self, site: str) -> int:
        return self._in_flight[self._index(site)]

    @property
    def waiting(self) -> int:
        return len(self._waiting_in)

    def counters(self) -> dict[str, Any]:
        """Totals, per lane, and in flight per site: JSON-ready."""
        lanes = {lane: vars(c).copy() for lane, c in self._lanes.items()}
        totals = {name: sum(c[name] for c in lanes.values()) for name in vars(LaneCounters())}
        return {
            **totals,
            "max_waiting": self._max_waiting,
            "queues": len(self._queues),
            "in_flight": sum(self._in_flight),
            "in_flight_by_site": {
                b.site: n for b, n in zip(self._backends, self._in_flight, strict=True)
            },
            "lanes": lanes,
        }

    # Inside ----------------------------------------------------------------------------------

    def _index(self, site: str) -> int:
        for index, backend in enumerate(self._backends):
            if backend.site == site:
                return index
        raise KeyError(site)

    def _candidates(self, entry: str, ask: Ask) -> Tiers:
        """Backends serving the ask, per bound its spill allows (each group holds the earlier
        ones too); computed once per (entry, model, chip, bound, spill)."""
        key = (entry, ask.model, ask.chip, ask.max_one_way_ms, ask.spill)
        found = self._tiers.get(key)
        if found is None:
            serving = [
                i
                for i, b in enumerate(self._backends)
                if ask.model in b.models and (ask.chip is None or b.chip == ask.chip)
            ]
            one_way = self._one_way[entry]
            found = self._tiers[key] = tuple(
                tuple(i for i in serving if one_way[i][0] <= bound)
                for bound in spill_bounds(ask.max_one_way_ms, ask.spill)
            )
        return found

    def _usable(self, index: int, lane: str) -> int:
        """Slots of backend `index` a request of `lane` may take right now."""
        reserve = 0 if lane == EMERGENCY else self._reserve[index]
        return self._backends[index].slots - reserve - self._in_flight[index]

    def _usable_slots(self, group: tuple[int, ...], lane: str) -> int:
        reserve = (0,) * len(self._backends) if lane == EMERGENCY else self._reserve
        return max(1, sum(self._backends[i].slots - reserve[i] for i in group))

    def _pick(self, entry: str, ask: Ask, tiers: Tiers) -> tuple[int, bool] | None:
        """The best backend with a usable slot, tightest bound first; whether it spilled."""
        one_way = self._one_way[entry]

        def completion(i: int) -> float:
            return self._backends[i].expected_ms(*one_way[i], ask.tokens)

        for bound_index, group in enumerate(tiers):
            free = [i for i in group if self._usable(i, ask.lane) > 0]
            if not free:
                continue
            if ask.lane == BATCH:
                best = min(free, key=lambda i: (self._backends[i].price, completion(i), i))
            else:
                best = min(free, key=lambda i: (completion(i), i))
            return best, bound_index > 0
        return None

    def _dispatch(
        self, request_id: RequestId, entry: str, ask: Ask, index: int, spilled: bool
    ) -> Dispatch:
        self._in_flight[index] += 1
        self._dispatched[request_id] = index
        self._lanes[ask.lane].dispatched += 1
        backend = self._backends[index]
        there, back = self._one_way[entry][index]
        return Dispatch(
            request_id=request_id,
            site=backend.site,
            one_way_ms=there,
            tier=tier_of(there),
            spilled=spilled,
            expected_ms=backend.expected_ms(there, back, ask.tokens),
        )

    def _offer_freed(self) -> list[Dispatch]:
        """Offer free capacity to the queues' heads, lane first, then oldest; repeat while one
        goes (by the invariant, at most once per freed slot)."""
        gone: list[Dispatch] = []
        while True:
            heads = []
            for key, queue in self._queues.items():
                request_id, arrival, ask = queue.head()
                heads.append((lane_index(ask.lane), arrival, request_id, key))
            heads.sort()
            for _, _, request_id, key in heads:
                queue = self._queues[key]
                _, ask = queue.waiting[request_id]
                picked = self._pick(queue.entry, ask, queue.tiers)
                if picked is None:
                    continue
                del queue.waiting[request_id]
                del self._waiting_in[request_id]
                if not queue.waiting:
                    del self._queues[key]
                self._lanes[ask.lane].waiting -= 1
                gone.append(self._dispatch(request_id, queue.entry, ask, *picked))
                break
            else:
                return gone

    def _unroutable_reason(self, entry: str, ask: Ask) -> str:
        chip = f" on {ask.chip}" if ask.chip else ""
        if not self._candidates(entry, replace(ask, max_one_way_ms=math.inf, spill="none"))[0]:
            return f"no backend serves {ask.model!r}{chip}"
        widest = spill_bounds(ask.max_one_way_ms, ask.spill)[-1]
        return (
            f"no backend serving {ask.model!r}{chip} is within {widest:g} ms one-way of "
            f"{entry} (spill {ask.spill})"
        )
