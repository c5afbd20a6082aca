"""Sixteen real daemons gossiping on loopback: the cluster an operator would start.

Each daemon binds its own addresses (HTTP on 127.0.3.N, gossip on 127.0.4.N), all share one
keyring, and all join through the first. What an operator must see: everyone lists everyone
alive; a node killed with SIGKILL is marked dead by all the others; restarted, it rejoins and is
alive everywhere; a change to one node's record (a model added by reload) reaches every node.
"""

from __future__ import annotations

import base64
import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Proc, spawn_node, wait_until

N = 16
KEY = base64.b64encode(bytes(range(16))).decode()
GOSSIP_PORT = 7946
# Convergence and failure detection happen in seconds at the default timing; the bounds allow
# for sixteen Python processes starting at once on two shared cores.
CONVERGE_S = 60.0
DETECT_S = 30.0


def config_text(i: int, models: tuple[str, ...] = ("chat-7b",)) -> str:
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        f'[node]\nname = "node-{i:02d}"\nrole = "{"city" if i == 1 else "edge"}"\n'
        f'region = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.3.{i}:0"\n'
        f"[lifecycle]\ndrain_grace_s = 2.0\n"
        f'[gossip]\nbind = "127.0.4.{i}:{GOSSIP_PORT}"\nseeds = ["127.0.4.1:{GOSSIP_PORT}"]\n'
        f'keys = ["{KEY}"]\n[tls]\nplaintext = true\n'
        f'[[backends]]\nname = "npu-0"\nurl = "http://127.0.2.{i}:9000"\n'
        f'protocol = "openai"\nmodels = [{model_list}]\nchip = "ascend-910b"\nslots = 8\n'
    )


def members(node: Proc) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"{node.url}/hubhop/v1/members", timeout=10) as response:
        view = json.loads(response.read())
    return {m["name"]: m for m in view["members"]}


def states_seen(nodes: dict[int, Proc], of: str) -> set[object]:
    return {members(n)[of]["state"] if of in members(n) else None for n in nodes.values()}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[dict[int, Proc], Path]]:
    nodes: dict[int, Proc] = {}
    try:
        for i in range(1, N + 1):
            path = tmp_path / f"node-{i:02d}.toml"
            path.write_text(config_text(i))
            nodes[i] = spawn_node(path)
        yield nodes, tmp_path
    finally:
        for node in nodes.values():
            node.stop()


@pytest.mark.slow
def test_sixteen_daemons_converge_detect_a_kill_rejoin_and_share_records(
    cluster: tuple[dict[int, Proc], Path],
) -> None:
    nodes, tmp_path = cluster
    names = {f"node-{i:02d}" for i in range(1, N + 1)}

    def all_alive() -> bool:
        return all(
            {n for n, m in members(node).items() if m["state"] == "alive"} == names
            for node in nodes.values()
        )

    wait_until(all_alive, CONVERGE_S, "all 16 daemons list all 16 alive")

    victim = 7
    nodes[victim].process.send_signal(signal.SIGKILL)
    nodes[victim].process.wait(10)
    others = {i: n for i, n in nodes.items() if i != victim}
    wait_until(
        lambda: states_seen(others, "node-07") == {"dead"},
        DETECT_S,
        "every other daemon marks the killed node dead",
    )

    nodes[victim] = spawn_node(tmp_path / "node-07.toml")
    wait_until(all_alive, CONVERGE_S, "the restarted node is alive everywhere again")
    incarnations = {members(n)["node-07"]["incarnation"] for n in others.values()}
    assert all(isinstance(i, int) and i >= 1 for i in incarnations), incarnations

    changed = tmp_path / "node-03.toml"
    changed.write_text(config_text(3, models=("chat-7b", "ct-triage")))
    nodes[3].process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: all("ct-triage" in members(n)["node-03"].get("models", []) for n in nodes.values()),
        CONVERGE_S,
        "node-03's new model reaches every daemon",
    )
