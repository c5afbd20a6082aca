"""The three requests proxy_overhead sends, prebuilt per target URL, and how each answer is checked.

- chat: a small non-streamed OpenAI chat completion with max_tokens 1: the smallest real
  inference call, so the answer is dominated by per-request cost (parse, route, forward).
- kserve_json: a KServe v2 infer with a small FP32 tensor inline in JSON: the same question for
  the Open Inference Protocol path, which hubhop streams instead of reading whole.
- upload_16mb: a KServe v2 infer with one 16 MB UINT8 tensor in the binary extension
  (`Inference-Header-Content-Length`, JSON header, raw bytes): what a hop costs in bandwidth.

Each answer is checked in full during warm-up (status, JSON shape, byte count and CRC-32 of the
upload as the backend saw it); measured requests are checked by status only, to keep the
client's cost per request small and equal across variants.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from bench._http import Request, Response, build_request
from bench.proxy_overhead.plan import UPLOAD_BYTES
from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers

CHAT_MODEL = "demo-llm"
KSERVE_MODEL = "ct-triage"
MODELS = (CHAT_MODEL, KSERVE_MODEL)

CHAT_BODY = json.dumps(
    {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
).encode()
# 16 floats: a feature vector or a tiny image patch; small enough that JSON cost is not the story.
KSERVE_BODY = json.dumps(
    {
        "inputs": [
            {"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16},
        ]
    }
).encode()
UPLOAD_HEADER = binary_infer_header("scan", UPLOAD_BYTES)


class BadAnswer(AssertionError):
    """An answer was not what the backend gives for this request."""


@dataclass(frozen=True)
class Workload:
    name: str
    title: str  # how tables and plots name it
    kind: str  # "latency": sequential and concurrent runs; "transfer": sequential MB/s


WORKLOADS = (
    Workload("chat", "chat completion (max_tokens 1)", "latency"),
    Workload("kserve_json", "KServe JSON infer (16 x FP32)", "latency"),
    Workload("upload_16mb", "KServe binary upload (16 MB)", "transfer"),
)


def _upload_payload() -> bytes:
    # A fixed pattern rather than random bytes: reproducible, and its CRC is computed once.
    return bytes(range(256)) * (UPLOAD_BYTES // 256) + bytes(UPLOAD_BYTES % 256)


UPLOAD_PAYLOAD = _upload_payload()
UPLOAD_CRC32 = zlib.crc32(UPLOAD_PAYLOAD)


def build(workload: str, url: str) -> Request:
    """The prebuilt request of `workload` for a server at `url`."""
    if workload == "chat":
        return build_request(
            url, "POST", "/v1/chat/completions", CHAT_BODY, {"Content-Type": "application/json"}
        )
    if workload == "kserve_json":
        return build_request(
            url,
            "POST",
            f"/v2/models/{KSERVE_MODEL}/infer",
            KSERVE_BODY,
            {"Content-Type": "application/json"},
        )
    if workload == "upload_16mb":
        return build_request(
            url,
            "POST",
            f"/v2/models/{KSERVE_MODEL}/infer",
            UPLOAD_HEADER,
            binary_infer_headers(UPLOAD_HEADER),
            payload=memoryview(UPLOAD_PAYLOAD),
        )
    raise ValueError(f"unknown workload {workload!r}")


def check(workload: str, response: Response) -> None:
    """Check one answer in full; raise BadAnswer saying what is wrong."""
    if response.status != 200:
        raise BadAnswer(f"{workload}: status {response.status}: {response.body[:300]!r}")
    try:
        body = json.loads(response.body)
    except ValueError as exc:
        raise BadAnswer(f"{workload}: answer is not JSON: {exc}") from None
    if workload == "chat":
        if body.get("object") != "chat.completion" or not body.get("choices"):
            raise BadAnswer(f"chat: not a chat completion: {body}")
    elif workload == "kserve_json":
        outputs = body.get("outputs") or [{}]
        if body.get("model_name") != KSERVE_MODEL or outputs[0].get("data") != [0.5] * 16:
            raise BadAnswer(f"kserve_json: not the echoed tensor: {body}")
    elif workload == "upload_16mb":
        got = {output["name"]: output["data"][0] for output in body.get("outputs", [])}
        wanted = {"scan_nbytes": UPLOAD_BYTES, "scan_crc32": UPLOAD_CRC32}
        if got != wanted:
            raise BadAnswer(f"upload_16mb: backend saw {got}, expected {wanted}")
