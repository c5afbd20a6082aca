"""The live view (/ui) and its feed (GET /hubhop/v1/watch, server-sent events).

- In process: a node with a client token; the page is open, the feed wants the token, sends a
  snapshot, then the decision of a request as it ends and the node's request counts, and ends
  when the node drains.
- End to end (slow): three real daemons on an emulated WAN (the shipped Hubei topology, moved
  to 127.0.73.x): a Wuhan hospital's edge node (the entry, with a token and no anonymous
  clients), Shiyan's city data centre (province tier) and the Zhangjiakou national hub. Headless
  Chromium opens the entry's /ui, is given the token in the page's form, waits until the page
  shows all three nodes and the decisions of three requests, then Shiyan is killed (SIGKILL)
  and the page must mark it dead. A screenshot goes under the test's tmp_path, and also to
  $HUBHOP_UI_SCREENSHOT when set (how docs/ui.png is made).

Addresses: 127.0.73.x only (the topology's sites keep their last octet; backends on .50+).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubhop.app import Node
from hubhop.core.client_tokens import token_digest
from hubhop.core.config import parse_config
from hubhop.io import demo_backend
from hubhop.lab.cluster import label, localise_topology
from hubhop.lab.processes import (
    DEMO_BACKEND_READY,
    HUBHOP_READY,
    launch_demo_backend,
    launch_hubhop_node,
    wait_ready_line,
)
from hubhop.wan.topology import load_topology
from tests.chromium import Browser, chromium_or_skip
from tests.conftest import FAST_BACKEND, start_node
from tests.procs import Proc, node_config, wait_until
from tests.routing_helpers import chat

NET = "127.0.73"
TOKEN = "live-view-test-token"
TOKENS = (
    f'[routing]\nanonymous = false\n[[tokens]]\nname = "ops"\nsha256 = "{token_digest(TOKEN)}"\n'
)
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Each event is awaited at most this long: the feed compares every half second and sends the
# counts every second; a loaded 2-core box gets a wide margin.
EVENT_WAIT_S = 5.0


# ---- in process --------------------------------------------------------------------------------


@pytest.fixture
async def guarded_node() -> AsyncIterator[Node]:
    """A node on 127.0.73.50 that serves only clients with TOKEN, fronting a demo backend."""
    runner, port = await demo_backend.start(replace(FAST_BACKEND, host=f"{NET}.51"))
    text = node_config(f"http://{NET}.51:{port}", address=f"{NET}.50") + TOKENS
    node = await start_node(parse_config(text, "live-view.toml"))
    try:
        yield node
    finally:
        if node.phase != "draining":
            await node.drain_and_stop()
        await runner.cleanup()


async def sse_events(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(kind, data) per server-sent event; keep-alive comments are skipped."""
    kind, data = "", ""
    while line := (await stream.readline()).decode():
        line = line.rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "", ""


async def next_of(events: AsyncIterator[tuple[str, dict[str, Any]]], kind: str) -> dict[str, Any]:
    """The next event of `kind` (rows change as the request holds a slot: those are skipped)."""
    async with asyncio.timeout(EVENT_WAIT_S):
        async for got, data in events:
            if got == kind:
                return data
    raise AssertionError(f"the feed ended before a {kind} event")


async def test_the_feed_wants_the_token_sends_a_snapshot_then_decisions_and_ends_on_drain(
    guarded_node: Node, http: aiohttp.ClientSession
) -> None:
    url = guarded_node.url
    async with http.get(f"{url}/ui") as page:  # the page holds no data: open
        assert page.status == 200 and page.content_type == "text/html"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<table id="members">' in await page.text()
    async with http.get(f"{url}/ui/ui.js") as script:
        assert script.status == 200 and script.content_type == "text/javascript"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        async with http.get(f"{url}/hubhop/v1/watch", headers=headers) as refused:
            assert refused.status == 401

    watch = guarded_node.state.watch
    assert watch is not None
    async with http.get(f"{url}/hubhop/v1/watch", headers=BEARER) as closed_tab:
        assert (await anext(sse_events(closed_tab.content)))[0] == "snapshot"
        assert watch.watchers == 1
    async with asyncio.timeout(EVENT_WAIT_S):  # a reader that left costs nothing for long
        while watch.watchers:  # noqa: ASYNC110 (the watch has no event for a reader leaving)
            await asyncio.sleep(0.05)

    async with http.get(f"{url}/hubhop/v1/watch", headers=BEARER) as feed:
        assert feed.status == 200 and feed.content_type == "text/event-stream"
        events = sse_events(feed.content)
        kind, snapshot = await anext(events)
        assert kind == "snapshot" and snapshot["node"] == "test-edge"
        assert [(r["node"], r["backend"]) for r in snapshot["rows"]] == [("test-edge", "demo")]
        assert snapshot["decisions"] == []
        assert (await next_of(events, "counts"))["requests"] == []

        body = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}]}
        ask = {**BEARER, "x-request-id": "live-view-1", "x-hubhop-lane": "batch"}
        async with http.post(f"{url}/v1/chat/completions", json=body, headers=ask) as answer:
            assert answer.status == 200
            await answer.read()
        decision = (await next_of(events, "decision"))["decision"]
        assert decision["request_id"] == "live-view-1" and decision["client"] == "ops"
        assert (decision["served_by"], decision["backend"]) == ("test-edge", "demo")
        assert decision["lane"] == "batch" and decision["outcome"] == "served"
        counts = (await next_of(events, "counts"))["requests"]
        assert [(c["lane"], c["outcome"], c["count"]) for c in counts] == [("batch", "served", 1)]

        draining = asyncio.create_task(guarded_node.drain_and_stop())
        async with asyncio.timeout(EVENT_WAIT_S):
            assert [kind async for kind, _ in events if kind != "row"] == []
        await draining


