"""The demo backend over real sockets on 127.0.0.1: OpenAI and KServe v2 APIs, load, lifecycle.

Service times here are a few milliseconds and token rates high, so the file runs in seconds;
where a test needs requests to overlap it uses a constant service time and watches
`/demo/stats` instead of guessing from timings. Every test is bounded by `bounded()`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io.demo_backend import (
    DemoBackendSettings,
    QueueFull,
    SlotPool,
    add_arguments,
    run_from_cli,
    start,
)

REPO = Path(__file__).resolve().parents[1]
MODEL = "demo-llm"
ONE_INT = {"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}


def bounded(seconds: float) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Any]]:
    """Fail a test that runs longer than `seconds` instead of letting it hang."""

    def decorate(test: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        @functools.wraps(test)
        async def run_bounded(*args: Any, **kwargs: Any) -> None:
            await asyncio.wait_for(test(*args, **kwargs), seconds)

        return run_bounded

    return decorate


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[str]:
    """A demo backend on an ephemeral loopback port; yields its base URL."""
    options: dict[str, Any] = {
        "service_time": ServiceTimeDistribution.parse("const:2"),
        "token_rate": 500.0,
        "seed": 7,
        "chip": "ascend-910b",
        "name": "demo-a",
    }
    options.update(overrides)
    runner, port = await start(DemoBackendSettings(**options))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def openai_client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=5)


async def stats(session: aiohttp.ClientSession, base_url: str) -> dict[str, Any]:
    async with session.get(f"{base_url}/demo/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def wait_for_stats(
    session: aiohttp.ClientSession, base_url: str, **expected: int
) -> dict[str, Any]:
    """Poll /demo/stats until it shows `expected`; the caller's bound stops a hang."""
    while True:
        current = await stats(session, base_url)
        if all(current[key] == value for key, value in expected.items()):
            return current
        await asyncio.sleep(0.005)


# --- OpenAI ----------------------------------------------------------------------------------


@bounded(10)
async def test_streamed_chat_arrives_token_by_token_over_the_generation_time() -> None:
    token_rate, max_tokens = 50.0, 8
    async with serving(token_rate=token_rate) as base_url:
        client = openai_client(base_url)
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "route my scan"}],
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        arrivals: list[float] = []
        chunks = []
        async for chunk in stream:
            arrivals.append(time.monotonic())
            chunks.append(chunk)
        await client.close()
    token_chunks = [chunk for chunk in chunks if chunk.choices]
    assert len(token_chunks) == max_tokens
    assert token_chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in token_chunks] == [None] * 7 + ["length"]
    assert all(chunk.choices[0].delta.content for chunk in token_chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == max_tokens
    # Paced, not one burst: 8 tokens at 50/s spread over about 7 intervals of 20 ms.
    spread = arrivals[len(token_chunks) - 1] - arrivals[0]
    assert spread >= 0.7 * (max_tokens - 1) / token_rate


@bounded(10)
async def test_stream_is_server_sent_events_ending_in_done() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with (
        serving() as base_url,
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    events = [event for event in raw.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert len(chunks) == DemoBackendSettings().max_tokens
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert "usage" not in chunks[0]  # only with stream_options.include_usage
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@bounded(10)
async def test_chat_completion_whole_answer() -> None:
    async with serving() as base_url:
        client = openai_client(base_url)
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "read this CT image please"}]
        )
        completion = raw.parse()
        again = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "read this CT image please"}]
        )
        capped = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_completion_tokens=3
        )
        await client.close()
    assert raw.headers["x-backend-chip"] == "ascend-910b"
    assert raw.headers["x-backend-name"] == "demo-a"
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert len(choice.message.content or "") > 20
    assert completion.usage is not None
    assert completion.usage.completion_tokens == DemoBackendSettings().max_tokens
    assert completion.usage.prompt_tokens == 5
    assert again.choices[0].message.content == choice.message.content  # same seed and prompt
    assert capped.choices[0].finish_reason == "length"
    assert capped.usage is not None and capped.usage.completion_tokens == 3


