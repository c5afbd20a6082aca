"""Routing across real daemons on the emulated WAN: tiers, lanes, refusals, re-routes and relays.

Seven `hubhop run` daemons on 127.0.31.x, each on its own site of a small topology written for
these tests, with the emulated WAN on (every datagram and every forwarded request is held for
the one-way delay of its link), so the probes measure the figures below and every decision is
taken on measured links, as in a real network. One-way delays from the entry:

    entry --0.3 ms-- city-q      (city tier)     npu-0 ct-triage (2 slots, 1 of them the
                                                 emergency reserve), npu-1 seq-align (1 slot),
                                                 npu-2 surgery-video (1 slot)
    entry --3.0 ms-- prov-dc     (province)      surgery-video, pathology
    entry --6.0 ms-- region-dc   (region)        pathology, genomics
    entry --8.5 ms-- nat-hub     (national)      genomics, climate-sim
    entry --0.5 ms-- relay       (city)          nothing: a daemon that only passes requests on
    entry --6.0 ms-- far, but relay --0.5 ms-- far: the relayed path (~1.1 ms) beats the slow
                                                 direct link; far serves remote-sensing
    every other pair: 12 ms, so no other relay is ever worth it.

Each model is served where one test needs it, so tests of one module-scoped cluster do not
disturb each other: tiers and spill-over (pathology, genomics, climate-sim), the relay
(remote-sensing), the emergency lane's reserve (ct-triage), a full batch queue (seq-align) and
re-routes away from a full or dead node (surgery-video, city-q first, prov-dc next). One demo
backend process (127.0.33.1) answers for every backend; hubhop's admission, not the demo, is
the queue (its slots are the ones configured here). Answers are one token (~12 ms) or a long
one of LONG_TOKENS (3 s): the demo streams 100 tokens a second.

The last test SIGKILLs city-q's daemon: it must stay last in this file.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from bench.latency.cluster import WanCluster

from tests.procs import Proc, spawn_demo_backend, wait_until
from tests.routing_helpers import chat, route

# Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
LINKS_REPUBLISH_S = 2.0

# Site -> (last octet of its loopback address, role, latitude, longitude, city). Coordinates
# only place the sites on a map; every delay comes from ONE_WAY_MS.
SITES: dict[str, tuple[int, str, float, float, str]] = {
    "entry": (1, "edge", 30.58, 114.27, "Wuhan"),  # the seed, and every request's entry
    "city-q": (2, "city", 30.50, 114.40, "Wuhan"),
    "prov-dc": (3, "city", 30.69, 111.29, "Yichang"),
    "region-dc": (4, "city", 30.57, 104.07, "Chengdu"),
    "nat-hub": (5, "hub", 40.77, 114.88, "Zhangjiakou"),
    "relay": (6, "city", 30.60, 114.30, "Wuhan"),
    "far": (7, "city", 28.23, 112.94, "Changsha"),
}
ONE_WAY_MS = {
    ("entry", "city-q"): 0.3,
    ("entry", "prov-dc"): 3.0,
    ("entry", "region-dc"): 6.0,
    ("entry", "nat-hub"): 8.5,
    ("entry", "relay"): 0.5,
    ("entry", "far"): 6.0,  # the slow direct link
    ("relay", "far"): 0.5,
}
OTHER_PAIRS_MS = 12.0  # beyond the national tier: never part of a shortest path from entry
# Site -> its backends: (name, models, slots).
BACKENDS: dict[str, tuple[tuple[str, tuple[str, ...], int], ...]] = {
    "city-q": (
        ("npu-0", ("ct-triage",), 2),
        ("npu-1", ("seq-align",), 1),
        ("npu-2", ("surgery-video",), 1),
    ),
    "prov-dc": (("gpu-0", ("surgery-video", "pathology"), 4),),
    "region-dc": (("gpu-0", ("pathology", "genomics"), 4),),
    "nat-hub": (("gpu-0", ("genomics", "climate-sim"), 4),),
    "far": (("gpu-0", ("remote-sensing",), 4),),
}
MODELS = sorted({m for backends in BACKENDS.values() for _, models, _ in backends for m in models})
# Seven daemons start in ~10-20 s on two busy cores; a node's record carries its measured links
# from its first network republish (30 s after start, hubhop.core.republish), and the entry
# routes on measured paths once its own record and the others' have them.
CONVERGE_S = 120.0
# Anything else awaited (a request reaching its node, a record catching up): seconds at most.
WAIT_S = 30.0
TOKENS_PER_S = 100
LONG_TOKENS = 300  # 3 s: long enough that everything else of a test happens meanwhile
QUEUED_TOKENS = 30  # 0.3 s: far enough apart to tell the order queued requests finish in
BATCH_QUEUE = 16  # hubhop.core.admission: 16 batch waiters per usable slot


def topology_text() -> str:
    sites = "".join(
        f'[[sites]]\nname = "{name}"\nrole = "{role}"\nlat = {lat}\nlon = {lon}\n'
        f'city = "{city}"\nhost = "127.0.31.{i}"\n'
        for name, (i, role, lat, lon, city) in SITES.items()
    )
    overrides = "".join(
        f'[[overrides]]\nsites = ["{a}", "{b}"]\n'
        f"one_way_ms = {ONE_WAY_MS.get((a, b), OTHER_PAIRS_MS)}\n"
        for a, b in itertools.combinations(SITES, 2)
    )
    # No jitter: the configured figures are what the probes measure.
    return f'[topology]\nname = "routing-wan"\n[model]\njitter_mean_ms = 0.0\n{sites}{overrides}'


def backends_text(backend_url: str) -> Callable[[str], str]:
    def text(site: str) -> str:
        return "".join(
            f'[[backends]]\nname = "{name}"\nurl = "{backend_url}"\nprotocol = "openai"\n'
            f"models = {json.dumps(list(models))}\nslots = {slots}\n"
            for name, models, slots in BACKENDS.get(site, ())
        )

    return text


@pytest.fixture(scope="module")
def wan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WanCluster]:
    tmp = tmp_path_factory.mktemp("routing-wan")
    topology = tmp / "routing-wan.toml"
    topology.write_text(topology_text())
    backend = spawn_demo_backend(
        tmp, "--host", "127.0.33.1", "--models", ",".join(MODELS), "--service-ms", "2",
        "--token-rate", str(TOKENS_PER_S), "--slots", "64", "--max-queue", "256",
    )  # fmt: skip
    try:
        with WanCluster(
            tmp,
            topology,
            list(SITES),
            site_config=backends_text(backend.url),
            links_republish_s=LINKS_REPUBLISH_S,
        ) as cluster:
            cluster.start_all()
            wait_until(lambda: converged(cluster), CONVERGE_S, "entry routing on measured paths")
            yield cluster
    finally:
        backend.stop()


def rows_of(decision: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every candidate a decision shows that serves its model, by node."""
    shown = [decision.get("chosen"), *decision.get("alternates", ()), *decision.get("rejected", ())]
    return {
        c["node"]: c
        for c in shown
        if c is not None and "model not served" not in c.get("reasons", ())
    }


