"""KServe v2 over gRPC through hubhop: a Triton gRPC client at its local daemon, routed by its
hints to another node's demo backend, gRPC end to end.

Two daemons on 127.0.71.x, each fronting a demo backend (127.0.72.x) that serves the same model
over REST and gRPC: the entry's on a cpu, the other's on an nvidia-h100; once in a plaintext lab
(the hop between daemons carries a keyring proof) and once under mutual TLS (the hop goes to the
peer's `[grpc] peer_listen` with the nodes' certificates). tritonclient.grpc runs
in a child process: its messages and hubhop's (hubhop.api.inference) define the same protobuf
names, which one process's descriptor pool cannot hold twice, and this test process may have
loaded hubhop's through other tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import msgpack
import pytest

from hubhop.api.v1 import hubhop_pb2, hubhop_pb2_grpc
from hubhop.core.capacity import decode_record, encode_record, record_from_config
from hubhop.core.config import ConfigError, parse_config
from hubhop.core.peer_proof import peer_proof, proof_refusal
from hubhop.core.routing_hints import RouteAsk
from hubhop.io.decision_log import DecisionLog
from hubhop.io.grpc_trace import GrpcTrace, finish
from hubhop.io.local_endpoint import EndpointState
from hubhop.lab.certs import LabPki, write_lab_pki
from hubhop.lab.processes import free_port
from tests.procs import Proc, node_config, spawn_demo_backend, spawn_node, wait_until
from tests.test_routing_cluster import KEY

MODEL = "ct-scan"
LIMIT = 1024 * 1024  # the entry's [grpc] max_message_bytes
# node: (address index, role, backend chip)
NODES = {"entry": (1, "edge", "cpu"), "gpu": (2, "city", "nvidia-h100")}
CONVERGE_S = 30.0

CLIENT = r"""
import json, sys, zlib
import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

address, limit = sys.argv[1], int(sys.argv[2])
h100 = {"x-hubhop-chip": "nvidia-h100"}
client = triton.InferenceServerClient(address)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready("ct-scan", headers=h100),
    "metadata": client.get_model_metadata("ct-scan", headers=h100, as_json=True),
}
image = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
tensor = triton.InferInput("image", [2, 3], "FP32")
tensor.set_data_from_numpy(image)
traced = {**h100, "x-request-id": "grpc-infer-" + sys.argv[3]}
result = client.infer("ct-scan", [tensor], headers=traced, request_id="r1")
out["infer"] = {
    "nbytes": result.as_numpy("image_nbytes").tolist(),
    "crc32": result.as_numpy("image_crc32").tolist(),
    "expected_crc32": zlib.crc32(image.tobytes()),
    "id": result.get_response().id,
}
# The same call through Triton's own stub, for the trailing metadata tritonclient does not show.
stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
request = service_pb2.ModelInferRequest(model_name="ct-scan")
request.inputs.add(name="image", datatype="FP32", shape=[2, 3])
request.raw_input_contents.append(image.tobytes())
_, call = stub.ModelInfer.with_call(request, metadata=tuple(h100.items()), timeout=20)
out["trailing"] = dict(call.trailing_metadata())

def failure(run):
    try:
        run()
    except InferenceServerException as exc:
        return [exc.status(), exc.message()]
    return None

