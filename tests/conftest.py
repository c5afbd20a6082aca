"""Shared fixtures: a demo backend and a hubhop node, in process, on real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from hubhop.app import Node
from hubhop.core.config import NodeConfig, parse_config
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io import demo_backend
from hubhop.io.sd_notify import SdNotifier
from tests.procs import node_config

# Short, fixed service times keep the suite fast; a token every 20 ms still spreads a 10-token
# answer over 200 ms, plenty to tell streaming from one burst.
FAST_BACKEND = demo_backend.DemoBackendSettings(
    port=0,
    chip="ascend-910b",
    models=("demo-llm", "ct-triage"),
    service_time=ServiceTimeDistribution.parse("const:5"),
    slots=4,
    token_rate=50.0,
    seed=7,
)


@dataclass
class RunningNode:
    node: Node
    url: str
    backend_url: str


@pytest.fixture
async def backend_url() -> AsyncIterator[str]:
    runner, port = await demo_backend.start(FAST_BACKEND)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def start_node(config: NodeConfig) -> Node:
    node = Node(config, notifier=SdNotifier.from_environ({}))
    await node.start()
    return node


@pytest.fixture
async def make_node(backend_url: str) -> AsyncIterator[Callable[..., object]]:
    """Start a node in this test's loop; `await make_node(extra_http=...)`."""
    nodes: list[Node] = []

    async def make(**kwargs: object) -> RunningNode:
        config = parse_config(node_config(backend_url, **kwargs), "test.toml")  # type: ignore[arg-type]
        node = await start_node(config)
        nodes.append(node)
        return RunningNode(node, node.url, backend_url)

    yield make
    for node in nodes:
        await node.drain_and_stop()


@pytest.fixture
async def node(make_node: Callable[..., object]) -> RunningNode:
    return await make_node()  # type: ignore[no-any-return, misc]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def start_app(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve an aiohttp app on an ephemeral loopback port; returns the runner and its URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, f"http://{host}:{runner.addresses[0][1]}"
