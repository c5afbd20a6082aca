"""The latency benchmark's simulator (bench/latency/simulate.py) on a small cluster: what a
user of its figures relies on, at 60 nodes and 60 simulated seconds (a few seconds of wall time,
virtual clock, fixed seed).

Bounds are the figures observed over seeds 1-4 with room to spare: Vivaldi's median relative
error was 2.0-2.5 % (p90 7-8 %), probed medians within 0.15 % of the truth (p95 1.3 %), and the
joiner (an edge in Wuhan, 30-60 % off at the origin) got under 20 % after 2-4 s.
"""

from __future__ import annotations

from typing import Any

import pytest
from bench.latency.simulate import simulate


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return simulate(60, seed=1, duration_s=60.0)


def test_coordinates_learn_the_wan_within_a_few_percent(result: dict[str, Any]) -> None:
    vivaldi = result["vivaldi"]
    assert vivaldi["n"] == 60 * 59 // 2  # every pair, when there are this few
    assert vivaldi["median"] < 0.06
    assert vivaldi["p90"] < 0.20


def test_no_measured_link_is_put_in_a_tighter_tier_than_its_truth(result: dict[str, Any]) -> None:
    measured = result["tiers"]["every_measured_link"]
    assert measured["pairs"] > 0
    assert measured["optimistic"] == 0
    assert result["tiers"]["unknown"] == 0


def test_probes_measure_links_to_within_a_few_percent(result: dict[str, Any]) -> None:
    probes = result["probes"]
    assert probes["links"] > 0
    assert probes["rel"]["median"] < 0.02
    assert probes["rel"]["p95"] < 0.05


def test_a_joiner_places_itself_within_seconds(result: dict[str, Any]) -> None:
    join = result["join"]
    assert join["seconds"] is not None and join["seconds"] <= 10.0
    assert join["samples"] is not None and join["samples"] >= 1
    assert join["trace"][-1][2] < 0.20


def test_the_same_seed_gives_the_same_figures() -> None:
    keys = ("vivaldi", "tiers", "probes", "join", "probe_rate")
    first, again = simulate(20, seed=3, duration_s=20.0), simulate(20, seed=3, duration_s=20.0)
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}