def converged(cluster: WanCluster) -> bool:
    """The entry sees every backend over measured links, and far through the relay."""
    entry = cluster.procs["entry"]
    for model in MODELS:
        rows = rows_of(route(entry, {"model": model}))
        serving = {site for site, backends in BACKENDS.items() for b in backends if model in b[1]}
        # Measured, and direct (but far, reached through the relay): until the entry has
        # measured its own links, a measured relayed path can beat an estimated direct one.
        measured = all(
            not r["estimated"]
            and r["one_way_ms"] is not None
            and (site == "far" or len(r["path"]) == 2)
            for site, r in rows.items()
        )
        if set(rows) != serving or not measured:
            return False
    chosen = route(entry, {"model": "remote-sensing"})["chosen"]
    return chosen is not None and chosen["path"] == ["entry", "relay", "far"]


def hints(**given: str) -> dict[str, str]:
    """Routing hint headers: hints(tier="city") -> {"x-hubhop-tier": "city"}."""
    return {f"x-hubhop-{name.replace('_', '-')}": value for name, value in given.items()}


def timing_ms(headers: dict[str, str], name: str) -> float:
    found = re.search(rf"\b{name};dur=([0-9.]+)", headers.get("server-timing", ""))
    assert found, headers
    return float(found.group(1))


# -----------------------------------------------------------------------------------------------
# (a) tiers and spill-over