big = triton.InferInput("image", [limit // 4 + 16], "FP32")
big.set_data_from_numpy(np.zeros(limit // 4 + 16, dtype=np.float32))
out["too_large"] = failure(lambda: client.infer("ct-scan", [big], headers=h100))
out["unknown"] = failure(lambda: client.infer("no-such-model", [tensor], headers=h100))
out["bad_hint"] = failure(
    lambda: client.infer("ct-scan", [tensor], headers={"x-hubhop-tier": "planet"})
)
print(json.dumps(out))
"""


def config_text(
    name: str, backend_http: str, backend_grpc: str, grpc_port: int, pki: LabPki | None
) -> str:
    i, role, chip = NODES[name]
    if pki is None:
        tls, peer_grpc = "[tls]\nplaintext = true\n", ""
    else:
        tls = pki.tls_section(name, f"127.0.71.{i}:0")
        peer_grpc = f'peer_listen = "127.0.71.{i}:{free_port(f"127.0.71.{i}")}"\n'
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.71.{i}:0"\n'
        f'[grpc]\nlisten = "127.0.71.{i}:{grpc_port}"\nmax_message_bytes = {LIMIT}\n{peer_grpc}'
        "[lifecycle]\ndrain_grace_s = 2.0\n"
        "[latency]\nlinks_republish_s = 2.0\n"
        f'[gossip]\nbind = "127.0.71.{i + 10}:7946"\nseeds = ["127.0.71.11:7946"]\n'
        f'keys = ["{KEY}"]\n'
        f"{tls}"
        f'[[backends]]\nname = "{name}-demo"\nurl = "{backend_http}"\n'
        f'grpc_url = "grpc://{backend_grpc}"\nprotocol = ["kserve_v2", "kserve_v2_grpc"]\n'
        f'models = ["{MODEL}"]\nchip = "{chip}"\nslots = 4\n'
    )


@pytest.fixture(scope="module", params=["plaintext", "mutual-tls"])
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("kserve-grpc")
    pki = write_lab_pki(tmp / "pki", list(NODES)) if request.param == "mutual-tls" else None
    procs: dict[str, Proc] = {}
    try:
        for name, (i, _, chip) in NODES.items():
            workdir = tmp / name
            workdir.mkdir()
            host = f"127.0.72.{i}"
            backend_grpc = f"{host}:{free_port(host)}"
            procs[f"{name}-backend"] = backend = spawn_demo_backend(
                workdir, "--host", host, "--grpc-port", backend_grpc.rpartition(":")[2],
                "--models", MODEL, "--chip", chip, "--service-ms", "5",
            )  # fmt: skip
            grpc_port = free_port(f"127.0.71.{i}")
            path = workdir / f"{name}.toml"
            path.write_text(config_text(name, backend.url, backend_grpc, grpc_port, pki))
            procs[name] = spawn_node(path)
            procs[name].grpc = f"127.0.71.{i}:{grpc_port}"  # type: ignore[attr-defined]
        wait_until(lambda: knows_gpu(procs["entry"]), CONVERGE_S, "the entry knowing gpu")
        yield procs
    finally:
        for proc in reversed(procs.values()):
            proc.stop()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def knows_gpu(entry: Proc) -> bool:
    """The entry routes to gpu's backend (a path to it known), and knows it speaks gRPC."""
    rows = get_json(f"{entry.url}/hubhop/v1/table?node=gpu")["rows"]
    if not any("kserve_v2_grpc" in row["protocols"] for row in rows):
        return False
    ask = {"protocol": "kserve_v2_grpc", "model": MODEL, "chip": "nvidia-h100"}
    request = urllib.request.Request(
        f"{entry.url}/hubhop/v1/route",
        data=json.dumps(ask).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        chosen = json.loads(response.read()).get("chosen") or {}
    # The route endpoint answers for gRPC too: the URL is the gRPC server peers call there.
    return bool(chosen.get("node") == "gpu" and chosen["url"].startswith("grpc://127.0.71.2:"))


def received(backend: Proc) -> int:
    return int(get_json(f"{backend.url}/demo/stats")["received"])


def run_client(address: str, variant: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, address, str(LIMIT), variant],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_a_triton_grpc_client_is_served_by_the_node_its_hints_choose(
    cluster: dict[str, Proc],
) -> None:
    gpu_before = received(cluster["gpu-backend"])
    entry_before = received(cluster["entry-backend"])
    variant = cluster["entry"].log_path.parent.parent.name  # unique per cluster of this module
    out = run_client(cluster["entry"].grpc, variant)  # type: ignore[attr-defined]

    assert out["live"] is True and out["ready"] is True
    assert out["model_ready"] is True
    assert out["metadata"]["name"] == MODEL and out["metadata"]["platform"] == "hubhop-demo"
    infer = out["infer"]
    assert infer["nbytes"] == [24]  # six FP32 values, raw
    assert infer["crc32"] == [infer["expected_crc32"]]
    assert infer["id"] == "r1"
    trailing = out["trailing"]
    assert trailing["x-hubhop-node"] == "gpu"
    assert trailing["x-hubhop-backend"] == "gpu-demo"
    assert trailing["x-hubhop-path"] == "entry>gpu"
    assert trailing["x-hubhop-tier"]
    assert trailing["x-backend-chip"] == "nvidia-h100"  # the backend's own metadata, passed on

    # Over the limit, unknown model, bad hint: refused at the entry, nothing at a backend.
    status, message = out["too_large"]
    assert status == "StatusCode.RESOURCE_EXHAUSTED", message
    assert str(LIMIT) in message
    status, message = out["unknown"]
    assert status == "StatusCode.NOT_FOUND" and "no-such-model" in message
    status, message = out["bad_hint"]
    assert status == "StatusCode.INVALID_ARGUMENT" and "x-hubhop-tier" in message
    assert received(cluster["gpu-backend"]) == gpu_before + 2  # the two inferences, no more
    assert received(cluster["entry-backend"]) == entry_before

    # The entry keeps gRPC calls among its decisions, as HTTP ones: Explain finds the infer.
    with grpc.insecure_channel(cluster["entry"].grpc) as channel:  # type: ignore[attr-defined]
        explain = hubhop_pb2_grpc.HubhopStub(channel).Explain
        reply = explain(hubhop_pb2.ExplainRequest(request_id=f"grpc-infer-{variant}"), timeout=10)
    decision = reply.decision
    assert (decision.protocol, decision.served_by, decision.backend) == (
        "kserve_v2_grpc",
        "gpu",
        "gpu-demo",
    )
    assert list(decision.path) == ["entry", "gpu"] and decision.outcome == "served"
    assert decision.reason.expected_ms.HasField("total")


@pytest.mark.slow
def test_a_call_claiming_to_come_from_a_peer_is_refused_on_the_apps_port(
    cluster: dict[str, Proc],
) -> None:
    # Without a proof from the keyring (a lab) or a member's certificate on peer_listen (mutual
    # TLS), a call that says it was passed on by a peer is refused, and no backend sees it.
    before = received(cluster["gpu-backend"])
    metadata = (("x-hubhop-target", "gpu/gpu-demo"), ("x-hubhop-via", "entry"))
    with grpc.insecure_channel(cluster["gpu"].grpc) as channel:  # type: ignore[attr-defined]
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as refused:
            infer(b"", metadata=metadata, timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    assert received(cluster["gpu-backend"]) == before


# --- the pieces, without processes ----------------------------------------------------------


def test_a_peer_proof_is_taken_only_from_a_keyring_holder_and_only_for_a_while() -> None:
    key, other = b"k" * 16, b"o" * 16
    proof = peer_proof(key, "entry", "gpu/gpu-demo", "ModelInfer", 1_000_000)
    assert (
        proof_refusal([other, key], proof, "entry", "gpu/gpu-demo", "ModelInfer", 1_000_500) is None
    )
    refusals = [
        proof_refusal([other], proof, "entry", "gpu/gpu-demo", "ModelInfer", 1_000_000),
        proof_refusal([key], proof, "evil", "gpu/gpu-demo", "ModelInfer", 1_000_000),
        proof_refusal([key], proof, "entry", "gpu/other", "ModelInfer", 1_000_000),
        proof_refusal([key], proof, "entry", "gpu/gpu-demo", "ModelInfer", 1_000_000 + 31_000),
        proof_refusal([key], "12.zz", "entry", "gpu/gpu-demo", "ModelInfer", 12),
        proof_refusal([key], None, "entry", "gpu/gpu-demo", "ModelInfer", 12),
    ]
    assert all(refusals)


def test_a_grpc_backend_needs_its_grpc_url_and_a_grpc_url_needs_the_protocol() -> None:
    def faults(backend: str) -> str:
        text = '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.71.1:0"\n' + backend
        with pytest.raises(ConfigError) as info:
            parse_config(text, "a.toml")
        return str(info.value)

    both = 'name = "t"\nmodels = ["m"]\n'
    assert "grpc_url: is required" in faults(f'[[backends]]\n{both}protocol = "kserve_v2_grpc"\n')
    assert "only used with protocol" in faults(
        f'[[backends]]\n{both}url = "http://127.0.0.1:1"\nprotocol = "kserve_v2"\n'
        'grpc_url = "grpc://127.0.0.1:2"\n'
    )
    assert "must be grpc://IP:PORT" in faults(
        f'[[backends]]\n{both}protocol = "kserve_v2_grpc"\ngrpc_url = "http://127.0.0.1:2"\n'
    )
    grpc_only = parse_config(
        '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.71.1:0"\n'
        f'[[backends]]\n{both}protocol = "kserve_v2_grpc"\ngrpc_url = "grpc://127.0.0.1:2"\n',
        "a.toml",
    )
    assert grpc_only.backends[0].url == "" and grpc_only.backends[0].grpc_url


def test_under_mutual_tls_a_gossiping_grpc_node_names_its_peer_port(tmp_path: Path) -> None:
    pki = write_lab_pki(tmp_path, ["a"])
    head = '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.71.1:0"\n'
    gossip = f'[gossip]\nbind = "127.0.71.11:7946"\nkeys = ["{KEY}"]\n'
    mtls = pki.tls_section("a", "127.0.71.1:0")

    def faults(text: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(text, "a.toml")
        return str(info.value)

    grpc_section = '[grpc]\nlisten = "127.0.71.1:0"\n'
    assert "grpc: peer_listen: missing" in faults(head + gossip + mtls + grpc_section)
    peer = 'peer_listen = "127.0.71.1:0"\n'
    config = parse_config(head + gossip + mtls + grpc_section + peer, "a.toml")
    assert config.grpc is not None and config.grpc.peer_listen == ("127.0.71.1", 0)
    lab = head + gossip + "[tls]\nplaintext = true\n" + grpc_section + peer
    assert "grpc: peer_listen: is the mutual-TLS port for peers" in faults(lab)


def test_a_record_keeps_grpc_out_of_what_a_layout_1_reader_checks() -> None:
    config = parse_config(
        '[node]\nname = "a"\nrole = "edge"\n[http]\nlisten = "127.0.71.1:80"\n'
        '[[backends]]\nname = "t"\nmodels = ["m"]\nurl = "http://127.0.0.1:1"\n'
        'protocol = ["kserve_v2_grpc", "kserve_v2"]\ngrpc_url = "grpc://127.0.0.1:2"\n',
        "a.toml",
    )
    record = record_from_config(config, "127.0.71.1:7946", grpc_addr="127.0.71.1:50051")
    layout = msgpack.unpackb(encode_record(record))
    assert layout[7][0][1] == ["kserve_v2"]  # what a layout-1 reader validates
    assert layout[7][0][11] == ["kserve_v2_grpc"]
    decoded = decode_record(encode_record(record))
    assert decoded.grpc_addr == "127.0.71.1:50051"
    assert decoded.backends[0].protocols == ("kserve_v2", "kserve_v2_grpc")
    layout[0], layout[7][0][11] = 2, ["kserve_v3_from_the_future"]
    assert decode_record(msgpack.packb(layout)).backends[0].protocols == ("kserve_v2",)
    old = layout[:12]  # a layout-1 record, from a daemon before gRPC: still read
    old[0] = 1
    old[7][0] = old[7][0][:11]
    assert decode_record(msgpack.packb(old)).grpc_addr == ""


def test_a_grpc_call_that_ends_without_an_answer_is_kept_with_its_outcome() -> None:
    # What Explain and the live view say of a gRPC call that was refused, left, or broke.
    state = EndpointState(parse_config(node_config("http://127.0.72.99:1"), "a.toml"))
    state.decisions = DecisionLog()
    ask = RouteAsk(model=MODEL, lane="standard", tier="any", max_one_way_ms=math.inf)
    ended = [
        ("refused-1", grpc.StatusCode.RESOURCE_EXHAUSTED, "over the rate"),
        ("gone-1", grpc.StatusCode.CANCELLED, "the client went away"),
        ("broke-1", grpc.StatusCode.INTERNAL, "backend failed"),
    ]
    for request_id, code, message in ended:
        finish(state, GrpcTrace(request_id, "", ask), code, message)
    kept = {e["request_id"]: e for e in state.decisions.recent(3)}
    assert {k: e["outcome"] for k, e in kept.items()} == {
        "refused-1": "refused",
        "gone-1": "client_gone",
        "broke-1": "failed",
    }
    assert kept["refused-1"]["client"] == "anonymous" and kept["refused-1"]["served_by"] is None
    assert kept["broke-1"]["error"] == {"code": "internal", "message": "backend failed"}
    assert kept["gone-1"]["protocol"] == "kserve_v2_grpc" and kept["gone-1"]["tries"] == 0
