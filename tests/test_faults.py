"""Faults under load, with real daemons on loopback: a serving node killed, a serving node drained,
a city cut off from the hub side and healed. Each test says what was, and was not, lost.

The kill and drain tests run an entry daemon (no backends of its own) and two serving daemons,
each fronting a demo backend, gossiping with short probe intervals so a death is detected in
about a second. The partition test runs two sides on an emulated WAN of its own small topology
and cuts it with the lab switch (POST /hubhop/v1/lab/partitions).

Addresses: daemons on 127.0.66.x, demo backends on 127.0.69.x.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubhop.lab import processes
from hubhop.lab.partitions import set_partition_everywhere
from tests.fault_load import OpenLoad, Result
from tests.procs import Proc, wait_until
from tests.routing_helpers import chat, route

KEY = "AAECAwQFBgcICQoLDA0ODw=="
MODEL = "ct-triage"
GOSSIP_PORT = 7946
# Probing tuned for a test: a dead member is suspected within a round of probes and declared dead
# after the suspicion timeout, about a second in all on three members (see detection_bound_s).
PROBE_INTERVAL_S = 0.2
PROBE_TIMEOUT_S = 0.1
SUSPICION_MULT = 2.0
GOSSIP_INTERVAL_S = 0.05
# Full-state exchanges, each with one live and one dead member, every second (production: 15 s):
# after a partition heals, a member the other side declared dead hears it in one and refutes,
# so the sides merge in a second or two.
PUSH_PULL_INTERVAL_S = 1.0
# Three fresh daemons gossip and measure each other within a few seconds; a loaded 2-core box
# may take several times that.
CONVERGE_S = 30.0
# Service times of tens of ms, streamed tokens at 40 a second: a streamed answer of 12 tokens
# lasts about 0.3 s, so a steady load keeps a few streams running on each serving node.
SERVICE_MS = "const:20"
TOKEN_RATE = "40"
STREAM_TOKENS = 12
# Requests a second through the entry: a few hundred over a test, light for two cores.
RATE = 40.0
# The longest a request of this load stays at a serving node (a stream: 0.32 s), with room for
# a moment's queueing: only requests sent within this before a node died can have been there.
IN_FLIGHT_S = 1.5
DRAIN_GRACE_S = 3.0  # the drained node's in-flight streams last 0.3 s: plenty


def detection_bound_s(members: int) -> float:
    """How long after a node dies every member should have declared it dead, from the gossip
    settings above (hubhop.core.swim, hubhop.core.suspicion): the prober reaches the dead node
    within a round-robin pass of the other members, waits out its probe timeout and the indirect
    round, then the suspicion's timeout (no confirmations expected with fewer than five
    members: the minimum, mult x max(1, log10 n) x interval), then gossip spreads the news.
    Doubled, for a loaded 2-core box."""
    first_probe = (members - 1) * PROBE_INTERVAL_S + PROBE_INTERVAL_S
    suspicion = SUSPICION_MULT * max(1.0, math.log10(members)) * PROBE_INTERVAL_S
    spread = 5 * GOSSIP_INTERVAL_S
    return 2.0 * (first_probe + suspicion + spread)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def member_states(node: Proc) -> dict[str, str]:
    return {m["name"]: m["state"] for m in get_json(f"{node.url}/hubhop/v1/members")["members"]}


def routable_nodes(node: Proc) -> set[str]:
    """The nodes `node` would route MODEL to now: its choice and the feasible alternates."""
    decision = route(node, {"model": MODEL})
    feasible = [decision.get("chosen"), *decision.get("alternates", ())]
    return {c["node"] for c in feasible if c is not None}


def gossip_config(name: str, host: str, seed: str, extra: str = "", role: str = "city") -> str:
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "{host}:0"\n'
        f"[lifecycle]\ndrain_grace_s = {DRAIN_GRACE_S}\n"
        "[latency]\nlinks_republish_s = 1.0\n"  # measured links reach the entry in a second
        f'[gossip]\nbind = "{host}:{GOSSIP_PORT}"\nseeds = ["{seed}:{GOSSIP_PORT}"]\n'
        f'keys = ["{KEY}"]\nprobe_interval_s = {PROBE_INTERVAL_S}\n'
        f"probe_timeout_s = {PROBE_TIMEOUT_S}\nsuspicion_mult = {SUSPICION_MULT}\n"
        f"gossip_interval_s = {GOSSIP_INTERVAL_S}\n"
        f"push_pull_interval_s = {PUSH_PULL_INTERVAL_S}\n"
        # A lab on loopback: requests between daemons in plain TCP, said out loud.
        "[tls]\nplaintext = true\n" + extra
    )


def backend_section(
    name: str, url: str, models: tuple[str, ...] = (MODEL,), price: float = 0.0
) -> str:
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        f'[[backends]]\nname = "{name}"\nurl = "{url}"\nprotocol = "openai"\n'
        f'models = [{model_list}]\nchip = "nvidia-h100"\nslots = 8\nprice = {price}\n'
    )


@dataclass(frozen=True)
class Site:
    """One daemon of a fault test: its name, the last octet of its addresses (daemon 127.0.66.N,
    backend 127.0.69.N), and what its one backend serves at what price (no models: none)."""

    name: str
    octet: int
    models: tuple[str, ...] = ()
    price: float = 0.0

    @property
    def host(self) -> str:
        return f"127.0.66.{self.octet}"

    @property
    def role(self) -> str:
        return "hub" if self.name.startswith("hub") else "city"


def start_lab(
    tmp_path: Path,
    procs: dict[str, Proc],
    sites: list[Site],
    extra_config: str,
    backend_args: tuple[str, ...],
) -> dict[str, Proc]:
    """Every site's demo backend and daemon (seeded by the first), registered in `procs` as they
    are launched so the caller stops them whatever happens; started in parallel, the seed first.
    Returns the daemons by site name."""
    for site in sites:
        (tmp_path / site.name).mkdir()
    for site in sites:
        if site.models:
            procs[f"{site.name}-backend"] = processes.launch_demo_backend(
                tmp_path / site.name, "--host", f"127.0.69.{site.octet}",
                "--models", ",".join(site.models), "--name", f"{site.name}-gpu", *backend_args,
            )  # fmt: skip
    for site in sites:
        if site.models:
            processes.wait_ready_line(procs[f"{site.name}-backend"], processes.DEMO_BACKEND_READY)

    def launch(site: Site) -> Proc:
        text = gossip_config(site.name, site.host, sites[0].host, extra_config, site.role)
        if site.models:
            url = procs[f"{site.name}-backend"].url
            text += backend_section(f"{site.name}-gpu", url, site.models, site.price)
        path = tmp_path / site.name / f"{site.name}.toml"
        path.write_text(text)
        proc = procs[site.name] = processes.launch_hubhop_node(path)
        return proc

    processes.wait_ready_line(launch(sites[0]), processes.HUBHOP_READY)
    for proc in [launch(site) for site in sites[1:]]:
        processes.wait_ready_line(proc, processes.HUBHOP_READY)
    return {site.name: procs[site.name] for site in sites}


TRIO = [Site("entry", 1), Site("serve-b", 2, (MODEL,)), Site("serve-c", 3, (MODEL,))]
TRIO_BACKEND = ("--chip", "nvidia-h100", "--service-ms", SERVICE_MS, "--token-rate", TOKEN_RATE,
                "--slots", "8")  # fmt: skip


@dataclass
class Trio:
    """The entry and the two serving nodes (with their backends) of the kill and drain tests."""

    procs: dict[str, Proc]

    @property
    def entry(self) -> Proc:
        return self.procs["entry"]


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    """A fresh entry, serve-b and serve-c, converged: the entry routes MODEL to both."""
    procs: dict[str, Proc] = {}
    try:
        start_lab(tmp_path, procs, TRIO, "", TRIO_BACKEND)
        trio = Trio(procs)
        wait_until(
            lambda: routable_nodes(trio.entry) == {"serve-b", "serve-c"},
            CONVERGE_S,
            "the entry routing ct-triage to both serving nodes",
        )
        yield trio
    finally:
        processes.stop_all(procs.values())


def start_load(trio: Trio, prefix: str) -> OpenLoad:
    """A steady load through the entry, every third request a stream; returns once both
    serving nodes have answered some of it."""
    load = OpenLoad(
        trio.entry.url, MODEL, RATE, streamed=lambda i: i % 3 == 0, prefix=prefix,
        max_tokens=STREAM_TOKENS,
    )  # fmt: skip
    load.start()
    try:
        wait_until(
            lambda: {r.node for r in load.ended() if r.ok} >= {"serve-b", "serve-c"},
            10.0,
            "both serving nodes answering the load",
        )
    except BaseException:
        load.stop()
        raise
    return load


def describe(results: list[Result]) -> str:
    return "\n".join(
        f"{r.request_id} stream={r.streamed} {r.outcome} {r.status} node={r.node} "
        f"tries={r.tries} {r.detail}"
        for r in results[:20]
    )


@pytest.mark.slow
def test_kill_9_of_a_serving_node_loses_only_what_it_was_serving(trio: Trio) -> None:
    load = start_load(trio, "kill")
    victim, survivor = trio.procs["serve-b"], trio.procs["serve-c"]
    wait_until(
        lambda: any(r.streamed and not r.outcome and r.sent < time.monotonic() - 0.1
                    for r in load.results),
        5.0, "a stream in flight",
    )  # fmt: skip
    os.kill(victim.pid, signal.SIGKILL)  # the node dies: the daemon first, then its backend
    victim.process.wait(10)
    killed_at = time.monotonic()
    os.kill(trio.procs["serve-b-backend"].pid, signal.SIGKILL)
    detected_by = killed_at + detection_bound_s(3)
    wait_until(lambda: time.monotonic() > detected_by + 2.0, 30.0, "load after detection")
    results = load.stop()
    states = member_states(trio.entry)

    # None lost: every request sent ended as exactly one answer or one clear error.
    assert len({r.request_id for r in results}) == len(results) > 100
    truncated = [r for r in results if r.outcome in ("truncated", "transport")]
    assert not truncated, f"requests that ended without a clear error:\n{describe(truncated)}"
    failed = [r for r in results if not r.ok]
    # Only what the dead node was serving at its death fails (sent within an answer's time
    # before it), each with an error that names it: a stream cut mid-answer ends with an error
    # event, an answer whose head had not come is a 502.
    for r in failed:
        assert killed_at - IN_FLIGHT_S < r.sent < killed_at, describe([r])
        assert "serve-b" in r.detail, describe([r])
        assert r.outcome == "error_event" or r.status == 502, describe([r])
    assert any(r.outcome == "error_event" for r in failed), "no stream was cut by the kill"
    # Everything sent after the kill was answered, by the survivor.
    after = [r for r in results if r.sent > killed_at]
    assert after and all(r.ok and r.node == "serve-c" for r in after), describe(
        [r for r in after if not (r.ok and r.node == "serve-c")]
    )
    # Before the entry knew, a request it sent to the dead node was re-routed (a second try);
    # once the failure detection time has passed, none is sent there at all (one try each).
    late = [r for r in after if r.sent > detected_by]
    assert late and all(r.tries == 1 for r in late), describe([r for r in late if r.tries > 1])
    assert states["serve-b"] == "dead" and states["serve-c"] == "alive"
    assert routable_nodes(trio.entry) == {"serve-c"}
    assert survivor.process.poll() is None


@pytest.mark.slow
def test_sigterm_of_a_serving_node_drains_it_without_a_failed_request(trio: Trio) -> None:
    load = start_load(trio, "drain")
    leaving, staying = trio.procs["serve-b"], trio.procs["serve-c"]

    def streams_at_b() -> list[Result]:
        return [r for r in load.results if r.streamed and r.node == "serve-b" and not r.outcome]

    wait_until(lambda: bool(streams_at_b()), 5.0, "a stream being answered by serve-b")
    in_flight = streams_at_b()
    leaving.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    exit_code = leaving.process.wait(DRAIN_GRACE_S + 5.0)
    exited_at = time.monotonic()
    wait_until(lambda: time.monotonic() > exited_at + 1.0, 5.0, "load after the exit")
    results = load.stop()

    # Zero failed: the streams it was answering finished whole, and everything else was
    # answered, re-routed if it reached the leaving node after it stopped taking work.
    failed = [r for r in results if not r.ok]
    assert not failed, describe(failed)
    assert all(r.ok and r.node == "serve-b" for r in in_flight), describe(in_flight)
    assert exit_code == 0
    assert exited_at - signalled_at < DRAIN_GRACE_S + 2.0
    # It left (said so, not found dead), and traffic moved: after the drain, the other serves.
    assert member_states(trio.entry)["serve-b"] == "left"
    assert member_states(staying)["serve-b"] == "left"
    after = [r for r in results if r.sent > exited_at]
    assert after and all(r.node == "serve-c" for r in after), describe(after)
    assert routable_nodes(trio.entry) == {"serve-c"}


# The partition test's network: a city side in Wuhan and a hub side in Guiyang, ~6 ms apart one
# way. Each site's daemon binds its host; the partition cuts every pair across the two sides.
# city-a and hub-d are the entries, with no backends of their own; city-b serves the chat model
# and ct-triage at a price; hub-c serves ct-triage for nothing (where batch work goes while it
# can reach it) and seq-align, served nowhere else.
PARTITION = "city-hub"
CITY_SIDE = [Site("city-a", 11), Site("city-b", 12, ("chat-7b", "ct-triage"), 1.0)]
HUB_SIDE = [Site("hub-c", 13, ("ct-triage", "seq-align"), 0.0), Site("hub-d", 14)]
PLACES = {"city": (30.59, 114.30, "Wuhan"), "hub": (26.65, 106.63, "Guiyang")}


def topology_text() -> str:
    sites = []
    for site in CITY_SIDE + HUB_SIDE:
        lat, lon, city = PLACES[site.role]
        sites.append(
            f'[[sites]]\nname = "{site.name}"\nrole = "{site.role}"\nhost = "{site.host}"\n'
            f'lat = {lat}\nlon = {lon}\ncity = "{city}"\n'
        )
    sides = [", ".join(f'"{site.name}"' for site in side) for side in (CITY_SIDE, HUB_SIDE)]
    return (
        '[topology]\nname = "fault-lab"\n'
        + "".join(sites)
        + f'[[partitions]]\nname = "{PARTITION}"\nsides = [[{sides[0]}], [{sides[1]}]]\n'
    )


# Members' states are watched this long once healed: long enough for every member to probe
# every other several times (4 members, 0.2 s apart).
STEADY_WINDOW_S = 3.0


@dataclass(frozen=True)
class Ask:
    """A request an entry sends in the partition test, and where it may be served."""

    entry: str
    model: str
    lane: str = "standard"


# Where each ask is served while the network is whole, and while it is cut (None: nowhere on
# the entry's side, so a clear 503).
ASKS = {
    Ask("city-a", "ct-triage", "batch"): ("hub-c", "city-b"),  # cheap hub, else the city's own
    Ask("city-a", "seq-align"): ("hub-c", None),  # only across the cut
    Ask("hub-d", "chat-7b"): ("city-b", None),  # only across the cut
    Ask("hub-d", "ct-triage"): ("hub-c", "hub-c"),  # its side's own, throughout
}


def chat_once(entry: Proc, ask: Ask) -> tuple[int, str | None, str]:
    """(status, the node that served it, what the error says) of one chat call via `entry`:
    its message and, for a 503 with the routing decision, each rejected node and why."""
    status, headers, body = chat(entry, ask.model, {"x-hubhop-lane": ask.lane})
    if status == 200:
        return status, headers.get("x-hubhop-node"), ""
    error = body.get("error", {})
    rejected = body.get("route", {}).get("rejected", ())
    why = [f"{c['node']}: {', '.join(c.get('reasons', ()))}" for c in rejected]
    return status, None, f"{error.get('code')}: {error.get('message')} [{'; '.join(why)}]"


def views(procs: dict[str, Proc]) -> dict[str, dict[str, tuple[str, int]]]:
    """Every daemon's members view: (state, incarnation) per member."""
    return {
        name: {
            m["name"]: (m["state"], m["incarnation"])
            for m in get_json(f"{proc.url}/hubhop/v1/members")["members"]
        }
        for name, proc in procs.items()
    }