@pytest.mark.slow
def test_a_tier_with_nothing_in_it_and_no_spill_is_a_503_naming_each_candidate_over_tier(
    wan: WanCluster,
) -> None:
    status, _, body = chat(wan.procs["entry"], "pathology", hints(tier="city", spill="none"))
    assert status == 503, body
    assert "does not allow spilling over" in body["error"]["message"]
    rejected = rows_of(body["route"])
    assert rejected["prov-dc"]["reasons"] == ["over tier"]
    assert rejected["region-dc"]["reasons"] == ["over tier"]
    assert rejected["prov-dc"]["one_way_ms"] == pytest.approx(3.0, abs=0.5)
    assert body["route"]["chosen"] is None and body["route"]["tier_asked"] == "city"


@pytest.mark.slow
def test_spill_next_serves_one_tier_looser_and_says_it_spilled(wan: WanCluster) -> None:
    entry = wan.procs["entry"]
    status, headers, body = chat(entry, "pathology", hints(tier="city", spill="next"))
    assert status == 200, body
    assert headers["x-hubhop-node"] == "prov-dc"
    assert headers["x-hubhop-path"] == "entry>prov-dc"
    assert headers["x-hubhop-tier"] == "province"
    assert headers["x-hubhop-spilled"] == "1"
    # Asked within its tier, the same node serves it without the spill mark.
    status, headers, body = chat(entry, "pathology", hints(tier="province", spill="none"))
    assert status == 200, body
    assert headers["x-hubhop-node"] == "prov-dc" and headers["x-hubhop-tier"] == "province"
    assert "x-hubhop-spilled" not in headers
    # Region: pathology at region-dc is not the nearest, genomics there is.
    status, headers, body = chat(entry, "genomics", hints(tier="province", spill="next"))
    assert status == 200, body
    assert headers["x-hubhop-node"] == "region-dc"
    assert headers["x-hubhop-tier"] == "region" and headers["x-hubhop-spilled"] == "1"


@pytest.mark.slow
def test_spill_next_goes_one_tier_only_and_spill_any_goes_as_far_as_needed(
    wan: WanCluster,
) -> None:
    entry = wan.procs["entry"]
    # climate-sim runs only at nat-hub (8.5 ms): province spills to region (7 ms), no further.
    status, _, body = chat(entry, "climate-sim", hints(tier="province", spill="next"))
    assert status == 503, body
    assert "nor in the tier it may spill to (next)" in body["error"]["message"]
    assert {n: c["reasons"] for n, c in rows_of(body["route"]).items()} == {
        "nat-hub": ["over tier"]
    }
    status, headers, body = chat(entry, "climate-sim", hints(tier="province", spill="any"))
    assert status == 200, body
    assert headers["x-hubhop-node"] == "nat-hub" and headers["x-hubhop-path"] == "entry>nat-hub"
    assert headers["x-hubhop-tier"] == "any" and headers["x-hubhop-spilled"] == "1"
    # In the national tier it is in tier: no spill needed, none reported.
    status, headers, body = chat(entry, "climate-sim", hints(tier="national", spill="none"))
    assert status == 200, body
    assert headers["x-hubhop-node"] == "nat-hub" and headers["x-hubhop-tier"] == "national"
    assert "x-hubhop-spilled" not in headers
    # genomics is served at region-dc (6 ms) and nat-hub (8.5 ms): the region tier never
    # sends it to nat-hub.
    for _ in range(3):
        status, headers, body = chat(entry, "genomics", hints(tier="region", spill="none"))
        assert status == 200 and headers["x-hubhop-node"] == "region-dc", (status, body)


@pytest.mark.slow
def test_server_timing_counts_the_emulated_network_both_ways(wan: WanCluster) -> None:
    # nat-hub is 8.5 ms away one way: the request waits that long on its way there and the
    # answer's head as long on its way back, so network time is at least 17 ms.
    started = time.monotonic()
    status, headers, body = chat(wan.procs["entry"], "climate-sim", hints(tier="national"))
    elapsed_ms = (time.monotonic() - started) * 1000.0
    assert status == 200, body
    assert elapsed_ms >= 2 * 8.5
    assert timing_ms(headers, "network") >= 0.9 * 2 * 8.5, headers["server-timing"]


# -----------------------------------------------------------------------------------------------
# (e) a relay when it is faster


