"""The lab switch for emulated partitions (POST /hubhop/v1/lab/partitions): there only on a node
with an emulated WAN, refusing bad switches clearly, and reporting what is cut.

In process, on 127.0.66.21-22 (the fault tests' range; tests/test_faults.py cuts real daemons).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubhop.app import Node
from hubhop.core.config import parse_config
from tests.conftest import RunningNode, start_node

PATH = "/hubhop/v1/lab/partitions"
TOPOLOGY = """
[topology]
name = "switch-lab"
[[sites]]
name = "here"
role = "city"
host = "127.0.66.21"
lat = 30.59
lon = 114.30
city = "Wuhan"
[[sites]]
name = "there"
role = "hub"
host = "127.0.66.22"
lat = 26.65
lon = 106.63
city = "Guiyang"
[[partitions]]
name = "cut"
pairs = [["here", "there"]]
"""


@pytest.fixture
async def wan_node(tmp_path: Path) -> AsyncIterator[Node]:
    topology = tmp_path / "switch-lab.toml"
    topology.write_text(TOPOLOGY)
    config = parse_config(
        '[node]\nname = "here"\nrole = "city"\nregion = "hubei"\ncity = "wuhan"\n'
        '[http]\nlisten = "127.0.66.21:0"\n'
        '[gossip]\nbind = "127.0.66.21:7946"\nkeys = ["AAECAwQFBgcICQoLDA0ODw=="]\n'
        "[tls]\nplaintext = true\n"
        f'[wan]\ntopology = "{topology}"\n',
        "lab.toml",
    )
    node = await start_node(config)
    try:
        yield node
    finally:
        await node.drain_and_stop()


async def send(
    http: aiohttp.ClientSession, url: str, body: object = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """GET the switch's state (no body), or POST `body` as JSON (or `raw` bytes)."""
    if raw is not None:
        request = http.post(url + PATH, data=raw)
    elif body is not None:
        request = http.post(url + PATH, json=body)
    else:
        request = http.get(url + PATH)
    async with request as response:
        return response.status, await response.json()


async def test_a_node_without_an_emulated_wan_has_no_switch(
    node: RunningNode, http: aiohttp.ClientSession
) -> None:
    for body in (None, {"name": "cut", "active": True}):
        status, answer = await send(http, node.url, body)
        assert status == 404
        assert answer["error"]["code"] == "no_emulated_wan"
        assert "[wan]" in answer["error"]["message"]


async def test_the_switch_cuts_and_heals_and_refuses_bad_switches(
    wan_node: Node, http: aiohttp.ClientSession
) -> None:
    url = wan_node.url
    status, answer = await send(http, url)
    assert (status, answer["site"]) == (200, "here")
    assert answer["partitions"] == [{"name": "cut", "active": False}]

    bad = [
        ({"name": "elsewhere", "active": True}, 404, "no partition 'elsewhere'"),
        ({"name": "cut", "active": "yes"}, 400, "active: true or false"),
        ({"name": "cut"}, 400, "active: true or false"),
        ({"name": "cut", "active": True, "when": 3}, 400, "unknown keys: when"),
        (["cut", True], 400, "the body must be"),
    ]
    for body, code, message in bad:
        status, answer = await send(http, url, body)
        assert status == code and message in answer["error"]["message"], (body, answer)
    status, answer = await send(http, url, raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]["message"]
    status, answer = await send(http, url, raw=b"{" + b" " * 5000 + b"}")
    assert status == 413
    assert (await send(http, url))[1]["partitions"] == [{"name": "cut", "active": False}]

    status, answer = await send(http, url, {"name": "cut", "active": True})
    assert status == 200 and answer["partitions"] == [{"name": "cut", "active": True}]
    assert (await send(http, url))[1]["partitions"] == [{"name": "cut", "active": True}]
    status, answer = await send(http, url, {"name": "cut", "active": False})
    assert answer["partitions"] == [{"name": "cut", "active": False}]
