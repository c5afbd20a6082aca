"""The local endpoint's protections, seen from a client and from the backend: each refusal gets
its status and a JSON reason, and nothing of a refused request reaches the backend.

A real node on loopback fronts a recording backend, which keeps every request that reached it.
Addresses: 127.0.63.x (the recorder .1, the nodes .2 to .5).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from hubhop.app import Node
from hubhop.core.client_tokens import token_digest
from hubhop.core.config import parse_config
from hubhop.io.sd_notify import SdNotifier
from tests.conftest import start_app, start_node
from tests.procs import node_config

RADIOLOGY = "rad-3e1d9c7b5a4f2e0d8c6b4a29f7e5d3c1"
CHAT = "chat-8a6c4e2f0b9d7c5a3e1f9b7d5c3a1e0f"
METERED = "met-5b3d1f9e7c5a3b1d9f7e5c3a1b9d7f5e"

TOKENS = f"""
[routing]
allowed_lanes = ["standard", "batch"]
allowed_tiers = ["national", "any"]
max_budget = 1.0

[[tokens]]
name = "radiology"
sha256 = "{token_digest(RADIOLOGY)}"
allowed_lanes = ["emergency", "standard"]

[[tokens]]
name = "chat"
sha256 = "{token_digest(CHAT)}"
allowed_models = ["demo-llm"]

[[tokens]]
name = "metered"
sha256 = "{token_digest(METERED)}"
rate_per_s = 0.5
burst = 2
"""
LIMITS = (
    "max_json_body_bytes = 1024\nmax_body_bytes = 4096\n"
    "max_header_field_bytes = 1024\nmax_headers = 32\n"
)


class Recorder:
    """A backend that keeps what reached it: every request whose head arrived (`started`), and
    every one it read whole, with its headers (`whole`)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.whole: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.started.append(request.path)
        await request.read()
        self.whole.append(dict(request.headers))
        if request.path.startswith("/v2/"):
            return web.json_response({"model_name": "ct-triage", "outputs": []})
        return web.json_response({"object": "chat.completion", "choices": []})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    recording = Recorder()
    runner, url = await start_app(recording.app(), "127.0.63.1")
    try:
        yield recording, url
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def guarded(recorder: tuple[Recorder, str]) -> AsyncIterator[str]:
    """A node with tokens, caps and small limits in front of the recorder; its URL."""
    text = node_config(recorder[1], address="127.0.63.2", extra_http=LIMITS) + TOKENS
    node = await start_node(parse_config(text, "guarded.toml"))
    try:
        yield node.url
    finally:
        await node.drain_and_stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chat(model: str = "demo-llm", pad: int = 0) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "x" * pad}]}
    return json.dumps(body).encode()


async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 512):
        yield b"\0" * 512


INFER = "/v2/models/ct-triage/infer"
CHAT_PATH = "/v1/chat/completions"
# (what is asked, path, headers, body) -> (status, the error's code, or a phrase of its message)
REFUSALS: dict[str, tuple[str, dict[str, str], Any, int, str]] = {
    "wrong-token": (CHAT_PATH, bearer("not-a-token-we-know"), chat(), 401, "unauthorized"),
    "lane-it-may-not-use": (
        CHAT_PATH, {**bearer(CHAT), "x-hubhop-lane": "emergency"}, chat(), 403, "x-hubhop-lane",
    ),
    "model-it-may-not-use": (CHAT_PATH, bearer(CHAT), chat("ct-triage"), 403, "model"),
    "kserve-model-it-may-not-use": (INFER, bearer(CHAT), b"{}", 403, "model"),
    "json-body-over-limit": (CHAT_PATH, bearer(RADIOLOGY), chat(pad=2000), 413, "over the limit"),
    "kserve-body-over-limit": (INFER, bearer(RADIOLOGY), b"\0" * 5000, 413, "over the limit"),
    "header-field-over-limit": (
        CHAT_PATH, {**bearer(RADIOLOGY), "x-trace": "t" * 2000}, chat(), 431,
        "request_header_fields_too_large",
    ),
    "too-many-headers": (
        CHAT_PATH, {**bearer(RADIOLOGY), **{f"x-h{i}": "1" for i in range(40)}}, chat(), 431,
        "request_header_fields_too_large",
    ),
    # Without a token, hints are held to the listener's caps, and a peer's header is no pass.
    "anonymous-lane-beyond-the-listener": (
        CHAT_PATH, {"x-hubhop-lane": "emergency"}, chat(), 403, "x-hubhop-lane",
    ),
    "anonymous-tier-beyond-the-listener": (
        CHAT_PATH, {"x-hubhop-tier": "city"}, chat(), 403, "x-hubhop-tier",
    ),
    "anonymous-budget-beyond-the-listener": (
        CHAT_PATH, {"x-hubhop-budget": "5"}, chat(), 403, "x-hubhop-budget",
    ),
    "anonymous-posing-as-a-peer": (
        CHAT_PATH, {"x-hubhop-target": "test-edge/demo"}, chat(), 403, "forbidden",
    ),
}  # fmt: skip


