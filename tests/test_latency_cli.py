"""Three real daemons probing each other on loopback: what `hubhop peers` and `hubhop rtt` show.

Daemons bind HTTP on 127.0.8.N and gossip on 127.0.9.N. An operator asking one of them sees,
for each other member, probe samples, a round trip, the one-way estimate, its tier and where the
figure came from; `hubhop rtt` answers for one member, and says so when it cannot.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubhop.core.tiers import tier_of
from tests.procs import Proc, spawn_node, wait_until

KEY = base64.b64encode(bytes(range(16, 32))).decode()
# Three Python daemons start in a few seconds; probes then measure every peer within a couple
# of probe rounds (2 s each) plus SWIM's pings.
MEASURED_S = 60.0


def config_text(i: int) -> str:
    return (
        f'[node]\nname = "lat-{i}"\nrole = "city"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.8.{i}:0"\n'
        f'[gossip]\nbind = "127.0.9.{i}:7946"\nseeds = ["127.0.9.1:7946"]\nkeys = ["{KEY}"]\n'
        "[tls]\nplaintext = true\n"
        f'[[backends]]\nname = "npu-0"\nurl = "http://127.0.2.{i}:9000"\n'
        f'protocol = "openai"\nmodels = ["chat-7b"]\nchip = "ascend-910b"\nslots = 4\n'
    )


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[dict[int, Proc]]:
    nodes: dict[int, Proc] = {}
    try:
        for i in (1, 2, 3):
            path = tmp_path / f"lat-{i}.toml"
            path.write_text(config_text(i))
            nodes[i] = spawn_node(path)
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()


def hubhop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubhop", *args], capture_output=True, text=True, timeout=60
    )


def peers(node: Proc) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"{node.url}/hubhop/v1/peers", timeout=10) as response:
        return {p["name"]: p for p in json.loads(response.read())["peers"]}


@pytest.mark.slow
def test_peers_and_rtt_show_measured_latency_with_tier(trio: dict[int, Proc]) -> None:
    first = trio[1]

    def measured() -> bool:
        view = peers(first)
        return all(
            view.get(f"lat-{i}", {}).get("probe", {}).get("samples", 0) >= 3  # type: ignore[union-attr]
            for i in (2, 3)
        )

    wait_until(measured, MEASURED_S, "lat-1 has probe samples for lat-2 and lat-3")
    entry = peers(first)["lat-2"]
    probe, estimate = entry["probe"], entry["estimate"]
    assert isinstance(probe, dict) and isinstance(estimate, dict)
    # loopback: a fraction of a millisecond (more on a loaded box), nothing lost
    assert 0 < probe["p50_ms"] < 20 and probe["loss_rate"] == 0.0
    assert estimate["source"] == "measured"
    assert estimate["conservative_one_way_ms"] >= estimate["one_way_ms"] > 0
    assert estimate["tier"] == tier_of(estimate["conservative_one_way_ms"])

    table = hubhop("peers", "--config", "/nonexistent.toml", "--url", first.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "SAMPLES"]
    assert any(line.startswith("lat-2") and " measured" in line for line in lines)

    rtt = hubhop("rtt", "lat-3", "--config", "/nonexistent.toml", "--url", first.url)
    assert rtt.returncode == 0, rtt.stderr
    assert rtt.stdout.startswith("lat-1 -> lat-3: rtt ") and "; measured from" in rtt.stdout

    unknown = hubhop("rtt", "nobody", "--config", "/nonexistent.toml", "--url", first.url)
    assert unknown.returncode == 1 and "unknown" in unknown.stdout
