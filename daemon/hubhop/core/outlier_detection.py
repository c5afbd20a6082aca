"""Outlier detection for a node's own backends: eject the one that fails or slows, bring it back
slowly.

The request path tells the detector how each call to a backend ended (`report`); the detector
says which backends changed rotation (`RotationChange`), and how many slots each serves with now
(`slots_of`): all of them in rotation, none when ejected, a growing part in slow start. The
adapter (hubhop.io.backend_health) applies that to admission and to the node's record, and arms
one timer for `next_deadline()`, when it calls `handle_timer(now)`. Envoy's outlier detection is
the model; what differs is said below.

Rules:
- Failures: a 5xx answer (but 501 and 505: the backend does not do what the client asked, which
  is the client's doing), no connection, a broken answer, no answer within the backend timeout
  (a hang). `consecutive_failures` of them in a row eject the backend; any other answer ends the
  run.
- Slowness (what Envoy lacks): an answer is slow when its time to the answer head is above
  `slow_ms` (when set), or above both `slow_min_ms` and `slow_factor` times the backend's own
  baseline. The baseline is an EWMA of its answer times with a small gain (BASELINE_GAIN), so a
  sudden slowdown stands out for many answers while a lasting shift (longer prompts) becomes the
  new normal; it judges only after BASELINE_MIN_ANSWERS answers. Each backend is compared with
  itself, not with its neighbours: a CPU backend next to an H100 is slower by design.
  `consecutive_slow` slow answers in a row eject it; any answer that is not slow ends the run.
  A call timed out, or abandoned before its answer head (its caller gave up), after waiting
  longer than the bound counts as a slow answer too, as its answer would have been at least
  that slow (a timeout is a failure as well). So a hang is caught on one count whether this
  node times out first or the entry upstream does and cancels the call (a node's timeout
  applies to its hops to peers too, so both time out together). Abandoned sooner, a call says
  nothing. Neither feeds the baseline.
- Ejection: for base_ejection_s times the number of ejections, capped at max(base, max). The
  count falls by one for every base_ejection_s the backend then serves in rotation (Envoy
  lowers it on each interval the host stays healthy).
- Bound: a backend is ejected only while the ejected backends' slots stay within
  max_ejected_share of the node's slots, except that one backend may always be (as Envoy: a
  node with one backend can still take it out; the network routes around it). A backend held
  back by the bound stays in rotation and is ejected at its next failure once there is room.
- Slow start: when its ejection ends the backend serves with a tenth of its slots (at least
  one), growing in tenths, linearly over slow_start_s, then all of them. One failure during
  slow start ejects it again at once (slow answers keep their own count).
- Reports about a backend while it is ejected (answers to calls sent before) are ignored.
- `enabled = false`: nothing is ever ejected; reports only keep the status counters.

Pure: no clock, no I/O; `now` is monotonic seconds. Memory is one small record per backend.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from hubhop.core.config import BackendConfig
from hubhop.core.outlier_config import OutlierSettings

# Gain of the baseline EWMA: about the last 32 answers. Small, so five slow answers in a row
# move it by about 15% and still stand out; large enough that a lasting shift in what clients
# ask becomes the baseline within a few dozen answers.
BASELINE_GAIN = 1.0 / 32.0
# Answers a baseline needs before it judges: with fewer it is one or two requests' sizes.
BASELINE_MIN_ANSWERS = 8
# Slow start grows the slots in this many steps: each step changes the node's record, so ten
# bounds the republishes a ramp costs whatever the slot count, and a tenth is where it starts.
RAMP_STEPS = 10


class Rotation(enum.Enum):
    IN = "in"
    EJECTED = "ejected"
    SLOW_START = "slow-start"


class Outcome(enum.Enum):
    """How one call to a backend ended, as the request path saw it."""

    ANSWERED = "answered"  # an answer head came back (its status decides whether it failed)
    UNREACHABLE = "unreachable"  # no connection
    BROKEN = "broken"  # the answer was not HTTP, or the connection broke before its head
    TIMEOUT = "timeout"  # no answer within the backend timeout: a hang
    # The caller left before the answer head came (its client, or the entry node upstream,
    # gave up): the wait so far is a lower bound of the answer time.
    ABANDONED = "abandoned"


# Outcomes whose time is a lower bound of the answer time (the wait before it was given up on):
# over the slow bound they count as slow answers, under it they say nothing of speed.
LOWER_BOUNDS = frozenset({Outcome.TIMEOUT, Outcome.ABANDONED})

# Statuses a backend answers when it does not do what the client asked (Not Implemented, HTTP
# Version Not Supported): the client's doing, not a sign of the backend's health.
CLIENT_CAUSED_5XX = frozenset({501, 505})


def is_failure(outcome: Outcome, status: int = 0) -> bool:
    """Does this outcome count as a failure of the backend?"""
    if outcome is Outcome.ABANDONED:
        return False
    if outcome is not Outcome.ANSWERED:
        return True
    return 500 <= status <= 599 and status not in CLIENT_CAUSED_5XX


@dataclass(frozen=True)
class RotationChange:
    """A backend entered a rotation state, or its slow-start slots changed."""

    backend: str
    rotation: Rotation
    slots: int  # slots it serves with now: 0 ejected, a part in slow start, all when in
    reason: str  # short and stable: "failures", "slow", "failed-in-slow-start", "returned", ...
    detail: str  # one sentence for the log


@dataclass(frozen=True)
class BackendHealth:
    """One backend's state as status shows it."""

    backend: str
    rotation: Rotation
    slots: int
    configured_slots: int
    ejections: int  # the ejection count that sets the next ejection's length
    back_in_s: float | None  # seconds until an ejection ends (None: not ejected)
    reason: str  # why it was last ejected ("" never)
    consecutive_failures: int
    consecutive_slow: int
    baseline_ms: float | None  # None until BASELINE_MIN_ANSWERS answers
    held_back: int  # ejections the max_ejected_share bound kept from happening
    failures: int  # failures reported in all
    slow: int  # slow answers reported in all


