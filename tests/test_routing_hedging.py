"""Hedging with real daemons: an emergency call whose best node has stalled is answered by the
next best, and the stalled copy is cancelled at both ends.

entry (HTTP 127.0.14.1, gossip 127.0.15.1) fronts only a chat model. slow-b and fast-c both
serve ct-triage: slow-b's backend takes 30 s per request (a stalled GPU) and is free, fast-c's
takes 5 ms and costs 5. The entry weighs price (10 ms per unit), so slow-b ranks first for every
ct-triage call; the entry hedges after 150 ms. Every backend is a real demo backend process
(127.0.16.x), and its /demo/stats says how many requests it is holding, which is how the tests
see that a dropped copy reached the backend as a cancellation.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.procs import Proc, spawn_demo_backend, spawn_node, wait_until
from tests.routing_helpers import chat, route
from tests.test_routing_cluster import KEY

NODES = {
    # name: (address index, role, model served, service time, price)
    "entry": (1, "edge", "chat-7b", "5", 0.0),
    "slow-b": (2, "city", "ct-triage", "const:30000", 0.0),
    "fast-c": (3, "hub", "ct-triage", "5", 5.0),
}
HEDGE_DELAY_MS = 150
# Far below slow-b's 30 s: an answer (or a freed backend slot) within this came from hedging or
# from a cancellation, never from the stalled backend finishing its work.
PROMPT_S = 10.0
CONVERGE_S = 60.0


def config_text(name: str, backend_url: str) -> str:
    i, role, model, _, price = NODES[name]
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.14.{i}:0"\n'
        f"[lifecycle]\ndrain_grace_s = 1.0\n"
        # Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
        "[latency]\nlinks_republish_s = 2.0\n"
        f"[routing]\nprice_weight_ms = 10.0\nhedge_delay_ms = {HEDGE_DELAY_MS}\n"
        f'[gossip]\nbind = "127.0.15.{i}:7946"\nseeds = ["127.0.15.1:7946"]\nkeys = ["{KEY}"]\n'
        "[tls]\nplaintext = true\n"
        f'[[backends]]\nname = "{name}-gpu"\nurl = "{backend_url}"\nprotocol = "openai"\n'
        f'models = ["{model}"]\nchip = "nvidia-h100"\nslots = 4\nprice = {price}\n'
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("hedging")
    procs: list[Proc] = []
    found: dict[str, Proc] = {}
    try:
        for name, (i, _, model, service_ms, _) in NODES.items():
            workdir = tmp / name
            workdir.mkdir()
            backend = spawn_demo_backend(
                workdir, "--host", f"127.0.16.{i}", "--models", model,
                "--service-ms", service_ms, "--slots", "4", "--name", f"{name}-gpu",
            )  # fmt: skip
            procs.append(backend)
            found[f"{name}-backend"] = backend
            path = workdir / f"{name}.toml"
            path.write_text(config_text(name, backend.url))
            found[name] = spawn_node(path)
            procs.append(found[name])

        def both_known() -> bool:
            decision = route(found["entry"], {"model": "ct-triage", "lane": "emergency"})
            chosen = decision.get("chosen") or {}
            return chosen.get("node") == "slow-b" and len(decision.get("alternates", [])) >= 1

        wait_until(both_known, CONVERGE_S, "the entry ranking slow-b first, fast-c next")
        yield found
    finally:
        for proc in reversed(procs):
            proc.stop()


def held_by(backend: Proc) -> int:
    with urllib.request.urlopen(f"{backend.url}/demo/stats", timeout=5) as response:
        return int(json.loads(response.read())["in_flight"])


def call_and_hang_up(node: Proc, headers: dict[str, str], after_s: float) -> bool:
    """Send a ct-triage call and give up after `after_s`: True if an answer came before."""
    body = {"model": "ct-triage", "messages": [{"role": "user", "content": "ct"}], "max_tokens": 2}
    request = urllib.request.Request(
        f"{node.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=after_s) as response:
            response.read()
            return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_a_stalled_node_loses_the_emergency_call_to_the_hedge_copy(
    cluster: dict[str, Proc],
) -> None:
    started = time.monotonic()
    status, headers, body = chat(cluster["entry"], "ct-triage", {"x-hubhop-lane": "emergency"})
    took = time.monotonic() - started
    assert status == 200, body
    assert headers["x-hubhop-node"] == "fast-c"
    assert headers["x-hubhop-hedged"] == "copy"
    assert headers["x-hubhop-tries"] == "2"
    assert took < PROMPT_S, f"the copy should answer within {PROMPT_S} s, took {took:.1f} s"
    # The copy sent to slow-b was cancelled at the entry, at slow-b's daemon, and at its backend.
    wait_until(
        lambda: held_by(cluster["slow-b-backend"]) == 0,
        PROMPT_S,
        "slow-b's backend letting go of the losing copy",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "hints",
    [{"x-hubhop-lane": "standard"}, {"x-hubhop-lane": "emergency", "x-hubhop-idempotent": "0"}],
    ids=["standard-lane", "not-idempotent"],
)
def test_no_copy_is_sent_for_other_lanes_or_calls_that_must_not_run_twice(
    cluster: dict[str, Proc], hints: dict[str, str]
) -> None:
    # Ten hedge delays: any copy would have answered by then.
    answered = call_and_hang_up(cluster["entry"], hints, after_s=HEDGE_DELAY_MS / 100)
    assert not answered, "the call was answered, so a copy went to fast-c"
    assert held_by(cluster["fast-c-backend"]) == 0
    # The app hung up: its call is cancelled all the way to slow-b's backend.
    wait_until(
        lambda: held_by(cluster["slow-b-backend"]) == 0,
        PROMPT_S,
        "slow-b's backend letting go of the call whose app hung up",
    )
