"""The load generator's workload file and the requests it turns into (pure: no sockets).

What an engineer sees: a good file becomes streams with every default filled in; a bad one is
refused whole with one line per fault naming the file and the key; the requests a stream sends
are ones the demo backend (and so any OpenAI or KServe v2 server) accepts, with the stream's
routing hints as the daemon's headers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubhop.core import demo_protocol
from hubhop.core.kserve_binary import HEADER_LENGTH_HEADER
from hubhop.loadgen import workload as wl
from hubhop.loadgen.request_shapes import prepare, prompt_text, tensor_bytes
from hubhop.loadgen.workload import Stream, WorkloadError, parse_workload

HOSPITAL = Path(wl.__file__).parent / "workloads" / "hospital.toml"

MINIMAL = """
[[streams]]
entry = "http://127.0.1.1:8080"
model = "demo-llm"
rate = 5
"""


def faults_of(text: str) -> list[str]:
    with pytest.raises(WorkloadError) as caught:
        parse_workload(text, "w.toml")
    return caught.value.faults


def test_a_minimal_file_takes_every_default() -> None:
    workload = parse_workload(MINIMAL, "w.toml")
    assert workload.duration_s == wl.DEFAULT_DURATION_S
    assert workload.seed == wl.DEFAULT_SEED
    assert workload.timeout_s == wl.DEFAULT_TIMEOUT_S
    assert workload.drain_s == wl.DEFAULT_DRAIN_S
    assert workload.auth_token_env is None
    (stream,) = workload.streams
    assert stream == Stream(
        name="demo-llm",
        entries=("http://127.0.1.1:8080",),
        protocol="openai_chat",
        model="demo-llm",
        rate=5.0,
        arrival="poisson",
    )
    assert stream.group == ("default", "default")


def test_the_shipped_hospital_mix_parses_into_three_lanes() -> None:
    workload = parse_workload(HOSPITAL.read_text(), str(HOSPITAL))
    groups = [s.group for s in workload.streams]
    assert groups == [("emergency", "city"), ("standard", "province"), ("batch", "any")]
    ct, chat, batch = workload.streams
    assert ct.protocol == "kserve_v2_binary" and ct.body_bytes >= 1024 * 1024
    assert chat.stream and chat.protocol == "openai_chat"
    assert not batch.stream


def test_a_total_rate_is_shared_by_weight() -> None:
    text = """