@pytest.fixture
def two_sides(tmp_path: Path) -> Iterator[dict[str, Proc]]:
    """The four daemons of the partition test on the emulated WAN, converged: each entry
    routes every ask to where the whole network serves it."""
    topology = tmp_path / "fault-lab.toml"
    topology.write_text(topology_text())
    procs: dict[str, Proc] = {}
    try:
        wan = f'[wan]\ntopology = "{topology}"\n'
        backend = ("--chip", "nvidia-h100", "--service-ms", "const:5")
        daemons = start_lab(tmp_path, procs, CITY_SIDE + HUB_SIDE, wan, backend)
        wait_until(
            lambda: all(
                chat_once(daemons[ask.entry], ask)[1] == whole for ask, (whole, _) in ASKS.items()
            ),
            CONVERGE_S,
            "both entries routing across the network",
        )
        yield daemons
    finally:
        processes.stop_all(procs.values())


@pytest.mark.slow
def test_a_partition_keeps_each_side_routing_inside_itself_and_heals_without_flapping(
    two_sides: dict[str, Proc],
) -> None:
    urls = [proc.url for proc in two_sides.values()]
    city, hub = {s.name for s in CITY_SIDE}, {s.name for s in HUB_SIDE}
    across = {name: hub if name in city else city for name in two_sides}

    set_partition_everywhere(urls, PARTITION, True)
    # From the cut on, each side serves what it can itself and refuses the rest, clearly; ask
    # again and again while membership catches up, then once the far side is known dead.
    answers: list[tuple[Ask, int, str | None, str]] = []

    def far_side_dead() -> bool:
        for ask in ASKS:
            answers.append((ask, *chat_once(two_sides[ask.entry], ask)))
        return all(
            state == "dead"
            for name, seen in views(two_sides).items()
            for member, (state, _) in seen.items()
            if member in across[name]
        )

    wait_until(far_side_dead, detection_bound_s(4) + 5.0, "each side declaring the other dead")
    for ask in ASKS:
        answers.append((ask, *chat_once(two_sides[ask.entry], ask)))
    for ask, status, node, message in answers:
        inside = ASKS[ask][1]
        if inside is not None:
            assert (status, node) == (200, inside), (ask, status, node, message)
        else:
            # Refused at once, the error naming the node across the cut and why it cannot serve.
            whole = ASKS[ask][0]
            assert status == 503 and whole in message, (ask, status, message)

    set_partition_everywhere(urls, PARTITION, False)

    def whole_again() -> bool:
        every_alive = all(
            state == "alive" for seen in views(two_sides).values() for state, _ in seen.values()
        )
        return every_alive and all(
            chat_once(two_sides[ask.entry], ask)[:2] == (200, whole)
            for ask, (whole, _) in ASKS.items()
        )

    wait_until(whole_again, 15.0, "the table healing: every member alive, routes across again")
    # No flapping: over a window of steady probing, no member's state or incarnation changes on
    # any daemon (a suspicion refuted bumps its incarnation; one not refuted shows as a state).
    steady = views(two_sides)
    seen_states: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + STEADY_WINDOW_S
    while time.monotonic() < deadline:
        now_seen = views(two_sides)
        seen_states |= {
            (name, member, state)
            for name, seen in now_seen.items()
            for member, (state, _) in seen.items()
        }
        time.sleep(0.1)
    assert {state for _, _, state in seen_states} == {"alive"}, sorted(seen_states)
    assert views(two_sides) == steady