@pytest.mark.slow
def test_a_relay_carries_the_request_when_the_direct_link_is_slower(wan: WanCluster) -> None:
    entry = wan.procs["entry"]
    decision = route(entry, {"model": "remote-sensing", "tier": "province", "spill": "none"})
    chosen = decision["chosen"]
    assert chosen is not None, decision
    assert chosen["path"] == ["entry", "relay", "far"] and chosen["relayed"] is True
    # The direct link is 6 ms one way (region tier); the relayed path ~1.1 ms (province).
    assert chosen["one_way_ms"] < 2.0
    networks = []
    for _ in range(5):
        status, headers, body = chat(entry, "remote-sensing", hints(tier="province", spill="none"))
        assert status == 200, body
        assert headers["x-hubhop-node"] == "far"
        assert headers["x-hubhop-path"] == "entry>relay>far"
        assert headers["x-hubhop-tier"] == "province" and "x-hubhop-spilled" not in headers
        networks.append(timing_ms(headers, "network"))
    # Both ways over the relay: ~2.2 ms, against 12 ms over the direct link.
    assert sorted(networks)[2] < 2 * 6.0, networks


# -----------------------------------------------------------------------------------------------
# Lanes and admission at a busy node


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    done_at: float  # time.monotonic() when the whole answer was in

    @property
    def node(self) -> str | None:
        return self.headers.get("x-hubhop-node")


def ask(node: Proc, model: str, headers: dict[str, str], tokens: int = 1) -> Answer:
    status, answer_headers, body = chat(node, model, headers, max_tokens=tokens, timeout_s=60.0)
    return Answer(status, answer_headers, body, time.monotonic())


def ahead_at(entry: Proc, model: str, lane: str, node: str) -> float:
    """Requests the entry counts ahead of a new `lane` request at `node`'s backend of `model`
    (in flight from the entry, busy or queued there): its expected queue time over its
    service time. Meant for backends where the lane may use one slot."""
    row = rows_of(route(entry, {"model": model, "lane": lane}))[node]
    expected = row["expected_ms"]
    return float(expected["queue"]) / float(expected["service"])


def until_ahead(
    entry: Proc, model: str, lane: str, node: str, count: int, sent: list[Future[Answer]]
) -> None:
    """Wait until the entry counts `count` requests ahead at `node`, or one of `sent` has
    already been answered (the caller's assertions then say how)."""
    wait_until(
        lambda: any(f.done() for f in sent) or ahead_at(entry, model, lane, node) >= count - 0.01,
        WAIT_S,
        f"{count} {model} requests in flight to {node}",
    )


def described(answer: Answer) -> str:
    """An answer in one line: status, where it was served, or the error and each serving
    candidate's reasons."""
    body = answer.body
    if not isinstance(body, dict) or "error" not in body:
        return f"{answer.status} from {answer.node}"
    reasons = {
        f"{node}/{row['backend']}": row.get("reasons", [])
        for node, row in rows_of(body.get("route") or {}).items()
    }
    retry_after = answer.headers.get("retry-after")
    return f"{answer.status} (Retry-After {retry_after}) {body['error']} {reasons}"


@pytest.mark.slow
def test_an_emergency_request_is_served_while_standard_and_batch_wait_for_a_busy_backend(
    wan: WanCluster,
) -> None:
    """npu-0 has two slots, one of them kept for emergencies: one long standard request fills
    what standard and batch may use, so the next ones wait; an emergency arriving after them
    is served at once from the reserve, and they are served in lane order once the long one
    ends."""
    entry = wan.procs["entry"]
    model, standard, batch = "ct-triage", hints(lane="standard"), hints(lane="batch")
    with ThreadPoolExecutor(8) as pool:
        long = pool.submit(ask, entry, model, standard, LONG_TOKENS)
        until_ahead(entry, model, "standard", "city-q", 1, [long])
        waiting: list[Future[Answer]] = []
        for lane, headers in (("standard", standard), ("standard", standard), ("batch", batch)):
            waiting.append(pool.submit(ask, entry, model, headers, QUEUED_TOKENS))
            until_ahead(entry, model, lane, "city-q", len(waiting) + 1, [long, *waiting])
        emergency = ask(entry, model, hints(lane="emergency"))
        first, second, last = (f.result() for f in waiting)
        held = long.result()
    assert emergency.status == 200 and emergency.node == "city-q", described(emergency)
    for answer in (held, first, second, last):
        assert answer.status == 200 and answer.node == "city-q", described(answer)
    # The emergency answer is in before the long request ends and before anything that was
    # waiting; those follow the long one, standard before batch, in the order they came.
    assert emergency.done_at < held.done_at < first.done_at < second.done_at < last.done_at


