"""This node's own rows in the routing table: they read admission live, and count each call once.

The bug this guards against: an entry node serving from its own backend counted a call twice,
once in the busy slots its own record reported (sampled when published) and once in its local
in-flight count, so 32 calls on a 64-slot backend read as 64 busy and were refused or queued.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import Any

import aiohttp

from hubhop.core.admission import Admission
from hubhop.core.config import parse_config
from hubhop.io.admission_gate import AdmissionGate
from hubhop.scoring.candidates import BackendLoad, CandidateTable
from hubhop.scoring.scorer import Scorer
from hubhop_native import columns as col
from tests.conftest import start_node
from tests.procs import node_config

ME = "test-edge"
ADDRESS = "127.0.52.1"  # this file's own loopback address
KEY = "AAECAwQFBgcICQoLDA0ODw=="


def record_load(busy: float, queue: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> BackendLoad:
    """What this node's own record says of its backend: 8 slots, one kept for emergencies."""
    return BackendLoad(("chat-7b",), "cpu", 1.0, 0.5, 8, 1, busy, queue, 40.0)


def figures(table: CandidateTable) -> tuple[float, float]:
    """The busy slots and standard-lane queue the kernels read for this node's backend."""
    table.materialize()
    row = table.row_of(ME, "gpu")
    assert row is not None
    num = table.row_num
    return float(num[col.ROW_BUSY, row]), float(num[col.ROW_QUEUE_STANDARD, row])


async def test_own_rows_follow_admission_and_not_the_published_record() -> None:
    scorer = Scorer(ME)
    table = scorer.table
    table.upsert(ME, "gpu", record_load(busy=5.0))  # published under an earlier burst
    gate = AdmissionGate(Admission({"gpu": (8, 1)}))

    gate.watch_load(partial(table.set_live_load, ME))
    assert figures(table) == (0.0, 0.0)  # nothing held now, whatever the record said

    held = [await gate.acquire("gpu", "standard") for _ in range(7)]  # every unreserved slot
    assert figures(table) == (7.0, 0.0)
    waiting = asyncio.ensure_future(gate.acquire("gpu", "standard"))
    await asyncio.sleep(0)
    assert figures(table) == (7.0, 1.0)

    # A record arriving meanwhile rebuilds the row: the live figures stay.
    table.remove_node(ME)
    table.upsert(ME, "gpu", record_load(busy=0.0))
    assert figures(table) == (7.0, 1.0)

    held[0].release()  # its slot goes to the waiter
    held.append(await waiting)
    assert figures(table) == (7.0, 0.0)
    for slot in held[1:]:
        slot.release()
    assert figures(table) == (0.0, 0.0)


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _route(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.post(f"{url}/hubhop/v1/route", json={"model": "demo-llm"}) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_calls_to_its_own_backend_count_once_in_the_entrys_decision(
    backend_url: str, http: aiohttp.ClientSession
) -> None:
    """4 slots, 1 reserved: 2 calls in flight leave a free slot. The record published while an
    earlier pair ran still says 2 busy when the next pair runs; counted from it and from the
    local in-flight count, they read as 4 busy, and the next call would queue behind them."""
    gossip = f'[gossip]\nbind = "{ADDRESS}:{_free_udp_port(ADDRESS)}"\nkeys = ["{KEY}"]\n'
    gossip += "[tls]\nplaintext = true\n"
    node = await start_node(parse_config(node_config(backend_url, address=ADDRESS) + gossip, "t"))
    try:
        first = await _route(http, node.url)
        assert first["chosen"]["node"] == ME and not first["queued"]

        async def chat() -> int:
            body = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 15}  # fmt: skip
            async with http.post(f"{node.url}/v1/chat/completions", json=body) as response:
                await response.read()
                return response.status

        async def pair_in_flight() -> asyncio.Future[tuple[int, int]]:
            calls = asyncio.gather(chat(), chat())
            for _ in range(400):
                if node.sample_load()["demo"][0] == 2.0:
                    return calls
                await asyncio.sleep(0.005)
            raise AssertionError("the two calls never held their slots")

        earlier = await pair_in_flight()
        assert node.gossip is not None
        node.gossip.publish(force=True)  # published under load: 2 busy
        assert list(await earlier) == [200, 200]
        later = await pair_in_flight()  # before the record says otherwise

        during = await _route(http, node.url)
        assert during["chosen"]["node"] == ME
        assert not during["queued"]
        assert during["chosen"]["expected_ms"]["queue"] == 0.0
        assert list(await later) == [200, 200]
    finally:
        await node.drain_and_stop()
