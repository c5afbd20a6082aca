"""What each stream sends: the URL, the headers (routing hints included) and the body.

Rules:
- A stream's body is built once and sent by every one of its requests: the generator should
  spend its time sending, not building JSON, and every request of a stream weighs the same.
- `body_bytes` is what the protocol carries as payload: the prompt's bytes (OpenAI), the
  tensor's bytes (KServe; a UINT8 tensor of that many elements, so the JSON form is a few times
  larger on the wire, as it is for a real client).
- Hints go as the daemon's x-hubhop-* request headers; an absent hint is not sent, so the
  daemon's own default applies. The token, when the workload names one, is a bearer token.
- Pure: the token's value is passed in; reading the environment is the command's job.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from urllib.parse import quote

from hubhop.core.demo_protocol import WORDS
from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers
from hubhop.core.routing_hints import HINT_HEADERS
from hubhop.loadgen.workload import OPENAI_PROTOCOLS, Stream

TENSOR_NAME = "input0"


@dataclass(frozen=True)
class PreparedRequest:
    """Everything but the entry point: `path` is appended to each entry's URL."""

    path: str
    headers: dict[str, str]
    body: bytes
    streamed_answer: bool  # an SSE answer, which must end with `data: [DONE]`

    def url(self, entry: str) -> str:
        return entry + self.path


def prompt_text(nbytes: int) -> str:
    """Ordinary words, `nbytes` ASCII bytes long: prompts that look like text to any server."""
    words = itertools.cycle(WORDS)
    parts: list[str] = []
    size = 0
    while size < nbytes:
        word = next(words)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:nbytes]


def tensor_bytes(nbytes: int) -> bytes:
    """A deterministic byte pattern (0..255 repeated): the same tensor from every run."""
    whole, rest = divmod(nbytes, 256)
    return bytes(range(256)) * whole + bytes(range(rest))


def _hints(stream: Stream) -> dict[str, str | float]:
    """The routing hints the stream gives, by the daemon's field names."""
    hints = {
        "lane": stream.lane,
        "tier": stream.tier,
        "max_latency_ms": stream.max_latency_ms,
        "chip": stream.chip,
        "budget": stream.budget,
        "deadline_ms": stream.deadline_ms,
        "spill": stream.spill,
    }
    return {field: value for field, value in hints.items() if value is not None}


def hint_headers(stream: Stream) -> dict[str, str]:
    """The routing hints the stream asks for, as the daemon's request headers."""
    return {
        HINT_HEADERS[field]: value if isinstance(value, str) else _decimal(value)
        for field, value in _hints(stream).items()
    }


def route_ask(stream: Stream) -> dict[str, str | float]:
    """The body of `POST /hubhop/v1/route` asking where the stream's requests would go: the
    model, the API it speaks and its hints, as the route endpoint's JSON fields."""
    protocol = "openai" if stream.protocol in OPENAI_PROTOCOLS else "kserve_v2"
    return {"model": stream.model, "protocol": protocol, **_hints(stream)}


def _decimal(value: float) -> str:
    """A plain decimal, as the daemon reads hint numbers (no exponent: 1e6 is "1000000")."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def prepare(stream: Stream, token: str | None = None) -> PreparedRequest:
    """The request every send of `stream` makes (bar the entry point)."""
    headers = hint_headers(stream)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path, body, content_headers = _payload(stream)
    headers.update(content_headers)
    return PreparedRequest(path, headers, body, streamed_answer=stream.stream)


def _payload(stream: Stream) -> tuple[str, bytes, dict[str, str]]:
    as_json = {"Content-Type": "application/json"}
    if stream.protocol in OPENAI_PROTOCOLS:
        text = prompt_text(stream.body_bytes)
        document: dict[str, object] = {"model": stream.model}
        if stream.protocol == "openai_chat":
            path = "/v1/chat/completions"
            document["messages"] = [{"role": "user", "content": text}]
        else:
            path = "/v1/completions"
            document["prompt"] = text
        document["max_tokens"] = stream.max_tokens
        document["stream"] = stream.stream
        return path, json.dumps(document).encode(), as_json
    path = f"/v2/models/{quote(stream.model, safe='')}/infer"
    data = tensor_bytes(stream.body_bytes)
    if stream.protocol == "kserve_v2_json":
        tensor = {
            "name": TENSOR_NAME,
            "shape": [len(data)],
            "datatype": "UINT8",
            "data": list(data),
        }
        return path, json.dumps({"inputs": [tensor]}).encode(), as_json
    header = binary_infer_header(TENSOR_NAME, len(data))
    return path, header + data, binary_infer_headers(header)
