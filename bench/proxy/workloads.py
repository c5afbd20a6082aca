"""The three requests the proxy benchmark sends, prebuilt per target URL, and how each answer is
checked.

- chat: a small non-streamed OpenAI chat completion with max_tokens 1: the smallest real
  inference call, so the answer is dominated by per-request cost (parse, route, forward).
- kserve_json: a KServe v2 infer with a small FP32 tensor inline in JSON: the same question for
  the Open Inference Protocol path, which hubhop streams instead of reading whole.
- upload: a KServe v2 infer with one large UINT8 tensor (200 MB in the full run, 16 MB in the
  quick one) in the binary extension (`Inference-Header-Content-Length`, JSON header, raw
  bytes): what a hop costs in bandwidth and in memory. The client generates it from one reused
  1 MB chunk while sending, so it is never held whole on this side either.

Each answer is checked in full during warm-up (status, JSON shape, byte count and CRC-32 of the
upload as the backend saw it); measured requests are checked by status only, to keep the
client's cost per request small and equal across variants.
"""

from __future__ import annotations

import functools
import itertools
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from bench._http import GeneratedBody, Request, Response, build_request
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
# The upload's repeated piece: a fixed pattern rather than random bytes, so the run is
# reproducible. Upload sizes are whole multiples of it.
UPLOAD_CHUNK = bytes(range(250)) * 4000


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
    Workload("upload", "KServe binary upload", "transfer"),
)
UPLOAD = "upload"


def upload_body(size: int) -> GeneratedBody:
    """`size` bytes of the upload pattern, made chunk by chunk as they are sent."""
    if size % len(UPLOAD_CHUNK):
        raise ValueError(f"upload size {size} is not a multiple of {len(UPLOAD_CHUNK)}")
    chunk = memoryview(UPLOAD_CHUNK)

    def chunks() -> Iterator[memoryview]:
        return itertools.repeat(chunk, size // len(UPLOAD_CHUNK))

    return GeneratedBody(size, chunks)


@functools.cache
def upload_crc32(size: int) -> int:
    """The CRC-32 of the upload of `size` bytes, as the backend reports it."""
    crc = 0
    for chunk in upload_body(size).chunks():
        crc = zlib.crc32(chunk, crc)
    return crc


def build(workload: str, url: str, upload_bytes: int) -> Request:
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
    if workload == UPLOAD:
        header = binary_infer_header("scan", upload_bytes)
        return build_request(
            url,
            "POST",
            f"/v2/models/{KSERVE_MODEL}/infer",
            header,
            binary_infer_headers(header),
            payload=upload_body(upload_bytes),
        )
    raise ValueError(f"unknown workload {workload!r}")


def check(workload: str, response: Response, upload_bytes: int) -> None:
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
    elif workload == UPLOAD:
        got = {output["name"]: output["data"][0] for output in body.get("outputs", [])}
        wanted = {"scan_nbytes": upload_bytes, "scan_crc32": upload_crc32(upload_bytes)}
        if got != wanted:
            raise BadAnswer(f"upload: backend saw {got}, expected {wanted}")