@bounded(10)
async def test_text_completions_whole_and_streamed() -> None:
    async with serving() as base_url:
        client = openai_client(base_url)
        whole = await client.completions.create(model=MODEL, prompt="Once", max_tokens=5)
        stream = await client.completions.create(
            model=MODEL, prompt="Once", max_tokens=5, stream=True
        )
        pieces = [chunk.choices[0].text async for chunk in stream]
        await client.close()
    assert whole.object == "text_completion"
    assert whole.choices[0].finish_reason == "length"
    assert len(pieces) == 5
    assert "".join(pieces) == whole.choices[0].text


@bounded(10)
async def test_embeddings_are_deterministic_per_input() -> None:
    async with serving() as base_url, aiohttp.ClientSession() as session:
        client = openai_client(base_url)
        # The openai client asks for base64 by default and decodes it.
        first = await client.embeddings.create(model=MODEL, input=["alpha", "beta"])
        single = await client.embeddings.create(model=MODEL, input="alpha")
        await client.close()
        body = {"model": MODEL, "input": "alpha", "encoding_format": "float"}
        async with session.post(f"{base_url}/v1/embeddings", json=body) as response:
            as_floats = await response.json()
    alpha, beta = (item.embedding for item in first.data)
    assert len(alpha) == len(beta) == 16
    assert alpha != beta
    assert single.data[0].embedding == pytest.approx(alpha)
    assert as_floats["data"][0]["embedding"] == pytest.approx(alpha, abs=1e-6)
    assert sum(value * value for value in alpha) == pytest.approx(1.0, abs=1e-5)


@bounded(10)
async def test_models_list() -> None:
    async with serving(models=("demo-llm", "qwen2-7b")) as base_url:
        client = openai_client(base_url)
        page = await client.models.list()
        await client.close()
    assert [model.id for model in page.data] == ["demo-llm", "qwen2-7b"]
    assert {model.owned_by for model in page.data} == {"demo-a"}


@bounded(10)
async def test_unknown_model_is_404_model_not_found() -> None:
    body = {"model": "gpt-nope", "messages": [{"role": "user", "content": "hi"}]}
    async with serving() as base_url, aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/v1/chat/completions", json=body) as response:
            assert response.status == 404
            error = (await response.json())["error"]
        client = openai_client(base_url)
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="gpt-nope", input="x")
        await client.close()
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "gpt-nope" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", b"{not json", None),
        ("/v1/chat/completions", b"[1, 2]", None),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        ("/v1/chat/completions", b'{"model": "demo-llm"}', "messages"),
        ("/v1/chat/completions", b'{"model": "demo-llm", "messages": []}', "messages"),
        ("/v1/completions", b'{"model": "demo-llm", "prompt": "x", "max_tokens": 0}', "max_tokens"),
        ("/v1/embeddings", b'{"model": "demo-llm", "input": 5}', "input"),
    ],
)
@bounded(10)
async def test_malformed_requests_are_400(path: str, body: bytes, param: str | None) -> None:
    async with (
        serving() as base_url,
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}{path}", data=body) as response,
    ):
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@bounded(10)
async def test_every_response_names_the_backend() -> None:
    async with serving() as base_url, aiohttp.ClientSession() as session:
        for path in ("/v1/models", "/v2/health/live", "/demo/stats", "/no/such/path"):
            async with session.get(f"{base_url}{path}") as response:
                assert response.headers["x-backend-chip"] == "ascend-910b"
                assert response.headers["x-backend-name"] == "demo-a"


# --- KServe v2 -------------------------------------------------------------------------------


@bounded(10)
async def test_kserve_metadata_and_health() -> None:
    async with serving() as base_url, aiohttp.ClientSession() as session:

        async def get(path: str) -> tuple[int, Any]:
            async with session.get(f"{base_url}{path}") as response:
                return response.status, await response.json()

        assert (await get("/v2"))[1]["name"] == "demo-a"
        assert await get("/v2/health/live") == (200, {"live": True})
        assert await get("/v2/health/ready") == (200, {"ready": True})
        status, metadata = await get(f"/v2/models/{MODEL}")
        assert status == 200 and metadata["name"] == MODEL and metadata["versions"] == ["1"]
        assert (await get(f"/v2/models/{MODEL}/versions/1"))[0] == 200
        assert await get(f"/v2/models/{MODEL}/ready") == (200, {"name": MODEL, "ready": True})
        assert (await get(f"/v2/models/{MODEL}/versions/1/ready"))[0] == 200
        status, error = await get(f"/v2/models/{MODEL}/versions/9")
        assert status == 404 and set(error) == {"error"}
        status, error = await get("/v2/models/nope/ready")
        assert status == 404 and "nope" in error["error"]


