"""A backend that answers 500s, hangs, or answers slowly, under a steady load through real daemons:
outlier ejection takes it out of rotation, slow start brings it back.

An entry daemon (no backends) routes to a serving daemon fronting two demo backends: "fast"
(100 ms, preferred while it has room) and "steady" (150 ms, more slots). The same "fast" process
is switched bad and back by its fault switch (POST /demo/fault). What a client may see, phase by
phase:
- 500s: the requests the bad backend answered before it was ejected: the consecutive_failures
  that ejected it, and those already in its other slots when the last of them came back;
- hang: those it held when it hung, at most its standard slots (its slots less the emergency
  reserve: the entry sends no more once they are busy), and those given a slot as the first
  consecutive_failures - 1 of them timed out, before the one that ejected it: each a 504 after
  backend_timeout_s;
- slowness: none (slow answers are still answers).
Nothing else fails: a request the entry sends to the ejected backend before the serving node's
new record reaches it is refused (REFUSED_HEADER) and re-routed.

Addresses: daemons on 127.0.67.x, demo backends on 127.0.68.x.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fault_load import OpenLoad, Result
from tests.procs import Proc, spawn_demo_backend, spawn_node, wait_until
from tests.routing_helpers import route

KEY = "AAECAwQFBgcICQoLDA0ODw=="
MODEL = "ct-triage"
GOSSIP_PORT = 7946
# Outlier settings scaled down for a test: three in a row, a one-second first ejection, a
# two-second slow start (ten steps of 0.2 s).
CONSECUTIVE = 3
BASE_EJECTION_S = 1.0
SLOW_START_S = 2.0
BACKEND_TIMEOUT_S = 1.0  # how long a hung request takes to fail
# "fast" is preferred (lower service time) whenever it has a free slot, so its share shows its
# slots; "steady" has room for the whole load alone: 30/s x 0.15 s = 4.5 busy of 14 usable,
# counted twice by the entry (its in-flight figure and the gossiped load).
FAST_SLOTS, STEADY_SLOTS = 10, 16
FAST_USABLE = FAST_SLOTS - 1  # less the emergency reserve (one in eight, at least one)
RATE = 30.0
CONVERGE_S = 30.0
# A ramp of 2 s, an ejection of at most a few seconds: generous bounds for a loaded box.
PHASE_S = 10.0


def get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def node_config(name: str, host: str, extra: str = "") -> str:
    return (
        f'[node]\nname = "{name}"\nrole = "city"\n'
        f'[http]\nlisten = "{host}:0"\nbackend_timeout_s = {BACKEND_TIMEOUT_S}\n'
        "[lifecycle]\ndrain_grace_s = 2.0\n"
        f'[gossip]\nbind = "{host}:{GOSSIP_PORT}"\nseeds = ["127.0.67.1:{GOSSIP_PORT}"]\n'
        f'keys = ["{KEY}"]\ngossip_interval_s = 0.05\nprobe_interval_s = 0.2\n'
        "[latency]\nlinks_republish_s = 1.0\n"  # measured links reach the entry in a second
        "[tls]\nplaintext = true\n" + extra  # a lab on loopback
    )


SERVE_EXTRA = (
    f"[outlier]\nconsecutive_failures = {CONSECUTIVE}\nbase_ejection_s = {BASE_EJECTION_S}\n"
    f"max_ejection_s = 4.0\nslow_start_s = {SLOW_START_S}\nconsecutive_slow = {CONSECUTIVE}\n"
    "slow_factor = 3.0\nslow_min_ms = 50.0\n"
)


def backend_section(name: str, url: str, slots: int) -> str:
    return (
        f'[[backends]]\nname = "{name}"\nurl = "{url}"\nprotocol = "openai"\n'
        f'models = ["{MODEL}"]\nslots = {slots}\n'
    )


class Lab:
    def __init__(self, procs: dict[str, Proc]) -> None:
        self.procs = procs

    def received(self, backend: str) -> int:
        return int(get_json(f"{self.procs[backend].url}/demo/stats")["received"])

    def fault(self, backend: str, fault: str, extra_ms: float = 0.0) -> None:
        get_json(f"{self.procs[backend].url}/demo/fault", {"fault": fault, "extra_ms": extra_ms})

    def rows(self, node: str) -> dict[tuple[str, str], dict[str, Any]]:
        rows = get_json(f"{self.procs[node].url}/hubhop/v1/table")["rows"]
        return {(r["node"], r["backend"]): r for r in rows}

    def rotation(self) -> dict[str, Any]:
        """The serving node's account of "fast": state, slots, reason, ..."""
        return dict(self.rows("serve")["serve", "fast"]["rotation"])

    def entry_routes_to_fast(self) -> bool:
        return ("serve", "fast") in self.rows("entry")

    def counts(self) -> tuple[int, int]:
        return self.received("fast"), self.received("steady")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    procs: dict[str, Proc] = {}
    try:
        for i, name, service, slots in (
            (1, "fast", 100, FAST_SLOTS),
            (2, "steady", 150, STEADY_SLOTS),
        ):
            workdir = tmp_path / name
            workdir.mkdir()
            procs[name] = spawn_demo_backend(
                workdir, "--host", f"127.0.68.{i}", "--models", MODEL, "--slots", str(slots),
                "--service-ms", f"const:{service}", "--token-rate", "1000", "--name", name,
            )  # fmt: skip
        backends = backend_section("fast", procs["fast"].url, FAST_SLOTS) + backend_section(
            "steady", procs["steady"].url, STEADY_SLOTS
        )
        for name, host, extra in (
            ("entry", "127.0.67.1", ""),
            ("serve", "127.0.67.2", SERVE_EXTRA + backends),
        ):
            path = tmp_path / f"{name}.toml"
            path.write_text(node_config(name, host, extra))
            procs[name] = spawn_node(path)
        lab = Lab(procs)
        wait_until(
            lambda: route(procs["entry"], {"model": MODEL}).get("chosen") is not None,
            CONVERGE_S,
            "the entry routing to the serving node",
        )
        yield lab
    finally:
        for proc in reversed(procs.values()):
            proc.stop()


