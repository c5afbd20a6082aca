"""KServe v2 (Open Inference Protocol) across real daemons: a Triton client pointed at its local
hubhop, unchanged but for routing hints as extra headers, reaches models only other nodes serve.

entry (HTTP 127.0.24.1, gossip 127.0.25.1) fronts only an OpenAI chat model. npu-b fronts an
Ascend backend serving ct-seg over KServe v2. gpu-c fronts an H100 backend serving ct-seg on green
power (so the batch lane prefers it) and a one-slot backend serving ct-solo, which the refusal
test keeps busy. The entry takes bodies up to 8 MiB, gpu-c up to 2 MiB. Every node's backends are
its own demo backend process (127.0.26.x): its /demo/stats count says which node served a call
made through the Triton client, which does not show answer headers. The last test is in process:
the serving end of a routed metadata call, in the cases a cluster cannot easily be put in.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import aiohttp
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers
from hubhop.io.request_router import Cluster
from tests.procs import Proc, spawn_nodes, wait_until
from tests.routing_helpers import chat, route
from tests.test_routing_cluster import KEY

MIB = 1024 * 1024
NODES = {
    # name: (address index, role, max_body_bytes)
    "entry": (1, "edge", 8 * MIB),
    "npu-b": (2, "city", None),
    "gpu-c": (3, "hub", 2 * MIB),
}
# Each node's backends: (name, protocols, model, chip, slots, green share).
BACKENDS: dict[str, tuple[tuple[str, str, str, str, int, float], ...]] = {
    "entry": (("cpu-0", '"openai"', "chat-7b", "cpu", 4, 0.0),),
    "npu-b": (("ascend-0", '"kserve_v2"', "ct-seg", "ascend-910b", 4, 0.0),),
    "gpu-c": (
        ("h100-0", '"kserve_v2"', "ct-seg", "nvidia-h100", 4, 1.0),
        ("h100-solo", '["openai", "kserve_v2"]', "ct-solo", "nvidia-h100", 1, 1.0),
    ),
}
CHIP_NODES = (("ascend-910b", "npu-b"), ("nvidia-h100", "gpu-c"))
CONVERGE_S = 60.0
# A chat of this many tokens (50 a second) holds ct-solo's one slot for 5 s: longer than all the
# refusal test does meanwhile, far shorter than a test's budget.
HOLDING_TOKENS = 250


def config_text(name: str, backend_url: str) -> str:
    i, role, max_body = NODES[name]
    limit = "" if max_body is None else f"max_body_bytes = {max_body}\n"
    # Green power outweighs any service-time difference (an unmeasured backend counts 50 ms),
    # so the batch lane's choice does not depend on which record has come in yet.
    routing = "[routing]\nbatch_green_weight_ms = 1000.0\n" if name == "entry" else ""
    backends = "".join(
        f'[[backends]]\nname = "{b}"\nurl = "{backend_url}"\nprotocol = {protocols}\n'
        f'models = ["{model}"]\nchip = "{chip}"\nslots = {slots}\ngreen_share = {green}\n'
        for b, protocols, model, chip, slots, green in BACKENDS[name]
    )
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.24.{i}:0"\n{limit}'
        f"[lifecycle]\ndrain_grace_s = 2.0\n{routing}"
        # Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
        "[latency]\nlinks_republish_s = 2.0\n"
        f'[gossip]\nbind = "127.0.25.{i}:7946"\nseeds = ["127.0.25.1:7946"]\nkeys = ["{KEY}"]\n'
        "[tls]\nplaintext = true\n"
        f"{backends}"
    )


def backend_args(name: str) -> tuple[str, ...]:
    i = NODES[name][0]
    models = ",".join(model for _, _, model, _, _, _ in BACKENDS[name])
    return (
        "--host", f"127.0.26.{i}", "--models", models, "--service-ms", "5",
        "--name", f"{name}-demo",
    )  # fmt: skip


def every_backend_routable(entry: Proc) -> bool:
    """Each ask chosen over a measured direct link (before the entry measures its own links, a
    measured path through the third node can beat an estimated direct one)."""
    asks = [{"model": "ct-seg", "chip": chip} for chip, _ in CHIP_NODES]
    asks += [{"model": "ct-seg", "lane": "batch"}, {"model": "ct-solo"}]
    for ask in asks:
        chosen = route(entry, {"protocol": "kserve_v2", **ask}).get("chosen") or {}
        if len(chosen.get("path", ())) != 2 or chosen.get("estimated") is not False:
            return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    nodes = [(name, backend_args(name), partial(config_text, name)) for name in NODES]
    with spawn_nodes(tmp_path_factory.mktemp("kserve"), nodes) as found:
        entry = found["entry"]
        wait_until(lambda: every_backend_routable(entry), CONVERGE_S, "the entry knowing them all")
        yield found


def hints(**given: str) -> dict[str, str]:
    """Routing hints as headers: hints(chip="nvidia-h100") -> {"x-hubhop-chip": ...}."""
    return {f"x-hubhop-{name.replace('_', '-')}": value for name, value in given.items()}


def triton_client(node: Proc) -> triton.InferenceServerClient:
    address = node.url.removeprefix("http://")
    return triton.InferenceServerClient(address, connection_timeout=10, network_timeout=30)


def served_count(backend: Proc) -> int:
    with urllib.request.urlopen(f"{backend.url}/demo/stats", timeout=10) as response:
        return int(json.loads(response.read())["served"])


def send(
    node: Proc, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP call to `node`: status, answer headers (names lowercased) and body."""
    request = urllib.request.Request(f"{node.url}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.status, response.headers.items(), response.read()
    except urllib.error.HTTPError as exc:
        answer = exc.code, exc.headers.items(), exc.read()
    status, items, data = answer
    return status, {name.lower(): value for name, value in items}, data


def json_inputs() -> tuple[list[triton.InferInput], dict[str, np.ndarray[Any, Any]]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "window": np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32),
        "slices": np.array([7, 8, 9], dtype=np.int64),
    }
    inputs = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32" if name == "window" else "INT64")
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    return inputs, arrays


