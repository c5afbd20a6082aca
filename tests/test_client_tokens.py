"""Client tokens: a client known by its bearer token gets its own routing defaults and caps, a
stranger gets 401, and no token ever reaches a backend.

The parsing and the matching are pure (hubhop.core.client_tokens); the endpoint tests run a real
node on loopback in front of a small recording backend, which answers every chat call with the
headers it received, so the test sees exactly what went upstream.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hubhop.core.client_tokens import TokenError, identify, token_digest
from hubhop.core.config import ConfigError, NodeConfig, parse_config
from hubhop.core.routing_hints import HintError, parse_hints
from tests.conftest import start_node
from tests.procs import node_config

RADIOLOGY = "rad-7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f"
SEQUENCING = "seq-0a1b2c3d4e5f60718293a4b5c6d7e8f9"

TOKENS = f"""
[routing]
lane = "standard"
allowed_lanes = ["standard", "batch"]
anonymous = {{anonymous}}

[[tokens]]
name = "radiology"
sha256 = "{token_digest(RADIOLOGY)}"
lane = "emergency"
tier = "city"
allowed_lanes = ["emergency", "standard"]

[[tokens]]
name = "sequencing"
sha256 = "{token_digest(SEQUENCING)}"
lane = "batch"
allowed_lanes = ["batch"]
max_budget = 2.5
"""


def config(backend_url: str = "http://127.0.0.1:9", anonymous: bool = True) -> NodeConfig:
    text = node_config(backend_url) + TOKENS.format(anonymous=str(anonymous).lower())
    return parse_config(text, "tokens.toml")


def ask(cfg: NodeConfig, token_name: str | None, **headers: str) -> Any:
    routing = cfg.routing
    if token_name is not None:
        routing = next(t.routing for t in cfg.tokens if t.name == token_name)
    return parse_hints(lambda name: headers.get(name), "ct-triage", routing)


def test_each_token_has_its_own_defaults_and_caps_and_the_rest_is_the_listeners() -> None:
    cfg = config()
    radiology = ask(cfg, "radiology")
    assert (radiology.lane, radiology.tier, radiology.budget) == ("emergency", "city", math.inf)
    sequencing = ask(cfg, "sequencing")
    assert (sequencing.lane, sequencing.tier, sequencing.budget) == ("batch", "any", 2.5)
    anonymous = ask(cfg, None)
    assert (anonymous.lane, anonymous.tier) == ("standard", "any")


@pytest.mark.parametrize(
    ("token", "headers", "header"),
    [
        ("sequencing", {"x-hubhop-lane": "emergency"}, "x-hubhop-lane"),  # a batch tenant
        ("sequencing", {"x-hubhop-budget": "3"}, "x-hubhop-budget"),  # over its cap
        (None, {"x-hubhop-lane": "emergency"}, "x-hubhop-lane"),  # a stranger
    ],
)
def test_asking_beyond_the_caps_is_403_naming_the_hint(
    token: str | None, headers: dict[str, str], header: str
) -> None:
    with pytest.raises(HintError) as caught:
        ask(config(), token, **headers)
    assert caught.value.status == 403 and caught.value.header == header


def test_a_budget_within_the_cap_stands() -> None:
    assert ask(config(), "sequencing", **{"x-hubhop-budget": "1.5"}).budget == 1.5


def test_identify_matches_the_token_and_refuses_anything_else() -> None:
    tokens = config().tokens
    assert identify(tokens, None) is None
    found = identify(tokens, f"Bearer {SEQUENCING}")
    assert found is not None and found.name == "sequencing"
    found = identify(tokens, f"bearer   {RADIOLOGY} ")
    assert found is not None and found.name == "radiology"
    for bad in ("Bearer", f"Basic {RADIOLOGY}", "Bearer nope", "Bearer " + "x" * 600, ""):
        with pytest.raises(TokenError):
            identify(tokens, bad)


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ('name = "x"\n', "sha256"),
        ('name = "x"\nsha256 = "abc"\n', "sha256"),
        (f'sha256 = "{token_digest("t")}"\n', "name"),
        (f'name = "x"\nsha256 = "{token_digest("t")}"\nlane = "emergency"\n', "lane"),
        (f'name = "x"\nsha256 = "{token_digest("t")}"\nmax_budget = -1\n', "max_budget"),
        (f'name = "x"\nsha256 = "{token_digest("t")}"\nrole = "admin"\n', "role"),
    ],
)
def test_a_faulty_token_entry_is_a_config_error_naming_the_key(entry: str, fault: str) -> None:
    # The listener allows standard and batch only, so "emergency" needs allowed_lanes.
    text = node_config("http://127.0.0.1:9") + (
        '[routing]\nallowed_lanes = ["standard", "batch"]\n[[tokens]]\n' + entry
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "tokens.toml")
    assert f"tokens[0].{fault}" in str(caught.value)


def test_two_tokens_with_one_digest_are_refused() -> None:
    entry = f'[[tokens]]\nname = "{{}}"\nsha256 = "{token_digest("same")}"\n'
    text = node_config("http://127.0.0.1:9") + entry.format("a") + entry.format("b")
    with pytest.raises(ConfigError, match="same sha256"):
        parse_config(text, "tokens.toml")


# --- the endpoint --------------------------------------------------------------------------


@pytest.fixture
async def recording_backend() -> AsyncIterator[str]:
    """An OpenAI-shaped backend that answers with the request headers it received."""

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"object": "chat.completion", "headers": dict(request.headers)})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def post_chat(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    body = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as answer:
        return answer.status, dict(answer.headers), await answer.json()


async def test_a_known_token_is_served_and_never_reaches_the_backend(
    recording_backend: str, http: aiohttp.ClientSession
) -> None:
    node = await start_node(config(recording_backend, anonymous=False))
    try:
        hints = {"Authorization": f"Bearer {RADIOLOGY}", "x-hubhop-lane": "standard"}
        status, _, body = await post_chat(http, node.url, hints)
        assert status == 200, body
        upstream = {name.lower() for name in body["headers"]}
        assert "authorization" not in upstream
        # Health probes need no token; everything else does.
        async with http.get(f"{node.url}/v2/health/ready") as ready:
            assert ready.status == 200
    finally:
        await node.drain_and_stop()


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({}, 401, "only clients with a bearer token"),
        ({"Authorization": "Bearer not-a-token-we-know"}, 401, "not one this node knows"),
        ({"Authorization": "Token abc"}, 401, "Bearer <token>"),
        (
            {"Authorization": f"Bearer {SEQUENCING}", "x-hubhop-lane": "emergency"},
            403,
            "x-hubhop-lane",
        ),
    ],
    ids=["no-token", "unknown-token", "wrong-scheme", "lane-beyond-its-cap"],
)
async def test_strangers_and_overreaching_clients_are_refused_with_a_reason(
    recording_backend: str,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    node = await start_node(config(recording_backend, anonymous=False))
    try:
        got, answer_headers, body = await post_chat(http, node.url, headers)
        assert got == status and says in body["error"]["message"], body
        if status == 401:
            assert answer_headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        await node.drain_and_stop()


async def test_without_a_token_an_anonymous_client_gets_the_listeners_policy(
    recording_backend: str, http: aiohttp.ClientSession
) -> None:
    node = await start_node(config(recording_backend, anonymous=True))
    try:
        status, _, body = await post_chat(http, node.url, {})
        assert status == 200, body
        status, _, body = await post_chat(http, node.url, {"x-hubhop-lane": "emergency"})
        assert status == 403 and "x-hubhop-lane" in body["error"]["message"]
    finally:
        await node.drain_and_stop()


async def test_the_query_commands_present_the_token_from_the_environment(
    recording_backend: str,
) -> None:
    node = await start_node(config(recording_backend, anonymous=False))
    try:
        statuses = []
        for env in ({}, {"HUBHOP_TOKEN": RADIOLOGY}):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hubhop", "members", "--url", node.url,
                env={**os.environ, **env}, stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
            statuses.append((process.returncode, stderr.decode()))
        assert statuses[0][0] == 2 and "401" in statuses[0][1]
        assert statuses[1][0] == 0, statuses[1][1]
    finally:
        await node.drain_and_stop()
