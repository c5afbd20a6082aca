"""Every crash the fuzzer found, replayed: each input now gets the parser's documented refusal
(a 400, a ConfigError naming the fault), never a traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest

from hubhop.core.config import ConfigError, parse_config
from hubhop.core.demo_protocol import KServeRequestError, parse_header_length, parse_infer_request
from hubhop.core.kserve_binary import HEADER_LENGTH_HEADER
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io.demo_backend import DemoBackendSettings, start
from hubhop.io.http_errors import ApiError
from hubhop.io.local_endpoint import read_json_body
from hubhop.wan.topology import TopologyError, parse_topology
from tests.fuzz.http_targets import BACKEND, ME, Forwarder, _request, node_config

NESTED = b'{"model": "m", "messages": ' + b"[" * 5000  # json recurses before it sees the end


def test_a_deeply_nested_json_body_is_a_400_at_the_endpoint() -> None:
    with pytest.raises(ApiError) as caught:
        asyncio.run(read_json_body(_request(NESTED), 1 << 20))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        "[node]\nname = 'a'\nx = " + "[" * 3000,  # tomllib: RecursionError
        "[node]\nname = 'a'\nx = " + "9" * 5000,  # tomllib: bare ValueError (int digits)
        "[node]\nname = 'a'\nrole = 'edge'\n[gossip]\nbind = '127.0.0.1:7946'\nkeys = ['²']\n",
    ],
)
def test_config_faults_that_crashed_the_parser_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "fuzz.toml")
    assert caught.value.faults[0].startswith("fuzz.toml")


@pytest.mark.parametrize("text", ["x = " + "[" * 3000, "x = " + "9" * 5000])
def test_topology_faults_that_crashed_the_parser_are_topology_errors(text: str) -> None:
    with pytest.raises(TopologyError, match="invalid TOML"):
        parse_topology(text, "fuzz.toml")


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    loop = asyncio.new_event_loop()
    forwarder = Forwarder(node_config(), loop)
    yield forwarder
    forwarder.gate.close()
    loop.close()


def test_a_forwarded_request_with_an_unknown_lane_is_a_400(forwarder: Forwarder) -> None:
    error = forwarder.answer({"x-hubhop-target": f"{ME}/{BACKEND}", "x-hubhop-lane": "1e-400"})
    assert error is not None and error.status == 400
    assert "x-hubhop-lane" in str(error)


def test_a_peers_unusable_retry_after_becomes_one_second(forwarder: Forwarder) -> None:
    for retry_after in ("inf", "1e400", "nan", "soon"):
        error = forwarder.answer({
            "x-hubhop-target": f"hub-wuhu/{BACKEND}", "x-hubhop-hops": "hub-wuhu",
            "upstream-refused": "full", "upstream-retry-after": retry_after,
        })  # fmt: skip
        assert error is not None and error.status == 503
        assert error.headers["Retry-After"] == "1"


def test_a_peers_malformed_server_timing_does_not_fail_the_call(forwarder: Forwarder) -> None:
    for timing in ("backend;dur=1.2.3", "route;dur=.", "network;dur=..5"):
        headers = {"x-hubhop-target": f"hub-wuhu/{BACKEND}", "x-hubhop-hops": "hub-wuhu"}
        assert forwarder.answer({**headers, "upstream-server-timing": timing}) is None


@pytest.mark.parametrize("value", ["102²", "٣", "9" * 5000, "0" * 30 + "1x"])
def test_odd_inference_header_lengths_are_refused(value: str) -> None:
    with pytest.raises(KServeRequestError):
        parse_header_length(value, 10_000, 64 << 20)
    assert parse_header_length("0" * 30 + "12", 100, 64 << 20) == 12


def test_a_tensor_nested_as_deep_as_json_allows_is_checked_not_overflowed() -> None:
    data = json.loads("[" * 900 + "1" + "]" * 900)
    tensor = {"name": "x", "shape": [1], "datatype": "FP32", "data": data}
    request = parse_infer_request({"inputs": [tensor]}, binary_allowed=False)
    assert request.inputs[0].name == "x"


async def test_the_demo_backend_answers_deeply_nested_json_with_400() -> None:
    settings = DemoBackendSettings(
        service_time=ServiceTimeDistribution.parse("const:1"), token_rate=500.0, seed=7,
        chip="cpu", name="demo-a",
    )  # fmt: skip
    runner, port = await start(settings)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/chat/completions", data=NESTED) as response:
                assert response.status == 400
            header = b"[" * 5000
            headers = {HEADER_LENGTH_HEADER: str(len(header))}
            url = f"{base}/v2/models/demo-llm/infer"
            async with session.post(url, data=header, headers=headers) as response:
                assert response.status == 400
    finally:
        await runner.cleanup()