def says(body: Any, phrase: str) -> bool:
    error = body["error"]
    if isinstance(error, str):  # KServe style
        return phrase in error
    return phrase == error["code"] or phrase in error["message"]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refused_request_gets_its_status_and_nothing_reaches_the_backend(
    case: str, recorder: tuple[Recorder, str], guarded: str, session: aiohttp.ClientSession
) -> None:
    path, headers, body, status, phrase = REFUSALS[case]
    seen = len(recorder[0].started)
    async with session.post(f"{guarded}{path}", data=body, headers=headers) as answer:
        document = await answer.json()
        assert answer.status == status, document
        assert says(document, phrase), document
        if status == 401:
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert recorder[0].started[seen:] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_a_streamed_kserve_body_over_the_limit_is_413_and_never_reaches_it_whole(
    recorder: tuple[Recorder, str], guarded: str, session: aiohttp.ClientSession
) -> None:
    # Chunked, no length: streamed on as it comes, so the backend may see its start; the cut
    # comes at the limit and the backend never gets a whole request.
    seen = len(recorder[0].whole)
    url = f"{guarded}{INFER}"
    async with session.post(url, data=chunks(8192), headers=bearer(RADIOLOGY)) as answer:
        assert answer.status == 413
        assert "over the limit of 4096 bytes" in (await answer.json())["error"]
    assert recorder[0].whole[seen:] == []


async def turned_away(session: aiohttp.ClientSession, node: str, reason: str) -> float:
    """hubhop_turned_away_requests_total{reason} as the node's /metrics says now."""
    async with session.get(f"{node}/metrics", headers=bearer(CHAT)) as answer:
        text = await answer.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            wanted = sample.name == "hubhop_turned_away_requests_total"
            if wanted and sample.labels.get("reason") == reason:
                return float(sample.value)
    return 0.0