class _Backend:
    __slots__ = (
        "answers",
        "back_at",
        "baseline_s",
        "ejections",
        "failures",
        "failures_total",
        "held_back",
        "name",
        "reason",
        "returned_at",
        "rotation",
        "served",
        "slots",
        "slow",
        "slow_total",
        "step",
    )

    def __init__(self, name: str, slots: int, now: float) -> None:
        self.name = name
        self.slots = slots
        self.rotation = Rotation.IN
        self.served = slots  # slots it serves with now
        self.failures = 0
        self.slow = 0
        self.failures_total = 0
        self.slow_total = 0
        self.ejections = 0
        self.back_at = 0.0
        self.returned_at = now  # since when it serves (decays the ejection count)
        self.baseline_s = 0.0
        self.answers = 0
        self.reason = ""
        self.held_back = 0
        self.step = 0  # slow start's step, 1..RAMP_STEPS - 1


class OutlierDetector:
    """Rotation of every backend of one node; see the module rules."""

    def __init__(self, backends: Mapping[str, int], settings: OutlierSettings, now: float) -> None:
        """`backends` maps name to configured slots."""
        self.settings = settings
        self._backends = {name: _Backend(name, slots, now) for name, slots in backends.items()}

    @classmethod
    def for_backends(
        cls, backends: Iterable[BackendConfig], settings: OutlierSettings, now: float
    ) -> OutlierDetector:
        return cls({b.name: b.slots for b in backends}, settings, now)

    # ----------------------------------------------------------------------------------------
    # Questions

    def slots_of(self, backend: str) -> int | None:
        """Slots `backend` serves with now (0: ejected); None for one not fronted here."""
        b = self._backends.get(backend)
        return None if b is None else b.served

    def rotation_of(self, backend: str) -> Rotation | None:
        b = self._backends.get(backend)
        return None if b is None else b.rotation

    def in_rotation(self, backends: Iterable[BackendConfig]) -> tuple[BackendConfig, ...]:
        """`backends` as the node offers them now: the ejected left out, those in slow start
        with the slots they serve with (what the node's record publishes)."""
        offered = []
        for backend in backends:
            served = self.slots_of(backend.name)
            if served is None or served == backend.slots:
                offered.append(backend)
            elif served > 0:
                offered.append(replace(backend, slots=served))
        return tuple(offered)

    def next_deadline(self) -> float | None:
        """When `handle_timer` has something to do: an ejection ends or a ramp step is due."""
        due = [self._next_step(b) for b in self._backends.values()]
        times = [t for t in due if t is not None]
        return min(times) if times else None

    def status(self, now: float) -> list[BackendHealth]:
        return [
            BackendHealth(
                backend=b.name,
                rotation=b.rotation,
                slots=b.served,
                configured_slots=b.slots,
                ejections=b.ejections if ejected else self._decayed(b, now),
                back_in_s=max(0.0, b.back_at - now) if ejected else None,
                reason=b.reason,
                consecutive_failures=b.failures,
                consecutive_slow=b.slow,
                baseline_ms=b.baseline_s * 1000.0 if b.answers >= BASELINE_MIN_ANSWERS else None,
                held_back=b.held_back,
                failures=b.failures_total,
                slow=b.slow_total,
            )
            for b in self._backends.values()
            for ejected in (b.rotation is Rotation.EJECTED,)
        ]

    # ----------------------------------------------------------------------------------------
    # Events

    def report(
        self,
        backend: str,
        outcome: Outcome,
        now: float,
        status: int = 0,
        answer_s: float | None = None,
    ) -> list[RotationChange]:
        """One call to `backend` ended: `outcome`, with the answer's `status` and its time to
        the answer head `answer_s` (None: not timed, e.g. a metadata call). Returns the changes
        this made, timers due by `now` included."""
        changes = self.handle_timer(now)
        b = self._backends.get(backend)
        if b is None or b.rotation is Rotation.EJECTED:
            return changes
        if is_failure(outcome, status):
            b.failures += 1
            b.failures_total += 1
            what = outcome.value if outcome is not Outcome.ANSWERED else f"status {status}"
            if b.rotation is Rotation.SLOW_START:
                return changes + self._eject(
                    b, now, "failed-in-slow-start", f"{what} in slow start"
                )
            if b.failures >= self.settings.consecutive_failures:
                detail = f"{b.failures} failures in a row, the last {what}"
                ejected = self._eject(b, now, "failures", detail)
                if ejected:
                    return changes + ejected
        elif outcome is Outcome.ANSWERED:
            b.failures = 0
        if answer_s is None or not math.isfinite(answer_s) or answer_s < 0:
            return changes
        bound_s = self._slow_bound_s(b)
        if outcome in LOWER_BOUNDS:  # slow, or nothing: no sample for the baseline
            if bound_s is None or answer_s <= bound_s:
                return changes
            return changes + self._slow(b, now, answer_s, bound_s, f"{outcome.value} after")
        if outcome is not Outcome.ANSWERED or is_failure(outcome, status):
            return changes  # a failed answer's time says nothing of the backend's speed
        b.answers += 1
        b.baseline_s = (
            answer_s if b.answers == 1 else b.baseline_s + BASELINE_GAIN * (answer_s - b.baseline_s)
        )
        if bound_s is None or answer_s <= bound_s:
            b.slow = 0
            return changes
        return changes + self._slow(b, now, answer_s, bound_s, "answered in")

    def handle_timer(self, now: float) -> list[RotationChange]:
        """Ejections that ended and ramp steps that came due by `now`."""
        changes = []
        for b in self._backends.values():
            if b.rotation is Rotation.EJECTED and now >= b.back_at:
                b.rotation, b.returned_at = Rotation.SLOW_START, b.back_at
                b.failures = b.slow = 0
                if self._ramp(b, now):
                    changes.append(self._change(b, "returned", "ejection over: all slots"))
                else:
                    detail = f"ejection over: slow start with {b.served} of {b.slots} slots"
                    changes.append(self._change(b, "returned", detail))
            elif b.rotation is Rotation.SLOW_START:
                before = b.served
                if self._ramp(b, now):
                    changes.append(self._change(b, "ramped-up", "slow start over: all slots"))
                elif b.served != before:
                    changes.append(
                        self._change(b, "ramp", f"slow start: {b.served} of {b.slots} slots")
                    )
        return changes

    def reconfigure(
        self, backends: Mapping[str, int], settings: OutlierSettings, now: float
    ) -> list[RotationChange]:
        """New backends or slots, or new settings (a reload). A backend that stays keeps its
        state; its slots in slow start follow the new slot count. Returns the changes."""
        self.settings = settings
        kept = {}
        for name, slots in backends.items():
            b = self._backends.get(name) or _Backend(name, slots, now)
            b.slots = slots
            if b.rotation is Rotation.IN:
                b.served = slots
            elif b.rotation is Rotation.SLOW_START:
                self._ramp(b, now)
            kept[name] = b
        self._backends = kept
        changes = self.handle_timer(now)
        if not settings.enabled:  # switched off: everything back in rotation at once
            for b in kept.values():
                if b.rotation is not Rotation.IN:
                    b.rotation, b.served, b.returned_at = Rotation.IN, b.slots, now
                    changes.append(self._change(b, "disabled", "outlier detection turned off"))
        return changes

    # ----------------------------------------------------------------------------------------
    # Inside

    def _slow(
        self, b: _Backend, now: float, answer_s: float, bound_s: float, how: str
    ) -> list[RotationChange]:
        b.slow += 1
        b.slow_total += 1
        if b.slow < self.settings.consecutive_slow:
            return []
        detail = (
            f"{b.slow} slow answers in a row, the last {how} {answer_s * 1000:.0f} ms"
            f" (slow: over {bound_s * 1000:.0f} ms)"
        )
        return self._eject(b, now, "slow", detail)

    def _slow_bound_s(self, b: _Backend) -> float | None:
        """Above this an answer is slow; None: nothing is slow yet (no bound, no baseline)."""
        s = self.settings
        bounds = []
        if s.slow_ms > 0:
            bounds.append(s.slow_ms / 1000.0)
        if b.answers >= BASELINE_MIN_ANSWERS:
            bounds.append(max(s.slow_min_ms / 1000.0, s.slow_factor * b.baseline_s))
        return min(bounds) if bounds else None

    def _decayed(self, b: _Backend, now: float) -> int:
        """The ejection count once the time served in rotation since `returned_at` took its
        share back (one per base_ejection_s)."""
        served_s = max(0.0, now - b.returned_at)
        return max(0, b.ejections - int(served_s // self.settings.base_ejection_s))

    def _eject(self, b: _Backend, now: float, reason: str, detail: str) -> list[RotationChange]:
        s = self.settings
        if not s.enabled:
            return []
        ejected = sum(o.slots for o in self._backends.values() if o.rotation is Rotation.EJECTED)
        total = sum(o.slots for o in self._backends.values())
        if ejected > 0 and ejected + b.slots > s.max_ejected_share * total:
            b.held_back += 1
            return []
        b.ejections = self._decayed(b, now) + 1
        length = min(s.base_ejection_s * b.ejections, max(s.base_ejection_s, s.max_ejection_s))
        b.rotation, b.served, b.back_at, b.reason = Rotation.EJECTED, 0, now + length, reason
        b.failures = b.slow = 0
        return [self._change(b, reason, f"ejected for {length:g} s: {detail}")]

    def _ramp(self, b: _Backend, now: float) -> bool:
        """Slots of a backend in slow start at `now`; all of them, and IN, once it is over
        (then True)."""
        window = self.settings.slow_start_s
        elapsed = now - b.returned_at
        if window <= 0 or elapsed >= window:
            b.rotation, b.served = Rotation.IN, b.slots
            return True
        # The epsilon: a timer armed for a step's start must find that step begun.
        b.step = max(1, math.floor(elapsed / window * RAMP_STEPS + 1e-9))
        b.served = max(1, min(b.slots, math.ceil(b.slots * b.step / RAMP_STEPS)))
        return False

    def _next_step(self, b: _Backend) -> float | None:
        if b.rotation is Rotation.EJECTED:
            return b.back_at
        if b.rotation is not Rotation.SLOW_START:
            return None
        return b.returned_at + (b.step + 1) * self.settings.slow_start_s / RAMP_STEPS

    @staticmethod
    def _change(b: _Backend, reason: str, detail: str) -> RotationChange:
        return RotationChange(b.name, b.rotation, b.served, reason, f"{b.name}: {detail}")
