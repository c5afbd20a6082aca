"""The routing benchmark's gateway as a real process (bench/routing/gateway.py): its WAN relays
and its oracle, in front of one demo backend, on 127.0.57.x (this test's range alone).

Two made-up serving sites share the backend: `near` is 5 ms away but says it is slow (a long
prefill, a slow decode), `far` is 40 ms away and fast, so the oracle's choice shows it ranks by
expected completion, not by distance.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bench.routing.gateway import start_routing_gateway

from hubhop.lab import processes

BACKEND_HOST = "127.0.57.1"
RELAY_HOSTS = {"near": "127.0.57.2", "far": "127.0.57.3"}
SOURCE_IP = "127.0.57.10"
STRANGER_IP = "127.0.57.11"
ORACLE_HOST = "127.0.57.20"
ONE_WAY_MS = {"near": 5.0, "far": 40.0}
MODEL = "chat-7b"
# The backend streams a token every 5 ms: a whole 8-token answer in 40 ms, a 2000-token one in
# 10 s (long enough to hang up in the middle of and see the slot freed well before its end).
TOKEN_RATE = 200


@dataclass
class Lab:
    backend: processes.Proc
    gateway: processes.Proc
    port: int

    def relay(self, site: str) -> str:
        return f"http://{RELAY_HOSTS[site]}:{self.port}"

    @property
    def oracle(self) -> str:
        return f"http://{ORACLE_HOST}:{self.port}"


def site(name: str, backend_url: str, prefill_ms: float, token_rate: float) -> dict[str, Any]:
    return {
        "site": name, "relay_host": RELAY_HOSTS[name], "backend": backend_url,
        "models": [MODEL], "chip": "cpu", "slots": 2, "price": 1.0, "green_share": 0.0,
        "prefill_ms": prefill_ms, "token_rate": token_rate,
    }  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("gateway")
    backend = processes.start_demo_backend(
        workdir, "--host", BACKEND_HOST, "--service-ms", "const:1", "--slots", "2",
        "--models", MODEL, "--token-rate", str(TOKEN_RATE), "--seed", "1",
    )  # fmt: skip
    started = [backend]
    try:
        port = processes.free_port(RELAY_HOSTS["near"])
        config = {
            "port": port,
            "sites": [
                site("near", backend.url, prefill_ms=500.0, token_rate=10.0),
                site("far", backend.url, prefill_ms=1.0, token_rate=1000.0),
            ],
            "entries": [{"site": "hospital", "source_ip": SOURCE_IP, "oracle_host": ORACLE_HOST}],
            "one_way_ms": {"hospital": {name: [ms, ms] for name, ms in ONE_WAY_MS.items()}},
        }
        path = Path(workdir) / "gateway.json"
        path.write_text(json.dumps(config))
        gateway = start_routing_gateway(workdir, path)
        started.append(gateway)
        assert gateway.url == f"http://{RELAY_HOSTS['near']}:{port}"
        yield Lab(backend, gateway, port)
        assert gateway.stop() == 0, gateway.log_tail()  # SIGTERM: a clean exit
    finally:
        processes.stop_all(started)


def client(source: str = SOURCE_IP) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))


def chat(max_tokens: int, stream: bool = False) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


async def stats(lab: Lab) -> dict[str, Any]:
    async with client() as session, session.get(lab.oracle + "/gateway/stats") as answer:
        return dict(await answer.json())


async def test_a_relay_holds_each_way_and_says_where_it_served(lab: Lab) -> None:
    async with client() as session:
        started = time.perf_counter()
        async with session.post(lab.relay("far") + "/v1/chat/completions", json=chat(1)) as ok:
            body = await ok.json()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        assert ok.status == 200, body
        assert elapsed_ms >= 2 * ONE_WAY_MS["far"] - 1.0  # the loop's timers round to 1 ms
        assert ok.headers["x-hubhop-node"] == "far"
        assert ok.headers["x-hubhop-path"] == "hospital>far"
        assert ok.headers["x-hubhop-tier"] == "any"  # 40 ms is beyond every named tier
        async with session.get(lab.relay("near") + "/v2/models/" + MODEL) as meta:
            assert meta.status == 200 and (await meta.json())["name"] == MODEL
            assert meta.headers["x-hubhop-node"] == "near"
            assert meta.headers["x-hubhop-tier"] == "province"  # 5 ms: a bound is inclusive


async def test_a_streamed_chat_arrives_whole_through_a_relay(lab: Lab) -> None:
    async with client() as session:
        url = lab.relay("near") + "/v1/chat/completions"
        async with session.post(url, json=chat(8, stream=True)) as answer:
            assert answer.status == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            text = (await answer.read()).decode()
    events = [line for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    tokens = [json.loads(e[6:]) for e in events[:-1]]
    assert sum(1 for t in tokens if t["choices"] and t["choices"][0]["delta"].get("content")) == 8


async def test_an_unknown_source_address_is_refused_clearly(lab: Lab) -> None:
    async with client(STRANGER_IP) as session:
        url = lab.relay("near") + "/v1/chat/completions"
        async with session.post(url, json=chat(1)) as answer:
            body = await answer.json()
    assert answer.status == 403
    assert body["error"]["code"] == "unknown_source"
    assert STRANGER_IP in body["error"]["message"] and SOURCE_IP in body["error"]["message"]


async def test_a_client_that_hangs_up_frees_the_backend_slot(lab: Lab) -> None:
    async with client() as session:
        url = lab.relay("near") + "/v1/chat/completions"
        async with session.post(url, json=chat(2000, stream=True)) as answer:
            assert answer.status == 200
            await answer.content.readany()
    backend_stats = lab.backend.url + "/demo/stats"
    deadline = time.monotonic() + 2.0
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(backend_stats) as answer:
                in_flight = (await answer.json())["in_flight"]
            if in_flight == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert in_flight == 0


async def test_the_oracle_routes_to_the_fastest_to_complete_site(lab: Lab) -> None:
    async with client("127.0.0.1") as session:  # the oracle takes any client
        url = lab.oracle + "/v1/chat/completions"
        headers = {"x-hubhop-lane": "standard"}
        started = time.perf_counter()
        async with session.post(url, json=chat(4), headers=headers) as answer:
            body = await answer.json()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        assert answer.status == 200, body
        assert answer.headers["x-hubhop-node"] == "far"
        assert answer.headers["x-hubhop-path"] == "hospital>far"
        assert answer.headers["x-hubhop-tier"] == "any"
        assert elapsed_ms >= 2 * ONE_WAY_MS["far"] - 1.0
        # Held to the province tier, the 40 ms site is out of reach and `none` may not leave.
        tight = {"x-hubhop-tier": "province", "x-hubhop-spill": "none"}
        async with session.post(url, json=chat(1), headers=tight) as near:
            assert near.status == 200 and near.headers["x-hubhop-node"] == "near"
        async with session.post(url, json={"messages": []}) as bad:
            assert bad.status == 400 and (await bad.json())["error"]["code"] == "missing_model"
        async with session.post(url, json=chat(1), headers={"x-hubhop-lane": "fast"}) as hint:
            assert hint.status == 400 and "x-hubhop-lane" in (await hint.json())["error"]["message"]


async def idle_stats(lab: Lab) -> dict[str, Any]:
    """The gateway's stats once nothing is in flight (answers end a moment after they arrive)."""
    deadline = time.monotonic() + 3.0
    while True:
        found = await stats(lab)
        if found["idle"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert found["idle"], found
    return found


async def test_stats_count_what_happened(lab: Lab) -> None:
    before = await idle_stats(lab)
    async with client() as session:
        async with session.post(lab.relay("near") + "/v1/chat/completions", json=chat(1)) as ok:
            assert ok.status == 200
        async with session.post(lab.oracle + "/v1/chat/completions", json=chat(1)) as ok:
            assert ok.status == 200
        async with session.post(lab.oracle + "/v1/completions", data=b"{") as bad:
            assert bad.status == 400
    async with client(STRANGER_IP) as session, session.get(lab.relay("far") + "/v2") as refused:
        assert refused.status == 403
    after = await idle_stats(lab)

    def grew(*path: str) -> int:
        old: Any = before
        new: Any = after
        for key in path:
            old, new = old[key], new[key]
        return int(new) - int(old)

    assert grew("sites", "near", "relayed") == 1 and grew("sites", "near", "statuses", "200") == 1
    assert grew("sites", "far", "oracle") == 1 and grew("sites", "far", "relayed") == 0
    assert grew("unknown_sources") == 1 and grew("upstream_errors") == 0
    assert grew("oracle", "dispatched") == 1 and grew("oracle", "bad_requests") == 1
    assert grew("oracle", "lanes", "standard", "dispatched") == 1
    oracle = after["oracle"]
    assert (oracle["in_flight"], oracle["waiting"], oracle["shed"]) == (0, 0, 0)
    assert after["in_flight"] == 0


async def test_the_oracle_queues_past_its_usable_slots_and_sheds_past_one_turn(lab: Lab) -> None:
    # Each site says 2 slots, one of them the emergency reserve: one standard request each at a
    # time, two more may wait (one turn), a fifth is shed. A 60-token answer takes the backend
    # 300 ms, so all five are in before the first ends.
    before = await idle_stats(lab)
    async with client() as session:

        async def one() -> tuple[int, str | None]:
            url = lab.oracle + "/v1/chat/completions"
            async with session.post(url, json=chat(60)) as answer:
                await answer.read()
                return answer.status, answer.headers.get("Retry-After")

        answers = await asyncio.gather(*(one() for _ in range(5)))
    assert sorted(answers) == [(200, None)] * 4 + [(429, "1")]
    after = await idle_stats(lab)
    grew = {k: after["oracle"][k] - before["oracle"][k] for k in ("dispatched", "queued", "shed")}
    assert grew == {"dispatched": 4, "queued": 2, "shed": 1}
    assert after["oracle"]["max_waiting"] >= 2
