"""A streamed OpenAI answer whose upstream dies mid-way: the client is told, in the stream, by an
error event its SDK raises on (hubhop.io.cut_stream), rather than left with a short stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import pytest

from tests.test_upstream_proxy import node_in_front_of, raw_backend

FIRST_EVENT = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'


async def dies_after_one_event(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An OpenAI-style backend that streams one event and dies (its connection closes)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(FIRST_EVENT):x}\r\n".encode() + FIRST_EVENT + b"\r\n"
    )  # fmt: skip
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()


CHAT = {"model": "demo-llm", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_a_stream_cut_by_its_backend_ends_with_an_error_event_and_no_done(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    server, url = await raw_backend(dies_after_one_event)
    async with server:
        running = await node_in_front_of(make_node, url)
        async with http.post(f"{running.url}/v1/chat/completions", json=CHAT) as response:
            assert response.status == 200
            body = await response.read()  # ends properly: no ClientPayloadError
    events = [e for e in body.split(b"\n\n") if e]
    assert events[0] + b"\n\n" == FIRST_EVENT
    assert len(events) == 2 and b"[DONE]" not in body
    error = json.loads(events[1].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_cut" and error["type"] == "server_error"
    assert "demo failed mid-answer" in error["message"]


async def test_the_openai_sdk_raises_on_a_cut_stream(make_node: Any) -> None:
    server, url = await raw_backend(dies_after_one_event)
    async with server:
        running = await node_in_front_of(make_node, url)
        client = openai.AsyncOpenAI(base_url=f"{running.url}/v1", api_key="-", max_retries=0)
        stream = await client.chat.completions.create(
            model="demo-llm", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError, match="demo failed mid-answer"):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
        assert received == ["a"]
        await client.close()