def binary_input(payload: bytes) -> triton.InferInput:
    tensor = triton.InferInput("series", [len(payload)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(payload, dtype=np.uint8), binary_data=True)
    return tensor


@pytest.mark.slow
def test_the_triton_client_infers_json_and_binary_tensors_on_the_node_the_chip_picks(
    cluster: dict[str, Proc],
) -> None:
    client = triton_client(cluster["entry"])
    payload = os.urandom(MIB + 17)
    try:
        for chip, node in CHIP_NODES:
            counts = {n: served_count(cluster[f"{n}-backend"]) for _, n in CHIP_NODES}
            inputs, arrays = json_inputs()
            # A fresh dict each call: the client adds Inference-Header-Content-Length to it.
            result = client.infer(
                "ct-seg", inputs, request_id="json-1", headers=hints(chip=chip, tier="city")
            )
            assert result.get_response()["id"] == "json-1"
            for name, array in arrays.items():
                np.testing.assert_array_equal(result.as_numpy(name), array)
            result = client.infer(
                "ct-seg", [binary_input(payload)], headers=hints(chip=chip, lane="standard")
            )
            nbytes, crc32 = result.as_numpy("series_nbytes"), result.as_numpy("series_crc32")
            assert nbytes is not None and crc32 is not None
            assert (int(nbytes[0]), int(crc32[0])) == (len(payload), zlib.crc32(payload))
            after = {n: served_count(cluster[f"{n}-backend"]) for _, n in CHIP_NODES}
            assert {n: after[n] - counts[n] for n in after} == {
                n: 2 if n == node else 0 for n in after
            }, chip
    finally:
        client.close()


@pytest.mark.slow
def test_kserve_answers_say_where_they_were_served_and_come_back_intact(
    cluster: dict[str, Proc],
) -> None:
    """The wire itself: the body the Triton client would send, the answer's routing headers."""
    payload = os.urandom(MIB)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        [binary_input(payload)], request_id="ct-42"
    )
    # Batch prefers green power: gpu-c. The chip names npu-b.
    for given, node, backend in (
        (hints(lane="batch", tier="city"), "gpu-c", "h100-0"),
        (hints(chip="ascend-910b", tier="city"), "npu-b", "ascend-0"),
    ):
        headers = {
            **given,
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_length),
        }
        status, answer_headers, data = send(
            cluster["entry"], "/v2/models/ct-seg/versions/1/infer", headers, body
        )
        assert status == 200, data
        assert answer_headers["x-hubhop-node"] == node
        assert answer_headers["x-hubhop-backend"] == backend
        assert answer_headers["x-hubhop-path"] == f"entry>{node}"
        assert answer_headers["x-hubhop-tier"] == "city"
        assert answer_headers["x-backend-name"] == f"{node}-demo"  # the backend's own answer
        assert "network;dur=" in answer_headers["server-timing"]
        result = triton.InferenceServerClient.parse_response_body(
            data, header_length=answer_headers.get("inference-header-content-length")
        )
        assert result.get_response()["id"] == "ct-42"
        assert result.get_response()["model_name"] == "ct-seg"
        outputs = {o["name"]: o["data"] for o in result.get_response()["outputs"]}
        assert outputs == {"series_nbytes": [len(payload)], "series_crc32": [zlib.crc32(payload)]}