def share_of_fast(lab: Lab, since: tuple[int, int]) -> float:
    fast, steady = lab.counts()
    got_fast, got_steady = fast - since[0], steady - since[1]
    return got_fast / max(1, got_fast + got_steady)


def after_requests(lab: Lab, n: int) -> tuple[int, int]:
    """The backends' counts once `n` more requests reached them than now."""
    start = sum(lab.counts())
    wait_until(lambda: sum(lab.counts()) >= start + n, PHASE_S, f"{n} more requests served")
    return lab.counts()


def ejected_and_avoided(lab: Lab, *reasons: str) -> None:
    """ "fast" is ejected for one of `reasons`, the entry stops routing to it within a record
    publish, and no request reaches it while it is out."""
    wait_until(lambda: lab.rotation()["state"] == "ejected", PHASE_S, "fast ejected")
    assert lab.rotation()["reason"] in reasons
    wait_until(lambda: not lab.entry_routes_to_fast(), PHASE_S, "the entry's table without it")
    fast, _ = lab.counts()
    after_requests(lab, 10)
    if lab.rotation()["state"] == "ejected":  # still out: nothing reached it meanwhile
        assert lab.received("fast") == fast


def describe(results: list[Result]) -> str:
    return "\n".join(f"{r.request_id} {r.outcome} {r.status} {r.detail}" for r in results[:20])


@pytest.mark.slow
def test_a_bad_backend_is_ejected_and_slow_start_brings_it_back(lab: Lab) -> None:
    load = OpenLoad(lab.procs["entry"].url, MODEL, RATE, streamed=lambda i: False, prefix="outlier")
    load.start()
    try:
        after_requests(lab, 20)
        assert lab.rotation()["state"] == "in"

        # (a) 500s: ejected; back after the ejection, slowly.
        lab.fault("fast", "error")
        ejected_and_avoided(lab, "failures")
        lab.fault("fast", "none")
        wait_until(lambda: lab.rotation()["state"] == "slow-start", PHASE_S, "slow start")
        early = lab.counts()
        wait_until(lambda: lab.rotation()["slots"] >= FAST_SLOTS // 2, PHASE_S, "half way")
        early_share = share_of_fast(lab, early)
        wait_until(lambda: lab.rotation()["state"] == "in", PHASE_S, "all slots again")
        late = lab.counts()
        after_requests(lab, 40)
        late_share = share_of_fast(lab, late)
        # A growing share, not the full share at once: early it had one slot, then a few.
        assert 0.0 < early_share < late_share - 0.2, (early_share, late_share)

        # (b) a hang: the requests it holds time out, then it is ejected. Both daemons time
        # out after a second; the one that does first decides what the serving node sees: its
        # own timeouts (failures), or calls the entry gave up on after a second (slow).
        lab.fault("fast", "hang")
        ejected_and_avoided(lab, "failures", "slow")
        lab.fault("fast", "none")
        wait_until(lambda: lab.rotation()["state"] != "ejected", PHASE_S, "back after the hang")

        # (c) slow answers: ejected on slowness, though every answer succeeded.
        slow_from = time.monotonic()
        lab.fault("fast", "slow", extra_ms=400.0)
        ejected_and_avoided(lab, "slow")
        lab.fault("fast", "none")
        wait_until(lambda: lab.rotation()["state"] != "ejected", PHASE_S, "back after slowness")
        after_requests(lab, 10)
    finally:
        results = load.stop()

    failed = [r for r in results if not r.ok]
    by_status: dict[int | None, list[Result]] = {}
    for r in failed:
        by_status.setdefault(r.status, []).append(r)
    assert set(by_status) <= {500, 504}, describe(failed)
    assert CONSECUTIVE <= len(by_status.get(500, [])) <= CONSECUTIVE + FAST_USABLE - 1
    assert len(by_status.get(504, [])) <= FAST_USABLE + CONSECUTIVE - 1, describe(failed)
    assert not [r for r in failed if r.sent >= slow_from], describe(failed)
    assert len(results) > 100  # the load ran throughout