@pytest.mark.slow
def test_a_batch_request_finding_the_only_backend_full_gets_429_with_retry_after(
    wan: WanCluster,
) -> None:
    """npu-1 (one slot, the only seq-align backend) runs a long batch job with 16 more batch
    requests waiting, as many as its batch queue holds: the next batch request is refused
    429 with Retry-After and a body saying why; the waiting ones are all served."""
    entry = wan.procs["entry"]
    model, batch = "seq-align", hints(lane="batch")
    with ThreadPoolExecutor(BATCH_QUEUE + 2) as pool:
        long = pool.submit(ask, entry, model, batch, LONG_TOKENS)
        until_ahead(entry, model, "batch", "city-q", 1, [long])
        waiting = [pool.submit(ask, entry, model, batch) for _ in range(BATCH_QUEUE)]
        until_ahead(entry, model, "batch", "city-q", BATCH_QUEUE + 1, [long, *waiting])
        refused = ask(entry, model, batch)
        served = [long.result(), *(f.result() for f in waiting)]
    assert refused.status == 429, described(refused)
    assert int(refused.headers["retry-after"]) >= 1
    assert "full" in refused.body["error"]["message"], refused.body
    assert refused.body["error"]["code"] == "rate_limited"
    assert [a.status for a in served] == [200] * (BATCH_QUEUE + 1), [described(a) for a in served]


@pytest.mark.slow
def test_a_request_refused_by_a_full_node_is_served_by_the_next_best_at_once(
    wan: WanCluster,
) -> None:
    """surgery-video: npu-2 at city-q (one slot) is the only backend in the city tier, prov-dc
    the next best. npu-2 runs a long request; two emergency requests come: the first to
    arrive waits (its lane's queue holds one per slot), the other finds that queue full and is
    refused 429, and the entry re-routes it to prov-dc before its client sees anything. The
    one that waited goes there too once it has waited the emergency lane's longest, 1 s."""
    entry = wan.procs["entry"]
    model = "surgery-video"
    emergency = hints(lane="emergency", tier="city", spill="next", idempotent="0")  # no hedging
    with ThreadPoolExecutor(4) as pool:
        long = pool.submit(ask, entry, model, hints(tier="city", spill="none"), LONG_TOKENS)
        until_ahead(entry, model, "emergency", "city-q", 1, [long])
        first_choice = route(entry, {"model": model, "lane": "emergency", "tier": "city"})
        assert first_choice["chosen"]["node"] == "city-q", first_choice
        started = time.monotonic()
        pair = [pool.submit(ask, entry, model, emergency) for _ in range(2)]
        answers = sorted((f.result() for f in pair), key=lambda a: a.done_at)
        held = long.result()
    for answer in answers:
        assert answer.status == 200, described(answer)
        assert answer.node == "prov-dc"
        assert answer.headers["x-hubhop-path"] == "entry>prov-dc"
        assert answer.headers["x-hubhop-tier"] == "province"
        assert answer.headers["x-hubhop-spilled"] == "1"
        assert answer.headers.get("x-hubhop-tries") == "2", answer.headers
    refused_at_once, waited = answers
    assert refused_at_once.done_at - started < 1.0
    assert waited.done_at - started >= 1.0
    assert held.status == 200 and held.node == "city-q", described(held)


@pytest.mark.slow
def test_zz_a_node_killed_before_membership_notices_is_routed_around(wan: WanCluster) -> None:
    """Last in this file: it kills city-q's daemon (SIGKILL, by its PID). The entry still
    believes it alive and chooses it first; the connection fails before any byte went to the
    client, so the entry serves the request from the next best node."""
    entry = wan.procs["entry"]
    model, headers = "surgery-video", hints(tier="city", spill="next")
    # Wait until city-q is the first choice again (a refusal marks it full until its next record).
    wait_until(
        lambda: (
            (route(entry, {"model": model, "tier": "city"})["chosen"] or {}).get("node") == "city-q"
        ),
        WAIT_S,
        "entry choosing city-q for surgery-video",
    )
    victim = wan.procs["city-q"].process
    victim.kill()
    victim.wait(WAIT_S)
    answer = ask(entry, model, headers)
    members = {m["name"]: m["state"] for m in wan.get("entry", "/hubhop/v1/members")["members"]}
    assert members["city-q"] == "alive", "the entry noticed the death before the request"
    assert answer.status == 200, described(answer)
    assert answer.node == "prov-dc"
    assert answer.headers["x-hubhop-path"] == "entry>prov-dc"
    assert answer.headers["x-hubhop-spilled"] == "1"
    assert answer.headers.get("x-hubhop-tries") == "2", answer.headers