@pytest.mark.slow
def test_model_metadata_and_readiness_come_from_a_node_serving_the_model(
    cluster: dict[str, Proc],
) -> None:
    client = triton_client(cluster["entry"])
    try:
        # The server's own health stays the entry's: it is the server the client talks to.
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()["name"] == "hubhop"
        for chip, _ in CHIP_NODES:
            assert client.is_model_ready("ct-seg", headers=hints(chip=chip))
            assert client.is_model_ready("ct-seg", "1", headers=hints(chip=chip))
            metadata = client.get_model_metadata("ct-seg", headers=hints(chip=chip))
            assert metadata["name"] == "ct-seg" and metadata["versions"] == ["1"]
        assert not client.is_model_ready("ct-seg", "3")  # the backend's own 404, passed on
        assert not client.is_model_ready("no-such-model")
        with pytest.raises(InferenceServerException) as unknown:
            client.get_model_metadata("no-such-model")
        assert unknown.value.status() == "503"  # as an infer for it: no node can serve it
    finally:
        client.close()
    for chip, node in CHIP_NODES:
        for path in ("/v2/models/ct-seg", "/v2/models/ct-seg/ready"):
            status, headers, data = send(cluster["entry"], path, hints(chip=chip))
            assert status == 200, data
            assert headers["x-hubhop-node"] == node, path
            assert headers["x-hubhop-path"] == f"entry>{node}"


def ct_solo_busy(gpu_c: Proc) -> bool:
    status, _, data = send(gpu_c, "/hubhop/v1/table?node=gpu-c&model=ct-solo", {})
    return status == 200 and json.loads(data)["rows"][0]["busy"] >= 1


@contextmanager
def ct_solo_held(cluster: dict[str, Proc]) -> Iterator[None]:
    """ct-solo's one slot at gpu-c, held by a long chat throughout the `with` body."""
    gpu_c = cluster["gpu-c"]
    with ThreadPoolExecutor(1) as pool:
        holding = pool.submit(chat, gpu_c, "ct-solo", {}, max_tokens=HOLDING_TOKENS, timeout_s=30)
        wait_until(lambda: ct_solo_busy(gpu_c), 10, "gpu-c's ct-solo backend holding the chat")
        yield
        assert not holding.done(), "the slot was free before the checks were done"
        status, _, body = holding.result()
    assert status == 200, body


@pytest.mark.slow
def test_readiness_of_a_busy_model_answers_at_once_and_a_refused_infer_is_told_why(
    cluster: dict[str, Proc],
) -> None:
    """Metadata and readiness take no slot, so they answer at once while ct-solo's one slot is
    held. An infer whose deadline passes while it waits for that slot is refused by gpu-c; its
    body streamed, so it is not sent again: the client hears the 503 and why."""
    entry = cluster["entry"]
    payload = os.urandom(256 * 1024)
    client = triton_client(entry)
    try:
        with ct_solo_held(cluster):
            for path in ("/v2/models/ct-solo/ready", "/v2/models/ct-solo"):
                started = time.monotonic()
                status, headers, data = send(entry, path, {})
                assert status == 200, data
                assert headers["x-hubhop-node"] == "gpu-c"
                assert time.monotonic() - started < 2.0, path  # not queued behind the chat
            assert client.is_model_ready("ct-solo")
            started = time.monotonic()
            with pytest.raises(InferenceServerException) as refused:
                client.infer("ct-solo", [binary_input(payload)], headers=hints(deadline_ms="100"))
            assert refused.value.status() == "503"
            assert "deadline" in str(refused.value.message())
            assert time.monotonic() - started < 5.0
    finally:
        client.close()


