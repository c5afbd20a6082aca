"""bench/routing's pure parts: the baselines' HAProxy config, the phases' load, and the figures.

The benchmark itself runs 24 daemons for minutes (`make bench`); these check that what it
compares is what its README says: baselines that keep every tier by their pools, the same load
for every system, and a p99 that a system cannot improve by dropping requests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bench import _haproxy
from bench.routing import haproxy_config, plan, summary

from hubhop.lab.cluster import localise_topology
from hubhop.lab.network_slice import choose_slice
from hubhop.lab.profiles import profiles
from hubhop.loadgen.outcome import Outcome
from hubhop.loadgen.stats import GroupStats
from hubhop.loadgen.workload import Stream
from hubhop.wan.model import WanModel
from hubhop.wan.topology import load_topology


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[WanModel, dict, tuple[str, ...]]:
    path = localise_topology(tmp_path_factory.mktemp("routing"), plan.DAEMON_NET)
    model = WanModel(load_topology(path))
    chosen = choose_slice(
        model, plan.SLICE_CITIES, plan.SLICE_KEY_CITIES, plan.SLICE_HUBS, plan.SLICE_PROVINCE
    )
    every = profiles(model.topology)
    return model, {s: every[s] for s in chosen.sites}, chosen.entries


def test_the_slice_is_24_sites_with_wuhan_first(network: tuple) -> None:
    model, found, entries = network
    assert len(found) == 24
    assert entries[0] == "wuhan-hospital"
    assert {model.topology.site(s).role for s in found} == {"edge", "city", "hub"}


def test_pools_keep_each_lane_in_its_tier_and_hold_every_site_that_can_serve(network: tuple):
    model, found, entries = network
    pools = haproxy_config.pools(model, found, entries)
    for (entry, name), pool in pools.items():
        bound = {"ct-triage": 1.0, "chat-7b": 5.0, "seq-align": float("inf")}[name]
        serving = [s for s, b in found.items() if name in b[0].models]
        assert set(pool) == {s for s in serving if model.one_way_ms(entry, s) <= bound}
        assert [model.one_way_ms(entry, s) for s in pool] == sorted(
            model.one_way_ms(entry, s) for s in pool
        )
    assert pools[("yichang-hospital", "ct-triage")] == ["yichang"]
    assert len(pools[("wuhan-hospital", "seq-align")]) == 20  # every batch site of the slice


def test_static_nearest_sends_to_the_nearest_data_centre_not_the_hospital_box(network: tuple):
    model, found, entries = network
    text = haproxy_config.config_text(model, found, entries, policies=("static-nearest",))
    block = text.split("backend be_static-nearest_wuhan-hospital_chat-7b\n", 1)[1]
    servers = block.split("backend ", 1)[0].strip().splitlines()[1:]
    active = [line for line in servers if not line.endswith(" backup")]
    assert len(active) == 1 and active[0].split()[1] == "wuhan-dc-1"
    assert any(line.split()[1] == "wuhan-hospital" for line in servers)  # kept, as a backup


def test_every_server_leaves_from_its_hospitals_address_with_its_slots(network: tuple) -> None:
    model, found, entries = network
    text = haproxy_config.config_text(model, found, entries)
    wuhan = text.split("frontend fe_least-conn_wuhan-hospital\n", 1)[1].split("frontend ", 1)[0]
    assert "bind 127.0.55.3:8081" in wuhan
    line = next(x for x in wuhan.splitlines() if x.strip().startswith("server wuhan-dc-2 "))
    assert line.split()[2:] == ["127.0.54.2:8080", "source", "127.0.55.3", "maxconn", "8"]


def test_haproxy_accepts_the_config(network: tuple, tmp_path: Path) -> None:
    binary = _haproxy.find_haproxy()
    if binary is None:
        pytest.skip("haproxy is not installed (make bench-deps installs it)")
    model, found, entries = network
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config.config_text(model, found, entries))
    done = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_system_gets_the_same_load_at_its_own_entry_points(network: tuple) -> None:
    _, found, entries = network
    flood = plan.FLOOD_FACTOR * plan.batch_capacity(found)
    loads = [
        plan.phase_workload(
            "skew", entries, {e: f"http://{system}.test:{i}" for i, e in enumerate(entries)},
            10.0, plan.QUICK, flood, seed=3,
        )
        for system in ("a", "b")
    ]  # fmt: skip

    def shape(stream: Stream) -> tuple:
        return (stream.name, stream.model, stream.rate, stream.lane, stream.tier, stream.spill)

    assert [shape(s) for s in loads[0].streams] == [shape(s) for s in loads[1].streams]
    assert loads[0].streams[0].entries != loads[1].streams[0].entries
    wuhan_chat = next(s for s in loads[0].streams if s.name == "standard@wuhan-hospital")
    assert wuhan_chat.rate == plan.CHAT_RATES.hot > plan.CHAT_RATES.cold
    flooded = plan.phase_workload(
        "flood", entries, {e: "http://x.test:1" for e in entries}, 10.0, plan.QUICK, flood, 3
    )
    batch = sum(s.rate for s in flooded.streams if s.lane == "batch")
    assert batch == pytest.approx(3 * plan.batch_capacity(found))
    assert 15 < plan.batch_capacity(found) < 40  # long batch jobs: a flood two cores can send


def _group(latencies_ms: list[float], failed: int) -> GroupStats:
    stream = Stream("s", ("http://x.test:1",), "openai_chat", "m", 1.0, "poisson", lane="batch")
    group = GroupStats("batch", "any")
    for ms in latencies_ms:
        group.record(Outcome(0, 0.0, 0.0, ms / 1000.0), stream)
    for _ in range(failed):
        group.record(Outcome(0, 0.0, 0.0, 0.001, status=429, error="http_429"), stream)
    return group


def test_p99_counts_unanswered_requests_as_slower_than_any_answer() -> None:
    fast_but_shedding = summary.group_figures(_group([10.0] * 97, failed=3))
    assert fast_but_shedding["p99_ok_ms"] == pytest.approx(10.0, rel=0.01)
    assert fast_but_shedding["p99_ms"] is None  # 3% never answered: no p99 at all
    answering = summary.group_figures(_group([10.0] * 99 + [900.0], failed=0))
    assert answering["p99_ms"] == pytest.approx(10.0, rel=0.01)
    one_lost = summary.group_figures(_group([10.0] * 98 + [900.0], failed=1))
    assert one_lost["p99_ms"] == pytest.approx(900.0, rel=0.01)


def _run(system: str, phase: str, rows: dict) -> dict:
    return {"system": system, "phase": phase, "rows": rows}


def _rows(emergency_ms: float, all_ms: float, in_tier: int = 100) -> dict:
    emergency = summary.group_figures(_group([emergency_ms] * 100, 0))
    emergency["within_tier"] = in_tier
    return {"emergency": emergency, "all": summary.group_figures(_group([all_ms] * 100, 0))}


def test_verdicts_judge_the_targets_from_pooled_rounds() -> None:
    runs = []
    for _ in range(2):  # two rounds, pooled
        runs += [
            _run("hubhop", "unloaded", _rows(100, 100)),
            _run("hubhop", "flood", _rows(105, 105)),
            _run("hubhop", "skew", _rows(100, 400)),
            _run("oracle", "skew", _rows(100, 350)),
            _run("least-conn", "skew", _rows(300, 1000)),
            _run("random", "skew", _rows(300, 2000, in_tier=90)),
        ]
    results = summary.pooled(runs)
    assert results["hubhop"]["skew"]["emergency"]["sent"] == 200
    found = summary.verdicts(results)
    assert found["emergency_all_in_tier"] == {"skew": True, "flood": True}
    assert found["emergency_flood_target_met"]
    assert found["skew_p99_all"]["best_baseline"] == "least-conn"
    assert found["skew_p99_all"]["target_met"]  # 400 ms <= half of 1000
    assert found["hubhop_over_oracle_p99"]["skew"]["all"] == pytest.approx(400 / 350, rel=0.02)
    slower = summary.verdicts(summary.pooled([*runs, _run("hubhop", "flood", _rows(200, 200))]))
    assert not slower["emergency_flood_target_met"]
    tables = summary.markdown_tables({"results": results, "verdicts": found})
    assert "| hubhop |" in tables["routing"] and "| least-conn |" in tables["routing"]
