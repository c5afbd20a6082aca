"""Mixed hospital load on the shipped emulated topology: every request accounted for exactly once,
every answer naming where it was served, and the emergency lane kept in its tier while batch
work floods the same nodes.

Nine daemons of topologies/hubei.toml (hosts moved to 127.0.49.x), the emulated WAN on, each
site's backend a real demo backend process (127.0.50.x):
- two entry points in Wuhan, wuhan-hospital and wuhan-5g-mec, with no backend of their own, so
  every call is forwarded;
- wuhan-dc-1 (Ascend NPUs) and wuhan-dc-2 (H100s), the only city-tier capacity: both serve the
  emergency CT model, standard chat and batch sequencing on the same slots;
- yichang and xiangyang (province), changsha (region), hub-wuhu and hub-zhangjiakou (national):
  chat and sequencing, the hubs cheap and green.

From both entries at once, for a fixed time: emergency CT reads (city tier) and standard chat
(province tier, half of it streamed) at fixed arrival rates, and closed-loop batch workers, more
of them than the network has slots, asking for any tier. Each request carries its own
x-request-id, so every answer is matched to the one request it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from bench.latency.cluster import WanCluster, localise_topology

from tests.procs import Proc, spawn_demo_backend, wait_until
from tests.routing_helpers import route

# Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
LINKS_REPUBLISH_S = 2.0

NET = "127.0.49"
BACKEND_NET = "127.0.50"
ENTRIES = ("wuhan-hospital", "wuhan-5g-mec")
CITY_TIER = ("wuhan-dc-1", "wuhan-dc-2")
# site: (chip, models, slots, price, green share)
BACKENDS = {
    "wuhan-dc-1": ("ascend-910b", ("ct-triage", "chat-7b", "seq-align"), 4, 2.0, 0.2),
    "wuhan-dc-2": ("nvidia-h100", ("ct-triage", "chat-7b", "seq-align"), 4, 3.0, 0.2),
    "yichang": ("ascend-910b", ("chat-7b", "seq-align"), 4, 1.0, 0.5),
    "xiangyang": ("nvidia-a100", ("chat-7b",), 4, 1.0, 0.5),
    "changsha": ("nvidia-a100", ("chat-7b", "seq-align"), 4, 1.0, 0.3),
    "hub-wuhu": ("nvidia-h100", ("seq-align",), 8, 0.5, 0.9),
    "hub-zhangjiakou": ("ascend-910b", ("seq-align",), 8, 0.3, 1.0),
}
SITES = [*ENTRIES, *BACKENDS]
SERVICE_MS = "20"  # every demo backend; batch and emergency share the same slots
RUN_S = 12.0
EMERGENCY_PER_S = 4.0  # per entry
STANDARD_PER_S = 6.0  # per entry
BATCH_WORKERS = 24  # per entry: 48 in all against 36 batch-usable slots, so batch queues
# Nine daemons cold-start in ~20 s on 2 cores; the emulated probes then need a few rounds before
# the Wuhan pairs are measured inside the city tier.
CONVERGE_S = 150.0
# Longer than any wait admission allows (batch: 30 s) plus service: no request is cut short by
# the client, so each gets its answer from the network.
REQUEST_TIMEOUT_S = 45.0


Network = tuple[WanCluster, dict[str, Proc]]  # the daemons, and each site's demo backend
CITY_ASK = {"model": "ct-triage", "lane": "emergency", "tier": "city", "spill": "none"}
BATCH_ASK = {"model": "seq-align", "lane": "batch"}


@dataclass
class Outcome:
    request_id: str
    lane: str
    entry: str
    status: int
    headers: dict[str, str]
    body: bytes


def backend_config(backend_urls: dict[str, str]) -> Callable[[str], str]:
    def site_config(site: str) -> str:
        if site not in BACKENDS:
            return ""
        chip, models, slots, price, green = BACKENDS[site]
        model_list = ", ".join(f'"{m}"' for m in models)
        return (
            f'[[backends]]\nname = "{site}-0"\nurl = "{backend_urls[site]}"\n'
            f'protocol = "openai"\nmodels = [{model_list}]\nchip = "{chip}"\n'
            f"slots = {slots}\nprice = {price}\ngreen_share = {green}\n"
        )

    return site_config


@pytest.fixture(scope="module")
def network(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WanCluster, dict[str, Proc]]]:
    tmp: Path = tmp_path_factory.mktemp("topology")
    backends: dict[str, Proc] = {}
    try:
        for i, (site, (chip, models, _, _, _)) in enumerate(BACKENDS.items(), start=1):
            workdir = tmp / f"backend-{site}"
            workdir.mkdir()
            backends[site] = spawn_demo_backend(
                workdir, "--host", f"{BACKEND_NET}.{i}", "--chip", chip,
                "--models", ",".join(models), "--service-ms", SERVICE_MS,
                # The daemon's admission is the gate under test: the backend never refuses.
                "--slots", "64", "--name", f"{site}-0",
            )  # fmt: skip
        topology = localise_topology(tmp / "wan", NET)
        urls = {site: proc.url for site, proc in backends.items()}
        with WanCluster(
            tmp,
            topology,
            SITES,
            site_config=backend_config(urls),
            links_republish_s=LINKS_REPUBLISH_S,
        ) as cluster:
            cluster.start_all()

            last: dict[str, object] = {}

            def routable() -> bool:
                for entry in ENTRIES:
                    last[entry] = emergency = route(cluster.procs[entry], CITY_ASK)
                    chosen = emergency.get("chosen") or {}
                    if chosen.get("node") not in CITY_TIER or len(emergency["alternates"]) < 1:
                        return False
                    last[entry] = batch = route(cluster.procs[entry], BATCH_ASK)
                    if len(batch.get("alternates", [])) < 3:  # the decision lists three
                        return False
                return True

            try:
                wait_until(routable, CONVERGE_S, "both entries routing CT reads to the Wuhan DCs")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last decisions: {json.dumps(last)[:3000]}") from None
            yield cluster, backends
    finally:
        for proc in backends.values():
            proc.stop()


def served_counts(backends: dict[str, Proc]) -> dict[str, int]:
    counts = {}
    for site, proc in backends.items():
        with urllib.request.urlopen(f"{proc.url}/demo/stats", timeout=5) as response:
            counts[site] = int(json.loads(response.read())["served"])
    return counts


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


async def send(
    session: aiohttp.ClientSession, url: str, entry: str, lane: str, request_id: str
) -> Outcome:
    model, tier, stream = {
        "emergency": ("ct-triage", "city", False),
        "standard": ("chat-7b", "province", int(request_id.rsplit("-", 1)[1]) % 2 == 0),
        "batch": ("seq-align", "any", False),
    }[lane]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"request {request_id}"}],
        "max_tokens": 4,
        "stream": stream,
    }
    headers = {"x-request-id": request_id, "x-hubhop-lane": lane, "x-hubhop-tier": tier}
    async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as answer:
        return Outcome(
            request_id, lane, entry, answer.status, lowered(answer.headers), await answer.read()
        )


async def mixed_load(entries: dict[str, str]) -> tuple[list[Outcome], Counter[str]]:
    """Run the workload; every request started, and what each got."""
    sent: Counter[str] = Counter()
    tasks: list[asyncio.Task[Outcome]] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + RUN_S

        def start(entry: str, lane: str) -> asyncio.Task[Outcome]:
            sent[lane] += 1
            request_id = f"{entry}-{lane}-{sent[lane]}"
            task = asyncio.ensure_future(send(session, entries[entry], entry, lane, request_id))
            tasks.append(task)
            return task

        async def arrivals(entry: str, lane: str, per_s: float) -> None:
            # Open loop: the next request is due on the clock, whatever the last one is doing.
            due = loop.time()
            while due < stop_at:
                start(entry, lane)
                due += 1.0 / per_s
                await asyncio.sleep(max(0.0, due - loop.time()))

        async def batch_worker(entry: str) -> None:
            while loop.time() < stop_at:
                await start(entry, "batch")

        drivers = []
        for entry in entries:
            drivers.append(arrivals(entry, "emergency", EMERGENCY_PER_S))
            drivers.append(arrivals(entry, "standard", STANDARD_PER_S))
            drivers.extend(batch_worker(entry) for _ in range(BATCH_WORKERS))
        await asyncio.gather(*drivers, return_exceptions=True)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    outcomes = []
    for result in results:
        if isinstance(result, BaseException):
            raise AssertionError(f"a request got no answer at all: {result!r}")
        outcomes.append(result)
    return outcomes, sent


@pytest.mark.slow
def test_mixed_load_is_accounted_for_and_the_emergency_lane_keeps_its_tier(
    network: Network,
) -> None:
    cluster, backends = network
    before = served_counts(backends)
    entries = {entry: cluster.procs[entry].url for entry in ENTRIES}
    outcomes, sent = asyncio.run(mixed_load(entries))
    after = served_counts(backends)

    # Exactly one answer per request sent, each answer the one its request asked for.
    ids = [o.request_id for o in outcomes]
    assert len(ids) == sum(sent.values()) and len(set(ids)) == len(ids)
    for o in outcomes:
        assert o.headers.get("x-request-id") == o.request_id, o
    by_status = Counter((o.lane, o.status) for o in outcomes)
    served = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status != 200]
    for o in refused:  # shed, with a reason and a time to come back; nothing else goes wrong
        assert o.status in (429, 503), (o.status, o.body[:300])
        assert "error" in json.loads(o.body), o.body[:300]
        if o.status == 429:
            assert "retry-after" in o.headers, o.headers

    # Every answer names where it was served, and the path runs from its entry to that node.
    for o in served:
        node = o.headers["x-hubhop-node"]
        path = o.headers["x-hubhop-path"].split(">")
        assert path[0] == o.entry and path[-1] == node, o.headers
        assert o.headers["x-hubhop-backend"] == f"{node}-0"

    # Work served by the backends is the work answered: no request ran twice, except hedge
    # copies, which are counted (a losing copy is cancelled, but may finish as it is).
    hedged = sum(1 for o in served if "x-hubhop-hedged" in o.headers)
    done_at_backends = sum(after.values()) - sum(before.values())
    assert len(served) <= done_at_backends <= len(served) + hedged

    # The emergency lane: every CT read served, inside the city tier, by the Wuhan DCs.
    emergency = [o for o in outcomes if o.lane == "emergency"]
    assert emergency and all(o.status == 200 for o in emergency), by_status
    assert {o.headers["x-hubhop-tier"] for o in emergency} == {"city"}
    assert {o.headers["x-hubhop-node"] for o in emergency} <= set(CITY_TIER)
    # ... while batch work was served on those same nodes, more of it than they have slots for.
    batch_nodes = Counter(o.headers["x-hubhop-node"] for o in served if o.lane == "batch")
    assert all(batch_nodes[node] > 0 for node in CITY_TIER), batch_nodes
    assert by_status[("batch", 200)] > 0 and sent["batch"] > 2 * BATCH_WORKERS
