"""Outlier detection with a fake clock: what ejects a backend, for how long, how much of a node
may be out at once, and how slow start brings a backend back."""

from __future__ import annotations

import pytest

from hubhop.core.config import BackendConfig, ConfigError, parse_config
from hubhop.core.local_choice import pick_backend
from hubhop.core.outlier_config import OutlierSettings
from hubhop.core.outlier_detection import (
    BASELINE_MIN_ANSWERS,
    Outcome,
    OutlierDetector,
    Rotation,
)

ANSWERED, UNREACHABLE, TIMEOUT = Outcome.ANSWERED, Outcome.UNREACHABLE, Outcome.TIMEOUT
IN, EJECTED, SLOW_START = Rotation.IN, Rotation.EJECTED, Rotation.SLOW_START
SETTINGS = OutlierSettings(
    consecutive_failures=3,
    base_ejection_s=10.0,
    max_ejection_s=25.0,
    slow_start_s=10.0,
    consecutive_slow=3,
    slow_factor=4.0,
    slow_min_ms=50.0,
)


def detector(
    backends: dict[str, int] | None = None, settings: OutlierSettings = SETTINGS
) -> OutlierDetector:
    return OutlierDetector(backends or {"gpu": 10, "npu": 10}, settings, now=0.0)


def fail(d: OutlierDetector, backend: str, n: int, now: float, status: int = 500) -> list[str]:
    """`n` 5xx answers from `backend` at `now`; the reasons of the changes they made."""
    reasons = []
    for _ in range(n):
        reasons += [c.reason for c in d.report(backend, ANSWERED, now, status)]
    return reasons


def answer(d: OutlierDetector, backend: str, n: int, now: float, seconds: float) -> list[str]:
    reasons = []
    for _ in range(n):
        reasons += [c.reason for c in d.report(backend, ANSWERED, now, 200, seconds)]
    return reasons


def test_consecutive_failures_eject_and_any_good_answer_ends_the_run() -> None:
    d = detector()
    assert fail(d, "gpu", 2, 0.0) == []
    assert answer(d, "gpu", 1, 0.0, 0.02) == []  # the run is over
    assert fail(d, "gpu", 2, 0.0) == []
    # A 4xx, a 501 (Not Implemented): the client's doing; the backend answered, the run ends.
    assert fail(d, "gpu", 1, 0.0, status=404) == []
    assert fail(d, "gpu", 2, 0.0, status=501) == []
    assert fail(d, "gpu", 2, 0.0) == []
    assert fail(d, "gpu", 1, 0.0, status=503) == ["failures"]
    assert d.rotation_of("gpu") is EJECTED
    assert d.slots_of("gpu") == 0
    assert d.rotation_of("npu") is IN


@pytest.mark.parametrize("outcome", [UNREACHABLE, TIMEOUT, Outcome.BROKEN])
def test_no_connection_a_broken_answer_and_a_hang_are_failures(outcome: Outcome) -> None:
    d = detector()
    changes = [c for _ in range(3) for c in d.report("gpu", outcome, 1.0)]
    assert [(c.backend, c.rotation, c.slots) for c in changes] == [("gpu", EJECTED, 0)]
    assert outcome.value in changes[0].detail


def test_reports_while_ejected_are_ignored_and_the_ejection_ends_on_time() -> None:
    d = detector()
    fail(d, "gpu", 3, 5.0)
    assert d.next_deadline() == 15.0  # base_ejection_s
    assert answer(d, "gpu", 5, 6.0, 0.02) == []  # late answers to calls sent before
    assert d.rotation_of("gpu") is EJECTED
    assert d.handle_timer(14.9) == []
    [back] = d.handle_timer(15.0)
    assert (back.rotation, back.reason, back.slots) == (SLOW_START, "returned", 1)


def test_ejections_grow_by_the_base_are_capped_and_decay_while_serving() -> None:
    d = detector()
    settings = SETTINGS
    now = 0.0
    lengths = []
    for _ in range(4):  # each time it fails again as soon as it is back
        fail(d, "gpu", 3, now)
        deadline = d.next_deadline()
        assert deadline is not None
        lengths.append(deadline - now)
        now = deadline
        d.handle_timer(now)
        assert d.rotation_of("gpu") is SLOW_START
    assert lengths == [10.0, 20.0, 25.0, 25.0]  # base x count, capped at max_ejection_s
    # Served in rotation for two base periods: the count falls by two (4 -> 2), so the next
    # ejection lasts 3 x base = 30, capped at 25; after four it is back at the base.
    now += 2 * settings.base_ejection_s
    d.handle_timer(now)
    assert d.rotation_of("gpu") is IN
    [status] = [h for h in d.status(now) if h.backend == "gpu"]
    assert status.ejections == 2
    now += 2 * settings.base_ejection_s
    fail(d, "gpu", 3, now)
    assert d.next_deadline() == now + 10.0