# ---- end to end, in Chromium -------------------------------------------------------------------

ENTRY, CITY, HUB = "wuhan-hospital", "shiyan", "hub-zhangjiakou"
KEY = "AAECAwQFBgcICQoLDA0ODw=="
GOSSIP_PORT = 7946
# Probing tuned for a test (as tests/test_faults.py): a killed node is declared dead within a
# second or two of three members.
GOSSIP = (
    "probe_interval_s = 0.2\nprobe_timeout_s = 0.1\nsuspicion_mult = 2.0\n"
    "gossip_interval_s = 0.05\npush_pull_interval_s = 1.0\n"
)
# Per site: its backend (name, chip, models, slots, price, green share), so the members table
# and the decisions have something to tell apart: the hub is the cheap, green, big one.
BACKENDS = {
    ENTRY: ("ct-edge", "ascend-910b", ("ct-triage",), 4, 2.0, 0.3),
    CITY: ("city-gpu", "nvidia-h100", ("ct-triage", "demo-llm"), 8, 1.0, 0.5),
    HUB: ("hub-gpu", "nvidia-h100", ("demo-llm",), 16, 0.4, 0.9),
}
# Three daemons start, join and measure each other in a few seconds; a loaded box takes longer.
CONVERGE_S = 20.0
# The page sees a death once the entry declares it: about a second here, doubled and more.
DEAD_S = 10.0
WIDTH, HEIGHT = 1400, 1000


def site_config(site: str, topology: Path, backend_url: str) -> str:
    s = load_topology(topology).site(site)
    seed = load_topology(topology).site(ENTRY).host
    name, chip, models, slots, price, green = BACKENDS[site]
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        f'[node]\nname = "{site}"\nrole = "{s.role}"\n'
        f'region = "{label(s.region)}"\ncity = "{label(s.city)}"\n'
        f'[http]\nlisten = "{s.host}:0"\n'
        "[lifecycle]\ndrain_grace_s = 1.0\n"
        "[latency]\nlinks_republish_s = 1.0\n"  # measured links reach the entry in a second
        f'[gossip]\nbind = "{s.host}:{GOSSIP_PORT}"\nseeds = ["{seed}:{GOSSIP_PORT}"]\n'
        f'keys = ["{KEY}"]\n{GOSSIP}'
        "[tls]\nplaintext = true\n"  # every daemon of this test is on this one machine
        f'[wan]\ntopology = "{topology}"\n'
        + (TOKENS if site == ENTRY else "")
        + f'[[backends]]\nname = "{name}"\nurl = "{backend_url}"\nprotocol = "openai"\n'
        f'models = [{model_list}]\nchip = "{chip}"\nslots = {slots}\nprice = {price}\n'
        f"green_share = {green}\n"
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Proc]]:
    """One demo backend serving every model, the entry (the seed), then the other two."""
    topology = localise_topology(tmp_path / "wan", NET)
    procs: list[Proc] = []
    try:
        backend = launch_demo_backend(
            tmp_path, "--host", f"{NET}.52", "--models", "ct-triage,demo-llm", "--slots", "16",
            "--service-ms", "const:20",
        )  # fmt: skip
        procs.append(backend)
        wait_ready_line(backend, DEMO_BACKEND_READY)
        nodes: dict[str, Proc] = {}
        for group in ((ENTRY,), (CITY, HUB)):  # a node joins through the seed, up first
            for site in group:
                path = tmp_path / f"{site}.toml"
                path.write_text(site_config(site, topology, backend.url))
                nodes[site] = launch_hubhop_node(path)
                procs.append(nodes[site])
            for site in group:
                wait_ready_line(nodes[site], HUBHOP_READY)
        yield nodes
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    (tmp_path / "chromium").mkdir()
    opened = Browser(chromium, tmp_path / "chromium", WIDTH, HEIGHT)
    try:
        yield opened
    finally:
        opened.close()