async def chunks(total: int, header: bytes) -> AsyncIterator[bytes]:
    """A binary-extension body of `total` tensor bytes, chunked: no Content-Length."""
    yield header
    for _ in range(total // (256 * 1024)):
        yield b"\0" * (256 * 1024)


@pytest.mark.slow
async def test_a_chunked_upload_refused_by_the_serving_node_gets_a_clear_error(
    cluster: dict[str, Proc], http: aiohttp.ClientSession
) -> None:
    """As above, with a raw chunked upload that holds its last part back until the answer is
    in: the refusal reaches a client still uploading, rather than a hang."""
    header = binary_infer_header("series", 3 * MIB // 2)
    answered = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield header
        yield b"\0" * (MIB // 2)
        await answered.wait()
        yield b"\0" * MIB

    with ct_solo_held(cluster):
        started = time.monotonic()
        async with http.post(
            f"{cluster['entry'].url}/v2/models/ct-solo/infer",
            data=body(),
            headers={**binary_infer_headers(header), **hints(deadline_ms="100")},
        ) as response:
            assert response.status == 503
            assert "deadline" in (await response.json())["error"]
        assert time.monotonic() - started < 5.0
        answered.set()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("chip", "tensor_bytes", "chunked", "who"),
    [
        ("ascend-910b", 9 * MIB, False, "entry: its Content-Length"),
        ("ascend-910b", 9 * MIB, True, "entry: while streaming it to npu-b"),
        ("nvidia-h100", 3 * MIB, False, "gpu-c: its Content-Length"),
        ("nvidia-h100", 3 * MIB, True, "gpu-c: while the entry streams it"),
    ],
)
async def test_a_kserve_body_over_a_limit_is_refused_413_when_forwarded(
    cluster: dict[str, Proc],
    http: aiohttp.ClientSession,
    chip: str,
    tensor_bytes: int,
    chunked: bool,
    who: str,
) -> None:
    header = binary_infer_header("series", tensor_bytes)
    body: Any = chunks(tensor_bytes, header) if chunked else header + b"\0" * tensor_bytes
    async with http.post(
        f"{cluster['entry'].url}/v2/models/ct-seg/infer",
        data=body,
        headers={**binary_infer_headers(header), **hints(chip=chip)},
    ) as response:
        assert response.status == 413, who
        assert "over the limit" in (await response.json())["error"]
    # Both nodes serve on.
    small = binary_infer_header("series", 1024)
    async with http.post(
        f"{cluster['entry'].url}/v2/models/ct-seg/infer",
        data=small + b"\1" * 1024,
        headers={**binary_infer_headers(small), **hints(chip=chip)},
    ) as response:
        assert response.status == 200


async def test_a_routed_metadata_call_is_answered_by_the_backend_named_or_sent_elsewhere(
    make_node: Any, http: aiohttp.ClientSession
) -> None:
    """The serving end of a routed metadata or readiness call, in process: the backend the
    target names answers it; a backend gone since the entry's record, or a draining node,
    refuses it with x-hubhop-refused (the entry then tries another node); a target from an
    address no member's record names is refused 403."""
    running = await make_node()
    state = running.node.state
    member = [True]
    # The last hop decides nothing, so it needs no scorer.
    state.cluster = Cluster(
        scorer=None,  # type: ignore[arg-type]
        peer_addr=lambda _: None,
        is_member_host=lambda _: member[0],
        wan=lambda: None,
    )
    url = f"{running.url}/v2/models/ct-triage/ready"

    async def ask(target: str) -> tuple[int, Any, Any]:
        headers = {"x-hubhop-target": target, "x-hubhop-via": "entry"}
        async with http.get(url, headers=headers) as response:
            return response.status, response.headers, await response.json()

    status, headers, body = await ask("test-edge/demo")
    assert (status, body["ready"]) == (200, True)
    assert (headers["x-hubhop-node"], headers["x-hubhop-backend"]) == ("test-edge", "demo")
    status, headers, body = await ask("test-edge/gone")
    assert (status, headers["x-hubhop-refused"]) == (503, "no_backend"), body
    state.draining = True
    status, headers, body = await ask("test-edge/demo")
    assert (status, headers["x-hubhop-refused"]) == (503, "draining"), body
    state.draining = False
    member[0] = False
    status, _, body = await ask("test-edge/demo")
    assert status == 403 and "x-hubhop-target" in body["error"]