def test_slow_start_ramps_in_tenths_and_ends_with_all_slots() -> None:
    d = detector({"gpu": 20, "npu": 20})
    fail(d, "gpu", 3, 0.0)
    seen = []
    while (at := d.next_deadline()) is not None:
        for change in d.handle_timer(at):
            seen.append((round(at, 6), change.rotation, change.slots))
    assert seen[0] == (10.0, SLOW_START, 2)  # a tenth of 20 slots
    assert seen[-1] == (20.0, IN, 20)  # slow_start_s later: all of them
    slots = [s for _, _, s in seen]
    assert slots == sorted(slots) and len(seen) == 10  # one step per tenth, never down
    assert [s for _, _, s in seen[:3]] == [2, 4, 6]


def test_a_small_backend_comes_back_with_one_slot_and_its_record_shows_it() -> None:
    d = detector({"gpu": 4, "npu": 4})
    backends = (
        BackendConfig("gpu", "http://127.0.67.1:1", ("openai",), ("m",), slots=4),
        BackendConfig("npu", "http://127.0.67.1:2", ("openai",), ("m",), slots=4),
    )
    fail(d, "gpu", 3, 0.0)
    assert [b.name for b in d.in_rotation(backends)] == ["npu"]  # the record leaves it out
    d.handle_timer(10.0)
    offered = {b.name: b.slots for b in d.in_rotation(backends)}
    assert offered == {"gpu": 1, "npu": 4}
    d.handle_timer(15.0)  # halfway: half its slots
    assert d.slots_of("gpu") == 2
    # The local choice follows: one busy slot of two is a fuller backend than one of four.
    chosen = pick_backend(backends, {"gpu": 1, "npu": 1}, {"gpu": 2, "npu": 4})
    assert chosen is not None and chosen.name == "npu"
    # Out of rotation: never chosen while another qualifies; alone, it is (admission refuses).
    chosen = pick_backend(backends, {"npu": 3}, {"gpu": 0, "npu": 4})
    assert chosen is not None and chosen.name == "npu"
    alone = pick_backend(backends[:1], {}, {"gpu": 0})
    assert alone is not None and alone.name == "gpu"


def test_one_failure_in_slow_start_ejects_again_for_longer() -> None:
    d = detector()
    fail(d, "gpu", 3, 0.0)
    d.handle_timer(10.0)
    answer(d, "gpu", 2, 11.0, 0.02)
    d.handle_timer(12.0)
    assert fail(d, "gpu", 1, 12.0) == ["failed-in-slow-start"]
    assert d.next_deadline() == 12.0 + 20.0  # the second ejection: 2 x base


def test_slow_answers_eject_against_the_backends_own_baseline() -> None:
    d = detector()
    answer(d, "gpu", BASELINE_MIN_ANSWERS, 0.0, 0.100)  # its normal: 100 ms
    answer(d, "npu", BASELINE_MIN_ANSWERS, 0.0, 1.000)  # a slower chip: 1 s is its normal
    assert answer(d, "npu", 5, 0.0, 1.000) == []  # no neighbour comparison
    # Four times its baseline is the bound: 350 ms is within, a second is slow.
    assert answer(d, "gpu", 5, 0.0, 0.350) == []
    assert answer(d, "gpu", 2, 0.0, 1.0) == []
    assert answer(d, "gpu", 1, 0.0, 0.100) == []  # one normal answer ends the run
    assert answer(d, "gpu", 2, 0.0, 1.0) == []
    [reason] = answer(d, "gpu", 1, 0.0, 1.0)
    assert reason == "slow"
    [status] = [h for h in d.status(0.0) if h.backend == "gpu"]
    assert status.reason == "slow" and status.slow == 5


def test_fast_backends_are_not_ejected_for_jitter_below_the_floor() -> None:
    d = detector()
    answer(d, "gpu", BASELINE_MIN_ANSWERS, 0.0, 0.002)  # 2 ms answers
    assert answer(d, "gpu", 10, 0.0, 0.040) == []  # 20x, but below slow_min_ms (50 ms)
    assert d.rotation_of("gpu") is IN


def test_no_baseline_judges_nothing_but_an_absolute_bound_does() -> None:
    d = detector()
    assert answer(d, "gpu", 3, 0.0, 30.0) == []  # nothing to compare with yet
    bounded = detector(settings=OutlierSettings(consecutive_slow=2, slow_ms=1000.0))
    assert answer(bounded, "gpu", 2, 0.0, 1.5) == ["slow"]