[run]
rate = 12
arrival = "fixed"
[[streams]]
name = "a"
entry = "http://127.0.0.1:1"
model = "m"
weight = 3
[[streams]]
name = "b"
entry = ["http://127.0.0.1:1", "http://127.0.0.1:2/"]
model = "m"
arrival = "poisson"
max_latency_ms = 3
"""
    a, b = parse_workload(text, "w.toml").streams
    assert (a.rate, b.rate) == (9.0, 3.0)
    assert (a.arrival, b.arrival) == ("fixed", "poisson")
    assert b.entries == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert b.asked_tier == "province"  # the tightest tier holding 3 ms one way


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[streams]]\nentry = 'http://h:1'\nmodel = 'm'\n", "streams[0].rate: is required"),
        (MINIMAL + "tier = 'town'\n", "streams[0].tier: 'town' is not one of city"),
        (MINIMAL + "lane = 'vip'\n", "streams[0].lane: 'vip' is not one of emergency"),
        (MINIMAL + "tier = 'city'\nmax_latency_ms = 2\n", "streams[0].max_latency_ms: give either"),
        (MINIMAL + "protocol = 'grpc'\n", "streams[0].protocol: 'grpc' is not one of"),
        (MINIMAL + "slots = 4\n", "streams[0].slots: unknown key"),
        (MINIMAL + "stream = 'yes'\n", "streams[0].stream: must be a boolean, got string"),
        (MINIMAL + "rate_ = 1\n", "streams[0].rate_: unknown key"),
        (MINIMAL + "body_bytes = 0\n", "streams[0].body_bytes: 0 is out of range"),
        (MINIMAL + "deadline_ms = -1\n", "streams[0].deadline_ms: -1 is out of range"),
        (MINIMAL + "weight = 2\n", "streams[0].weight: a weight shares [run] rate"),
        (
            MINIMAL.replace("demo-llm", "ct") + "protocol = 'kserve_v2_binary'\nstream = true\n",
            "streams[0].stream: means nothing for kserve_v2_binary",
        ),
        (
            MINIMAL + "protocol = 'openai_chat'\nbody_bytes = 40000000\n",
            "streams[0].body_bytes: 40000000 is out of range",
        ),
        (MINIMAL.replace("http://127.0.1.1:8080", "ftp://h/"), "streams[0].entry: 'ftp://h/'"),
        (MINIMAL.replace('"http://127.0.1.1:8080"', "[]"), "streams[0].entry: must be a URL"),
        (MINIMAL.replace("8080", "8080?x=1"), "an entry point has no query"),
        ("[run]\nduration_s = 0\n" + MINIMAL, "run.duration_s: 0 is out of range"),
        ("[run]\narrival = 'burst'\n" + MINIMAL, "run.arrival: 'burst' is not one of fixed"),
        ("[run]\nauth_token_env = 'not a name'\n" + MINIMAL, "run.auth_token_env: 'not a name'"),
        ("[run]\nrate = 5\n" + MINIMAL, "streams[0].rate: [run] rate is given"),
        ("[run]\nspeed = 5\n" + MINIMAL, "run.speed: unknown key"),
        ("[run]\n", "streams: is required"),
        (MINIMAL + "[[streams]]\nentry = 'http://h:1'\nmodel = 'demo-llm'\nrate = 1\n",
         "streams[1].name: 'demo-llm' is already streams[0]'s"),
        ("[[streams]\n", "w.toml: invalid TOML"),
    ],
)  # fmt: skip
def test_each_fault_names_the_file_and_the_key(text: str, expected: str) -> None:
    faults = faults_of(text)
    assert any(f.startswith("w.toml: ") and expected in f for f in faults), faults


def test_every_fault_of_a_file_is_reported_at_once() -> None:
    text = MINIMAL + "tier = 'town'\nlane = 'vip'\nslots = 1\n[run]\nseed = -1\n"
    faults = faults_of(text)
    keys = sorted(f.split(": ")[1] for f in faults)
    assert keys == ["run.seed", "streams[0].lane", "streams[0].slots", "streams[0].tier"]


def test_command_line_overrides_scale_rates_and_replace_entries() -> None:
    workload = parse_workload(HOSPITAL.read_text(), "h.toml")
    adjusted = workload.adjusted(
        duration_s=2.0, rate_scale=3.0, seed=9, entries=("http://127.0.0.1:9",)
    )
    assert adjusted.duration_s == 2.0 and adjusted.seed == 9
    assert adjusted.rate == pytest.approx(3 * workload.rate)
    assert {s.entries for s in adjusted.streams} == {("http://127.0.0.1:9",)}
    assert workload.adjusted() == workload
    json.dumps(adjusted.as_json())  # the result file can carry it


# --- the requests a stream sends --------------------------------------------------------------


def stream(**fields: object) -> Stream:
    base: dict[str, object] = {
        "name": "s",
        "entries": ("http://127.0.0.1:1",),
        "protocol": "openai_chat",
        "model": "demo-llm",
        "rate": 1.0,
        "arrival": "fixed",
    }
    return Stream(**{**base, **fields})  # type: ignore[arg-type]


def test_openai_requests_carry_a_prompt_of_the_asked_size() -> None:
    chat = prepare(stream(body_bytes=3000, stream=True, max_tokens=7))
    assert chat.path == "/v1/chat/completions" and chat.streamed_answer
    asked = demo_protocol.parse_chat_request(json.loads(chat.body), 16)
    assert (asked.max_tokens, asked.stream) == (7, True)
    assert len(asked.prompt_text.encode()) == 3000
    completion = prepare(stream(protocol="openai_completion", body_bytes=10))
    assert completion.path == "/v1/completions" and not completion.streamed_answer
    assert demo_protocol.parse_completion_request(json.loads(completion.body), 16).prompt_text
    assert len(prompt_text(12345)) == 12345


def test_kserve_requests_carry_a_tensor_of_the_asked_size() -> None:
    as_json = prepare(stream(protocol="kserve_v2_json", model="ct-triage", body_bytes=300))
    assert as_json.path == "/v2/models/ct-triage/infer"
    parsed = demo_protocol.parse_infer_request(json.loads(as_json.body), binary_allowed=False)
    (tensor,) = parsed.inputs
    assert tensor.shape == (300,) and tensor.data == list(tensor_bytes(300))
    binary = prepare(stream(protocol="kserve_v2_binary", model="ct-triage", body_bytes=5000))
    header_length = int(binary.headers[HEADER_LENGTH_HEADER])
    header = json.loads(binary.body[:header_length])
    (tensor,) = demo_protocol.parse_infer_request(header, binary_allowed=True).inputs
    assert tensor.binary_size == 5000 == len(binary.body) - header_length


def test_hints_go_as_the_daemons_headers_and_absent_ones_are_not_sent() -> None:
    bare = prepare(stream())
    assert not [h for h in bare.headers if h.startswith("x-hubhop-")]
    assert "Authorization" not in bare.headers
    hinted = prepare(
        stream(lane="emergency", max_latency_ms=2.5, chip="ascend-910b", budget=1e6,
               deadline_ms=10000.0, spill="none"),
        token="s3cret",
    )  # fmt: skip
    assert hinted.headers["x-hubhop-lane"] == "emergency"
    assert hinted.headers["x-hubhop-max-latency-ms"] == "2.5"
    assert hinted.headers["x-hubhop-chip"] == "ascend-910b"
    assert hinted.headers["x-hubhop-budget"] == "1000000"  # a plain decimal, no exponent
    assert hinted.headers["x-hubhop-deadline-ms"] == "10000"
    assert hinted.headers["x-hubhop-spill"] == "none"
    assert "x-hubhop-tier" not in hinted.headers
    assert hinted.headers["Authorization"] == "Bearer s3cret"
    assert prepare(stream(tier="city")).headers["x-hubhop-tier"] == "city"