def table_latencies(entry: Proc) -> dict[str, Any]:
    request = urllib.request.Request(f"{entry.url}/hubhop/v1/table", headers=BEARER)
    with urllib.request.urlopen(request, timeout=10) as response:
        rows = json.loads(response.read())["rows"]
    return {row["node"]: row["latency"] for row in rows}


# A node as page_nodes() finds it: its state in the members table's row (attribute and text)
# and on the map.
ALIVE = {"row": "alive", "text": "alive", "map": "alive"}
DEAD = {"row": "dead", "text": "dead", "map": "dead"}
DECISIONS_SHOWN = (
    "[...document.querySelectorAll('#decisions tr[data-request]')].map(tr => tr.dataset.request)"
)


def connection(browser: Browser) -> str:
    """The feed's state as the page shows it: connecting, live, unauthorized, disconnected."""
    state: str = browser.evaluate("document.getElementById('connection').dataset.state")
    return state


def page_nodes(browser: Browser) -> dict[str, dict[str, str]]:
    """What the page shows per node: its state in the members table, on the map, and the text
    of its state cell."""
    shown: dict[str, dict[str, str]] = browser.evaluate(
        """(() => {
            const out = {};
            for (const tr of document.querySelectorAll('#members tbody tr[data-node]')) {
                out[tr.dataset.node] = {row: tr.dataset.state,
                                        text: tr.querySelector('td.state').textContent};
            }
            for (const g of document.querySelectorAll('#map g[data-node]')) {
                (out[g.dataset.node] = out[g.dataset.node] || {}).map = g.dataset.state;
            }
            return out;
        })()"""
    )
    return shown


@pytest.mark.slow
def test_the_live_view_shows_the_cluster_and_marks_a_killed_node_dead(
    cluster: dict[str, Proc], browser: Browser, tmp_path: Path
) -> None:
    entry = cluster[ENTRY]
    browser.navigate(f"{entry.url}/ui")
    # No anonymous clients at the entry: the page asks for a token, and a person types it.
    wait_until(
        lambda: connection(browser) == "unauthorized",
        EVENT_WAIT_S,
        "the page asks for a token",
    )
    browser.evaluate(
        f"document.getElementById('token').value = {json.dumps(TOKEN)};"
        "document.getElementById('token-form').requestSubmit(); true"
    )
    wait_until(
        lambda: set(page_nodes(browser)) == {ENTRY, CITY, HUB},
        CONVERGE_S,
        "the page shows all three nodes",
    )
    assert connection(browser) == "live"
    assert TOKEN not in browser.evaluate("location.href")  # kept in sessionStorage, not a URL
    assert all(shown == ALIVE for shown in page_nodes(browser).values())

    # Three requests to give the page decisions to explain: one served here, two carried.
    wait_until(
        lambda: all(table_latencies(entry).get(n) for n in (CITY, HUB)),
        CONVERGE_S,
        "the entry knows its latency to both peers",
    )
    # The map places the peers by their network coordinates once their records carry them.
    placed = (
        "Object.fromEntries([...document.querySelectorAll('#map [data-node]')]"
        ".map((g) => [g.dataset.node, g.dataset.placed]))"
    )
    wait_until(
        lambda: (
            browser.evaluate(placed) == {ENTRY: "centre", CITY: "coordinates", HUB: "coordinates"}
        ),
        CONVERGE_S,
        "the map places both peers by their coordinates",
    )
    asks = [
        ("ct-triage", "emergency", "city"),
        ("demo-llm", "standard", "province"),
        ("demo-llm", "batch", "any"),
    ]
    ids = []
    for n, (model, lane, tier) in enumerate(asks):
        ids.append(f"live-view-e2e-{n}")
        headers = {**BEARER, "x-request-id": ids[-1], "x-hubhop-lane": lane, "x-hubhop-tier": tier}
        status, _, _ = chat(entry, model, headers)
        assert status == 200
    wait_until(
        lambda: set(ids) <= set(browser.evaluate(DECISIONS_SHOWN)),
        EVENT_WAIT_S,
        "the page lists the three decisions",
    )

    os.kill(cluster[CITY].pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: page_nodes(browser).get(CITY) == DEAD,
        DEAD_S,
        f"the page marks {CITY} dead",
    )
    print(f"{CITY} shown dead {time.monotonic() - killed:.1f} s after the kill")
    assert page_nodes(browser)[ENTRY] == ALIVE and page_nodes(browser)[HUB] == ALIVE

    shot = tmp_path / "ui.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG")
    wanted = os.environ.get("HUBHOP_UI_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        Path(wanted).write_bytes(shot.read_bytes())