def test_at_most_the_share_of_slots_is_ejected_but_always_one_backend() -> None:
    d = detector({"a": 4, "b": 4, "c": 4, "d": 4})  # share 0.5: 8 of 16 slots
    assert fail(d, "a", 3, 0.0) == ["failures"]
    assert fail(d, "b", 3, 0.0) == ["failures"]
    assert fail(d, "c", 5, 0.0) == []  # 12 of 16 would be out: held back, still serving
    [c] = [h for h in d.status(0.0) if h.backend == "c"]
    assert (c.rotation, c.held_back) == (IN, 3)
    d.handle_timer(10.0)  # a and b come back: c goes at its next failure
    assert fail(d, "c", 1, 10.0) == ["failures"]
    lone = detector({"only": 8}, OutlierSettings(consecutive_failures=1, max_ejected_share=0.0))
    assert fail(lone, "only", 1, 0.0) == ["failures"]


def test_disabled_counts_but_never_ejects_and_reload_brings_everyone_back() -> None:
    d = detector()
    fail(d, "gpu", 3, 0.0)
    changes = d.reconfigure({"gpu": 10, "npu": 10}, OutlierSettings(enabled=False), 1.0)
    assert [(c.backend, c.rotation, c.slots) for c in changes] == [("gpu", IN, 10)]
    assert fail(d, "gpu", 10, 2.0) == []
    [gpu] = [h for h in d.status(2.0) if h.backend == "gpu"]
    assert gpu.failures == 13


def test_a_reload_keeps_an_ejection_and_forgets_backends_that_are_gone() -> None:
    d = detector()
    fail(d, "gpu", 3, 0.0)
    d.reconfigure({"gpu": 6, "tpu": 2}, SETTINGS, 1.0)
    assert d.rotation_of("gpu") is EJECTED
    assert d.rotation_of("npu") is None and d.slots_of("tpu") == 2
    d.handle_timer(10.0)
    assert d.slots_of("gpu") == 1  # a tenth of its new 6 slots, at least one


def test_the_outlier_section_parses_with_reasons_for_its_faults() -> None:
    head = '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.67.1:0"\n'
    config = parse_config(head + "[outlier]\nconsecutive_failures = 2\nslow_ms = 800\n", "t")
    assert config.outlier == OutlierSettings(consecutive_failures=2, slow_ms=800.0)
    assert parse_config(head, "t").outlier == OutlierSettings()
    bad = "[outlier]\nbase_ejection_s = 60\nmax_ejection_s = 30\nmax_ejected_share = 2\nx = 1\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(head + bad, "t")
    faults = "\n".join(raised.value.faults)
    for key in ("max_ejection_s", "max_ejected_share", "outlier.x"):
        assert key in faults


def test_a_call_abandoned_after_the_slow_bound_counts_as_slow_and_sooner_as_nothing() -> None:
    d = detector()
    answer(d, "gpu", BASELINE_MIN_ANSWERS, 0.0, 0.100)  # bound: 400 ms
    fail(d, "gpu", 2, 0.0)
    # The entry upstream gave up after 1 s and cancelled: the answer would have been slower.
    d.report("gpu", Outcome.ABANDONED, 0.0, answer_s=1.0)
    d.report("gpu", Outcome.ABANDONED, 0.0, answer_s=0.2)  # a client that left early: nothing
    d.report("gpu", Outcome.ABANDONED, 0.0, answer_s=1.0)
    [gpu] = [h for h in d.status(0.0) if h.backend == "gpu"]
    assert (gpu.consecutive_slow, gpu.consecutive_failures) == (2, 2)  # neither run ended
    assert gpu.baseline_ms == pytest.approx(100.0)  # a lower bound is no sample
    [change] = d.report("gpu", Outcome.ABANDONED, 0.0, answer_s=1.0)
    assert (change.rotation, change.reason) == (EJECTED, "slow")
    assert "abandoned after 1000 ms" in change.detail


def test_a_hang_seen_as_timeouts_here_and_abandoned_calls_upstream_ejects_on_one_count() -> None:
    d = detector()
    answer(d, "gpu", BASELINE_MIN_ANSWERS, 0.0, 0.100)
    # Both nodes time out after a second: some calls end here (timeouts, failures), some are
    # cancelled by the entry first (abandoned). Each waited past the slow bound.
    assert d.report("gpu", TIMEOUT, 0.0, answer_s=1.0) == []
    assert d.report("gpu", Outcome.ABANDONED, 0.0, answer_s=1.0) == []
    [change] = d.report("gpu", TIMEOUT, 0.0, answer_s=1.0)
    assert (change.rotation, change.reason) == (EJECTED, "slow")
