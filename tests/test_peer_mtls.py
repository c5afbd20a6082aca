"""Mutual TLS between daemons on the data plane: what an operator and an attacker would see.

Two nodes run in this test's loop on real loopback sockets (HTTP, peer listener and gossip on
127.0.64.N, a demo backend on 127.0.65.N), each with a certificate of one lab CA naming it:
edge-a has no backend, city-b serves ct-triage, so an app's request to edge-a crosses to city-b
over mTLS. The peer listener must refuse a certificate of another CA at the handshake, a
certificate that names another node than the sender the request claims, and apps; the app
listener must refuse a forwarded request; SIGHUP's reload must put a rotated certificate into
new handshakes and keep the running one when the new files are bad.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from hubhop.app import Node
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io import demo_backend
from hubhop.io.config_file import check_referenced_files, load_config
from hubhop.io.request_router import TARGET_HEADER, VIA_HEADER
from hubhop.io.sd_notify import SdNotifier
from hubhop.io.upstream_pool import ConnectFailed, UpstreamPool
from hubhop.lab.certs import LabPki, write_lab_pki

KEY = "AAECAwQFBgcICQoLDA0ODw=="
NODES = {"edge-a": 1, "city-b": 2}
MODEL = "ct-triage"
# Two nodes in one loop join, probe and publish their links in about a second (links_republish_s
# below); the bound allows for a loaded box.
CONVERGE_S = 20.0
FORWARDED = {TARGET_HEADER: "city-b/npu-0", VIA_HEADER: "edge-a"}
# The pair is started once for the module's async tests, in one loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def config_text(name: str, pki: LabPki, backend_url: str | None, gossip_port: int = 7946) -> str:
    i = NODES[name]
    text = (
        f'[node]\nname = "{name}"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.64.{i}:0"\n'
        "[lifecycle]\ndrain_grace_s = 1.0\n"
        f'[gossip]\nbind = "127.0.64.{i}:{gossip_port}"\n'
        f'seeds = ["127.0.64.1:{gossip_port}"]\nkeys = ["{KEY}"]\n'
        "gossip_interval_s = 0.05\npush_pull_interval_s = 1.0\n"
        # Probed at once, so the entry knows its link to the peer within a fraction of a second.
        "[latency]\nnear_interval_s = 0.1\nrandom_interval_s = 0.1\nlinks_republish_s = 1.0\n"
        + pki.tls_section(name, f"127.0.64.{i}:0")
    )
    if backend_url is not None:
        text += (
            f'[[backends]]\nname = "npu-0"\nurl = "{backend_url}"\nprotocol = "openai"\n'
            f'models = ["{MODEL}"]\nchip = "ascend-910b"\nslots = 4\n'
        )
    return text


@dataclass
class Pair:
    pki: LabPki
    nodes: dict[str, Node]
    http: aiohttp.ClientSession

    def peer_listener(self, name: str) -> tuple[str, int]:
        listener = self.nodes[name].peer_listener
        assert listener is not None
        return f"127.0.64.{NODES[name]}", listener.port


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "a CT series"}]}


async def chat(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None, **kw: Any
) -> aiohttp.ClientResponse:
    """An app's chat call (`kw`: aiohttp's, such as the TLS server_hostname)."""
    async with http.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, **kw) as answer:
        await answer.read()
        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    tmp_path = tmp_path_factory.mktemp("mtls")
    pki = write_lab_pki(tmp_path / "pki", list(NODES))
    backend = demo_backend.DemoBackendSettings(
        host="127.0.65.2", models=(MODEL,), service_time=ServiceTimeDistribution.parse("const:1"),
        token_rate=1000.0, max_tokens=2, seed=1,
    )  # fmt: skip
    runner, port = await demo_backend.start(backend)
    nodes: dict[str, Node] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        try:
            for name in NODES:
                path = tmp_path / f"{name}.toml"
                url = f"http://127.0.65.2:{port}" if name == "city-b" else None
                path.write_text(config_text(name, pki, url))
                config = load_config(path)
                check_referenced_files(config)
                nodes[name] = Node(config, path, SdNotifier.from_environ({}))
                await nodes[name].start()
            entry = nodes["edge-a"].url
            deadline = asyncio.get_running_loop().time() + CONVERGE_S
            while (await _route(http, entry)).get("chosen") is None:
                assert asyncio.get_running_loop().time() < deadline, "edge-a never saw city-b"
                await asyncio.sleep(0.05)
            yield Pair(pki, nodes, http)
        finally:
            await asyncio.gather(*(node.drain_and_stop() for node in nodes.values()))
            await runner.cleanup()


async def _route(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.post(f"{url}/hubhop/v1/route", json={"model": MODEL}) as response:
        body: dict[str, Any] = await response.json()
        return body


def client_context(pki: LabPki, name: str) -> ssl.SSLContext:
    """What a daemon named `name` presents: its certificate, trusting the lab CA."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    context.load_cert_chain(pki.cert(name), pki.key(name))
    return context