@bounded(10)
async def test_kserve_json_infer_echoes_tensors() -> None:
    inputs = [
        {"name": "image", "shape": [2, 3], "datatype": "FP32", "data": [[0.5, 1, 2], [3, 4, 5.25]]},
        {"name": "mask", "shape": [4], "datatype": "BOOL", "data": [True, False, True, True]},
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["ct", "scan"]},
    ]
    async with serving() as base_url, aiohttp.ClientSession() as session:
        url = f"{base_url}/v2/models/{MODEL}/versions/1/infer"
        async with session.post(url, json={"id": "req-42", "inputs": inputs}) as response:
            assert response.status == 200
            echoed = await response.json()
        only_label = {"inputs": inputs, "outputs": [{"name": "label"}]}
        async with session.post(url, json=only_label) as response:
            filtered = await response.json()
    assert echoed["id"] == "req-42"
    assert echoed["model_name"] == MODEL
    assert echoed["outputs"] == inputs
    assert "id" not in filtered
    assert filtered["outputs"] == [inputs[2]]


@pytest.mark.parametrize(
    "request_body",
    [
        {"inputs": []},
        {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]},
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}]},
        {"inputs": [ONE_INT], "outputs": [{"name": "y"}]},
        {"inputs": [{**ONE_INT, "data": None, "parameters": {"binary_data_size": 4}}]},
    ],
)  # fmt: skip
@bounded(10)
async def test_kserve_bad_infer_requests_are_400(request_body: dict[str, Any]) -> None:
    async with serving() as base_url, aiohttp.ClientSession() as session:
        url = f"{base_url}/v2/models/{MODEL}/infer"
        async with session.post(url, json=request_body) as response:
            assert response.status == 400
            error = await response.json()
    assert set(error) == {"error"} and error["error"]


def binary_request(tensors: dict[str, bytes]) -> tuple[bytes, dict[str, str]]:
    """The JSON header for UINT8 binary inputs plus one inline input, and the extension header."""
    header = {
        "id": "bin-1",
        "inputs": [
            *(
                {
                    "name": name,
                    "shape": [len(data)],
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": len(data)},
                }
                for name, data in tensors.items()
            ),
            {"name": "inline", "shape": [2], "datatype": "FP64", "data": [0.5, 1.5]},
        ],
    }
    header_bytes = json.dumps(header).encode()
    return header_bytes, {
        "Inference-Header-Content-Length": str(len(header_bytes)),
        "Content-Type": "application/octet-stream",
    }


@bounded(15)
async def test_kserve_binary_extension_streams_and_digests_each_tensor() -> None:
    blob = os.urandom(3 * 1024 * 1024 + 17)
    small = bytes(range(256)) * 4
    header_bytes, headers = binary_request({"blob": blob, "small": small})

    async def body() -> AsyncIterator[bytes]:
        yield header_bytes
        for offset in range(0, len(blob), 64 * 1024):
            yield blob[offset : offset + 64 * 1024]
        yield small

    async with serving() as base_url, aiohttp.ClientSession() as session:
        url = f"{base_url}/v2/models/{MODEL}/infer"
        async with session.post(url, data=body(), headers=headers) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert list(outputs) == ["blob_nbytes", "blob_crc32", "small_nbytes", "small_crc32", "inline"]
    assert outputs["blob_nbytes"] == {
        "name": "blob_nbytes", "shape": [1], "datatype": "INT64", "data": [len(blob)]
    }  # fmt: skip
    assert outputs["blob_crc32"]["data"] == [zlib.crc32(blob)]
    assert outputs["small_nbytes"]["data"] == [len(small)]
    assert outputs["small_crc32"]["data"] == [zlib.crc32(small)]
    assert outputs["inline"]["data"] == [0.5, 1.5]
    assert answer["id"] == "bin-1"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("extra", [-10, 10], ids=["short", "long"])