@pytest.mark.asyncio(loop_scope="module")
async def test_over_its_rate_a_client_gets_429_with_retry_after_and_nothing_goes_on(
    recorder: tuple[Recorder, str], guarded: str, session: aiohttp.ClientSession
) -> None:
    seen = len(recorder[0].started)
    turned_away_before = await turned_away(session, guarded, "rate_limited")
    answers: list[tuple[int, str | None, Any]] = []
    for _ in range(3):  # a burst of 2, then one token every 2 s
        async with session.post(f"{guarded}{CHAT_PATH}", data=chat(), headers=bearer(METERED)) as a:
            answers.append((a.status, a.headers.get("Retry-After"), await a.json()))
    assert [status for status, _, _ in answers] == [200, 200, 429]
    _, retry_after, error = answers[2]
    assert retry_after == "2" and error["error"]["type"] == "rate_limit_error", error
    assert len(recorder[0].started) - seen == 2
    # /metrics counts it apart from the requests that were routed.
    assert await turned_away(session, guarded, "rate_limited") == turned_away_before + 1
    # Another client is not held back by that one's limit.
    async with session.post(f"{guarded}{CHAT_PATH}", data=chat(), headers=bearer(CHAT)) as a:
        assert a.status == 200


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("path", "body"), [(CHAT_PATH, chat()), (INFER, b"{}")])
async def test_an_allowed_request_reaches_the_backend_without_the_clients_token(
    path: str, body: bytes, recorder: tuple[Recorder, str], guarded: str,
    session: aiohttp.ClientSession,
) -> None:  # fmt: skip
    seen = len(recorder[0].whole)
    async with session.post(f"{guarded}{path}", data=body, headers=bearer(RADIOLOGY)) as answer:
        assert answer.status == 200, await answer.text()
    [upstream] = recorder[0].whole[seen:]
    assert "authorization" not in {name.lower() for name in upstream}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_token_lists_only_the_models_it_may_use(
    guarded: str, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{guarded}/v1/models", headers=bearer(CHAT)) as answer:
        assert [m["id"] for m in (await answer.json())["data"]] == ["demo-llm"]


# --- connections ----------------------------------------------------------------------------


async def raw_request(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """One GET on a new connection: the answer's head and body, read to the close."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


async def test_past_the_connection_bound_a_client_gets_503_and_the_daemon_keeps_serving() -> None:
    extra = "max_client_connections = 2\n"
    text = node_config("http://127.0.0.1:9", address="127.0.63.3", extra_http=extra)
    node = await start_node(parse_config(text, "bounded.toml"))
    host, port = "127.0.63.3", node.bound_port
    held = [await asyncio.open_connection(host, port) for _ in range(2)]
    try:
        head, body = await raw_request(host, port, "/v1/models")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        head, body = await raw_request(host, port, "/v2/health/live")
        assert "connections" in json.loads(body)["error"]  # KServe style on a KServe path
        held.pop()[1].close()
        # Once the daemon has seen that one close, a new connection is served again.
        for _ in range(50):
            head, body = await raw_request(host, port, "/v1/models")
            if head.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.02)
        assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        for _, writer in held:
            writer.close()
        await node.drain_and_stop()


async def test_a_client_trickling_its_headers_is_cut_off_at_the_keepalive_bound() -> None:
    extra = "keepalive_timeout_s = 1.0\n"
    node = await start_node(
        parse_config(node_config("http://127.0.0.1:9", address="127.0.63.4", extra_http=extra), "s")
    )
    host, port = "127.0.63.4", node.bound_port
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    started = loop.time()
    try:
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        closed = asyncio.ensure_future(reader.read())
        for i in range(40):  # a header line every 0.1 s, never the blank line that ends them
            if closed.done():
                break
            writer.write(f"x-slow-{i}: 1\r\n".encode())
            head, _ = await raw_request(host, port, "/v2/health/live")  # others are served
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait({closed}, timeout=0.1)
        assert closed.done() and closed.result() == b"", "the trickling client was never cut off"
        assert 0.9 <= loop.time() - started <= 2.5
    finally:
        writer.close()
        await node.drain_and_stop()


async def test_a_reload_applies_a_changed_rate_and_keeps_an_unchanged_clients_bucket(
    tmp_path: Path,
) -> None:
    async def recorded(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"choices": []})

    app = web.Application()
    app.router.add_post(CHAT_PATH, recorded)
    runner, backend = await start_app(app, "127.0.63.1")

    def limited(changed_rate: str) -> str:
        steady = f'[[tokens]]\nname = "steady"\nsha256 = "{token_digest(RADIOLOGY)}"\n'
        changed = f'[[tokens]]\nname = "changed"\nsha256 = "{token_digest(CHAT)}"\n'
        return (
            node_config(backend, address="127.0.63.5")
            + steady + "rate_per_s = 0.01\nburst = 1\n"
            + changed + f"rate_per_s = {changed_rate}\nburst = 1\n"
        )  # fmt: skip

    path = tmp_path / "node.toml"
    path.write_text(limited("0.01"))
    node = Node(parse_config(path.read_text(), str(path)), path, SdNotifier.from_environ({}))
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def status(token: str) -> int:
                async with http.post(
                    f"{node.url}{CHAT_PATH}", data=chat(), headers=bearer(token)
                ) as a:
                    return a.status

            assert [await status(t) for t in (RADIOLOGY, RADIOLOGY, CHAT, CHAT)] == [200, 429] * 2
            path.write_text(limited("100000"))
            assert node.reload()
            assert await status(CHAT) == 200  # the new rate counts at once
            assert await status(RADIOLOGY) == 429  # same limit: still drained, not refilled
    finally:
        await node.drain_and_stop()
        await runner.cleanup()
