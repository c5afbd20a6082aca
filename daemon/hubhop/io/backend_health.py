"""The asyncio side of outlier detection: calls to backends report here, ejections reach
admission, the node's record and its status.

Rules:
- The decisions are all hubhop.core.outlier_detection's; this adapter times the calls, carries
  the detector's rotation changes out and drives its timer:
  - `opened` wraps the opening of one call to a backend (up to its answer head): the outcome
    (an answer and its status, no connection, a broken answer, a timeout) and the time to the
    head are reported. A call cancelled because its caller left is reported abandoned, with
    its wait so far: the detector counts it slow only when that wait is already over its
    bound (a hang the entry upstream timed out on first).
  - An ejected backend is out of rotation in admission (new requests and its waiters refused
    503 "ejected", so entries send them elsewhere); in slow start admission gives it the slots
    the detector allows, with the emergency reserve a record of that many slots publishes.
  - Every change goes to the listener (the app: a log line, and a record publish, so other
    entries stop routing to an ejected backend within one publish).
- One loop timer, armed for the detector's `next_deadline()`, ends ejections and steps slow
  starts when no report does it first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from hubhop.core.capacity import default_emergency_reserve
from hubhop.core.config import BackendConfig, NodeConfig
from hubhop.core.outlier_detection import Outcome, OutlierDetector, Rotation, RotationChange
from hubhop.io.admission_gate import AdmissionGate
from hubhop.io.backend_proxy import Opened, UpstreamUnreachable
from hubhop.io.deadline_timer import DeadlineTimer
from hubhop.io.http_errors import ApiError

RotationListener = Callable[[list[RotationChange]], None]

# What a failure before the answer head was, by the status the proxy gives it
# (hubhop.io.backend_proxy): 504 no answer in time, 502 a broken answer. Others (413, the
# client's body over the limit) are not the backend's doing.
_FAILURE_BY_STATUS = {504: Outcome.TIMEOUT, 502: Outcome.BROKEN}


class BackendHealth:
    """Outlier detection of one node's backends, on the running loop."""

    def __init__(
        self, config: NodeConfig, gate: AdmissionGate, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock` must be the gate's."""
        self._clock = clock
        self._gate = gate
        self._backends = config.backends
        self.detector = OutlierDetector.for_backends(config.backends, config.outlier, clock())
        self._listener: RotationListener | None = None
        self._timer = DeadlineTimer(self._on_timer, clock)
        self._admission_slots = {b.name: b.slots for b in config.backends}
        gate.health = self

    def watch(self, listener: RotationListener | None) -> None:
        """Tell `listener` about every change of rotation from now on (None: stop)."""
        self._listener = listener

    async def opened(self, backend: str, opening: Awaitable[Opened], timed: bool) -> Opened:
        """Await one call's answer head and report how it went; `timed`: its time to the head
        is a sample for the slowness rule (an inference, not a metadata call)."""
        started = self._clock()
        try:
            opened = await opening
        except asyncio.CancelledError:
            if timed:  # its wait so far bounds the answer time from below (the detector's rule)
                self.report(backend, Outcome.ABANDONED, 0, self._clock() - started)
            raise
        except UpstreamUnreachable:
            self.report(backend, Outcome.UNREACHABLE)
            raise
        except ApiError as exc:
            outcome = _FAILURE_BY_STATUS.get(exc.status)
            if outcome is not None:  # a timeout's wait bounds the answer time from below
                self.report(backend, outcome, 0, self._clock() - started if timed else None)
            raise
        status = 0 if opened.head is None else opened.head.status
        answer_s = self._clock() - started if timed else None
        self.report(backend, Outcome.ANSWERED, status, answer_s)
        return opened

    def report(
        self, backend: str, outcome: Outcome, status: int = 0, answer_s: float | None = None
    ) -> None:
        self._apply(self.detector.report(backend, outcome, self._clock(), status, answer_s))

    def slots(self) -> dict[str, int]:
        """Slots each backend serves with now: 0 ejected, fewer in slow start."""
        return {b.name: self.detector.slots_of(b.name) or 0 for b in self._backends}

    def in_rotation(self, backends: Iterable[BackendConfig]) -> tuple[BackendConfig, ...]:
        """`backends` as the node offers them now (see OutlierDetector.in_rotation)."""
        return self.detector.in_rotation(backends)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per backend, its rotation as `GET /hubhop/v1/table` shows it."""
        shown = {}
        for h in self.detector.status(self._clock()):
            shown[h.backend] = {
                "state": h.rotation.value,
                "slots": h.slots,
                "ejections": h.ejections,
                "back_in_s": None if h.back_in_s is None else round(h.back_in_s, 3),
                "reason": h.reason or None,
                "consecutive_failures": h.consecutive_failures,
                "consecutive_slow": h.consecutive_slow,
                "baseline_ms": None if h.baseline_ms is None else round(h.baseline_ms, 3),
                "held_back": h.held_back,
                "failures": h.failures,
                "slow": h.slow,
            }
        return shown

    def reconfigure(self, config: NodeConfig) -> None:
        """A reload: new backends, slots or settings; admission gets the slots in force."""
        self._backends = config.backends
        slots = {b.name: b.slots for b in config.backends}
        changes = self.detector.reconfigure(slots, config.outlier, self._clock())
        self._admission_slots = {}  # admission was given every backend's slots anew
        self._apply(changes, force=True)

    def close(self) -> None:
        """Stop the timer (the loop is going away)."""
        self._timer.cancel()

    def _apply(self, changes: list[RotationChange], force: bool = False) -> None:
        for change in changes:
            ejected = change.rotation is Rotation.EJECTED
            detail = f"backend {change.backend!r} is out of rotation ({change.detail})"
            self._gate.set_ejected(change.backend, detail if ejected else "")
        if changes or force:
            self._resize_admission()
        self._timer.arm(self.detector.next_deadline())
        if changes and self._listener is not None:
            self._listener(changes)

    def _resize_admission(self) -> None:
        """Admission's slots per backend: those the detector allows, all of them for an
        ejected one (admission refuses it anyway, and its holders keep their slots)."""
        wanted = {}
        for b in self._backends:
            served = self.detector.slots_of(b.name)
            wanted[b.name] = served if served else b.slots
        if wanted == self._admission_slots:
            return
        self._admission_slots = wanted
        self._gate.reconfigure({n: (s, default_emergency_reserve(s)) for n, s in wanted.items()})

    def _on_timer(self, now: float) -> None:
        self._apply(self.detector.handle_timer(now))