@bounded(10)
async def test_kserve_binary_sizes_must_match_the_body(streamed: bool, extra: int) -> None:
    tensor = b"\x01" * 1000
    header_bytes, headers = binary_request({"tensor": tensor})
    payload = header_bytes + (tensor + b"\x02" * extra if extra > 0 else tensor[:extra])

    async def body() -> AsyncIterator[bytes]:
        yield payload

    async with serving() as base_url, aiohttp.ClientSession() as session:
        url = f"{base_url}/v2/models/{MODEL}/infer"
        data: Any = body() if streamed else payload
        async with session.post(url, data=data, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["error"]


# --- load ------------------------------------------------------------------------------------


@bounded(10)
async def test_slots_bound_concurrency_and_the_rest_queue() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    settings = {"slots": 2, "service_time": ServiceTimeDistribution.parse("const:150")}
    async with serving(**settings) as base_url, aiohttp.ClientSession() as session:

        async def chat() -> int:
            async with session.post(f"{base_url}/v1/chat/completions", json=body) as response:
                return response.status

        requests = [asyncio.create_task(chat()) for _ in range(5)]
        busy = await wait_for_stats(session, base_url, in_flight=2, queued=3)
        peak_in_flight = 0
        while not all(request.done() for request in requests):
            peak_in_flight = max(peak_in_flight, (await stats(session, base_url))["in_flight"])
            await asyncio.sleep(0.01)
        assert [await request for request in requests] == [200] * 5
        done = await stats(session, base_url)
    assert busy["slots"] == 2 and busy["chip"] == "ascend-910b" and busy["models"] == [MODEL]
    assert peak_in_flight <= 2
    assert done["served"] == 5 and done["in_flight"] == 0 and done["queued"] == 0


@bounded(10)
async def test_a_full_queue_answers_503_with_retry_after() -> None:
    chat_body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    infer_body = {"inputs": [ONE_INT]}
    slow = ServiceTimeDistribution.parse("const:300")
    async with (
        serving(slots=1, max_queue=1, service_time=slow) as base_url,
        aiohttp.ClientSession() as session,
    ):

        async def chat() -> int:
            async with session.post(f"{base_url}/v1/chat/completions", json=chat_body) as response:
                return response.status

        held = [asyncio.create_task(chat()) for _ in range(2)]
        await wait_for_stats(session, base_url, in_flight=1, queued=1)
        async with session.post(f"{base_url}/v1/chat/completions", json=chat_body) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await response.json())["error"]["type"] == "server_error"
        async with session.post(f"{base_url}/v2/models/{MODEL}/infer", json=infer_body) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert set(await response.json()) == {"error"}
        assert (await stats(session, base_url))["rejected"] == 2
        assert [await request for request in held] == [200, 200]


@bounded(10)
async def test_shutdown_lets_short_in_flight_requests_finish() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    slow = ServiceTimeDistribution.parse("const:200")
    runner, port = await start(DemoBackendSettings(service_time=slow, slots=1, token_rate=100))
    base_url = f"http://127.0.0.1:{port}"
    stopped = False
    try:
        async with aiohttp.ClientSession() as session:

            async def chat() -> int:
                async with session.post(f"{base_url}/v1/chat/completions", json=body) as response:
                    return response.status

            requests = [asyncio.create_task(chat()) for _ in range(2)]
            await wait_for_stats(session, base_url, in_flight=1, queued=1)
            started = time.monotonic()
            await runner.cleanup()
            stopped = True
            assert [await request for request in requests] == [200, 200]
            assert time.monotonic() - started < 1.5  # done when they were, not after the grace
    finally:
        if not stopped:
            await runner.cleanup()