async def peer_serial(pair: Pair, name: str) -> int:
    """The serial of the certificate `name`'s peer listener shows a new handshake."""
    host, port = pair.peer_listener(name)
    _, writer = await asyncio.open_connection(
        host, port, ssl=client_context(pair.pki, "edge-a"), server_hostname=name
    )
    try:
        cert = writer.get_extra_info("peercert")
        return int(cert["serialNumber"], 16)
    finally:
        writer.close()


async def raw_answer(pair: Pair, context: ssl.SSLContext) -> bytes:
    """The first bytes city-b's peer listener answers a forwarded request with (b"": none)."""
    host, port = pair.peer_listener("city-b")
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname="city-b"
    )
    try:
        head = "".join(f"{name}: {value}\r\n" for name, value in FORWARDED.items())
        writer.write(f"GET /v2/models/{MODEL} HTTP/1.1\r\nHost: city-b\r\n{head}\r\n".encode())
        return await asyncio.wait_for(reader.read(12), 10)
    finally:
        writer.close()


async def test_a_request_crosses_to_the_peer_over_mutual_tls(pair: Pair) -> None:
    response = await chat(pair.http, pair.nodes["edge-a"].url)
    assert response.status == 200
    assert response.headers["x-hubhop-node"] == "city-b"
    assert response.headers["x-hubhop-path"] == "edge-a>city-b"
    # The record advertises the peer listener, which peers reach at https://.
    host, port = pair.peer_listener("city-b")
    route = await _route(pair.http, pair.nodes["edge-a"].url)
    assert route["chosen"]["url"] == f"https://{host}:{port}"


async def test_the_app_listener_refuses_a_forwarded_request(pair: Pair) -> None:
    response = await chat(pair.http, pair.nodes["city-b"].url, FORWARDED)
    assert response.status == 403
    assert "peer listener" in (await response.json())["error"]["message"]


async def test_the_peer_listener_refuses_another_cas_certificate_at_the_handshake(
    pair: Pair, tmp_path: Path
) -> None:
    assert (await raw_answer(pair, client_context(pair.pki, "edge-a"))) == b"HTTP/1.1 200"
    stranger = write_lab_pki(tmp_path / "stranger", ["edge-a"])
    context = ssl.create_default_context(cafile=str(pair.pki.ca.cert_path))
    assert (await raw_answer(pair, context)) == b""  # no certificate
    context.load_cert_chain(stranger.cert("edge-a"), stranger.key("edge-a"))
    assert (await raw_answer(pair, context)) == b""  # edge-a's name, another CA


async def test_a_certificate_must_name_the_node_that_claims_to_send(pair: Pair) -> None:
    pair.pki.issue("mallory")  # signed by the right CA, but no node of the cluster
    host, port = pair.peer_listener("city-b")
    url = f"https://{host}:{port}"
    connector = aiohttp.TCPConnector(ssl=client_context(pair.pki, "mallory"))
    async with aiohttp.ClientSession(connector=connector) as mallory:
        claims_edge = await chat(mallory, url, FORWARDED, server_hostname="city-b")
        assert claims_edge.status == 403
        message = (await claims_edge.json())["error"]["message"]
        assert message == "the client certificate names mallory, not the sender 'edge-a'"
        as_itself = {**FORWARDED, VIA_HEADER: "mallory"}
        named_truly = await chat(mallory, url, as_itself, server_hostname="city-b")
        assert named_truly.status == 403  # but not a member
        app_call = await chat(mallory, url, server_hostname="city-b")
        assert app_call.status == 403  # the peer listener is no door for apps


async def test_the_client_refuses_a_peer_whose_certificate_names_another_node(
    pair: Pair,
) -> None:
    """The node that answers must be the node the route chose: city-b's listener, reached as
    if it were hub-c, fails the handshake, and nothing is sent."""
    host, port = pair.peer_listener("city-b")
    pool = UpstreamPool(4, 2.0, tls=client_context(pair.pki, "edge-a"))
    try:
        with pytest.raises(ConnectFailed, match=r"[Hh]ostname mismatch"):
            await pool.acquire((host, port, None, "hub-c"), asyncio.get_running_loop().time() + 5)
    finally:
        await pool.close()


async def test_reload_rotates_the_certificate_and_keeps_it_when_the_new_one_is_bad(
    pair: Pair,
) -> None:
    city = pair.nodes["city-b"]
    before = await peer_serial(pair, "city-b")
    rotated = pair.pki.issue("city-b")
    assert city.reload()  # what SIGHUP calls
    assert await peer_serial(pair, "city-b") == rotated != before
    # A key that does not match the certificate: the reload keeps the running pair.
    pair.pki.cert("city-b").write_bytes(pair.pki.cert("edge-a").read_bytes())
    assert not city.reload()
    assert await peer_serial(pair, "city-b") == rotated
    response = await chat(pair.http, pair.nodes["edge-a"].url)
    assert response.status == 200 and response.headers["x-hubhop-node"] == "city-b"