@bounded(5)
async def test_a_cancelled_waiter_leaves_the_queue_and_the_slot_passes_on() -> None:
    pool = SlotPool(slots=1, max_queue=2)
    holder_release = asyncio.Event()

    async def hold() -> None:
        async with pool.slot():
            await holder_release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    later = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert (pool.in_flight, pool.queued) == (1, 2)
    with pytest.raises(QueueFull):
        async with pool.slot():
            pass
    waiter.cancel()
    await asyncio.sleep(0)
    assert (pool.in_flight, pool.queued, pool.rejected) == (1, 1, 1)
    holder_release.set()
    await asyncio.gather(holder, later)
    assert waiter.cancelled()
    assert (pool.in_flight, pool.queued, pool.served) == (0, 0, 2)


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "fault"),
    [
        (["--slots", "0"], "slots must be at least 1"),
        (["--service-ms", "gamma:3"], "unknown kind 'gamma'"),
        (["--token-rate", "0"], "token_rate must be a positive number"),
        (["--models", " , "], "models must name at least one model"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    flags: list[str], fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run_from_cli(parser.parse_args(["--port", "0", *flags])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("demo-backend: ") and fault in captured.err
    assert captured.err.count("\n") == 1


@bounded(15)
async def test_process_prints_ready_serves_and_stops_on_sigterm() -> None:
    environment = dict(os.environ)
    python_path = [str(REPO / "daemon"), str(REPO / "native"), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(part for part in python_path if part)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubhop.io.demo_backend", "--port", "0", "--chip", "nvidia-h100",
        "--service-ms", "const:1", "--token-rate", "10", "--max-tokens", "100",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = (await process.stdout.readline()).decode()
        assert ready.startswith("demo-backend ready http://127.0.0.1:"), ready
        base_url = ready.split()[-1]
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base_url}/demo/stats") as response:
                assert (await response.json())["chip"] == "nvidia-h100"
            # A 10 s stream is in flight when SIGTERM arrives: it must not hold the exit up.
            async with session.post(f"{base_url}/v1/chat/completions", json=body) as response:
                assert response.status == 200
                assert (await response.content.readline()).startswith(b"data: ")
                sent_at = time.monotonic()
                process.send_signal(signal.SIGTERM)
                returncode = await asyncio.wait_for(process.wait(), 6)
        assert returncode == 0, (await process.stderr.read()).decode()
        # The stream had a 2 s grace to finish, then was cut.
        assert time.monotonic() - sent_at < 4
        assert await process.stdout.read() == b""  # exactly one line on stdout
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# --- faults on demand ------------------------------------------------------------------------


@bounded(10)
async def test_the_fault_switch_makes_the_same_process_fail_hang_and_recover() -> None:
    settings = DemoBackendSettings(
        host="127.0.68.10", service_time=ServiceTimeDistribution.parse("const:2")
    )
    runner, port = await start(settings)
    base_url = f"http://127.0.68.10:{port}"
    chat = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    infer = f"{base_url}/v2/models/demo-llm/infer"
    try:
        async with aiohttp.ClientSession() as session:

            async def switch(body: dict[str, Any]) -> int:
                async with session.post(f"{base_url}/demo/fault", json=body) as response:
                    return response.status

            assert await switch({"fault": "melt"}) == 400
            assert await switch({"fault": "slow", "extra_ms": -1}) == 400
            assert await switch({"fault": "error"}) == 200
            async with session.post(f"{base_url}/v1/chat/completions", json=chat) as response:
                assert response.status == 500
            async with session.post(infer, json={"inputs": [ONE_INT]}) as response:
                assert response.status == 500
            assert await switch({"fault": "hang"}) == 200
            with pytest.raises(TimeoutError):  # no answer: the caller gives up
                async with asyncio.timeout(0.2):
                    await session.post(f"{base_url}/v1/chat/completions", json=chat)
            assert await switch({"fault": "slow", "extra_ms": 150}) == 200
            started = time.monotonic()
            async with session.post(f"{base_url}/v1/chat/completions", json=chat) as response:
                assert response.status == 200
            assert time.monotonic() - started >= 0.15
            assert await switch({"fault": "none"}) == 200
            async with session.post(infer, json={"inputs": [ONE_INT]}) as response:
                assert response.status == 200
            counted = await stats(session, base_url)
    finally:
        await runner.cleanup()
    assert (counted["received"], counted["fault"]) == (5, "none")
