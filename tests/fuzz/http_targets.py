"""Fuzz targets for what an app, a peer daemon or an upstream sends over HTTP: routing hints,
the route endpoint's JSON body, Authorization and request ids, the forwarding headers between
daemons, upstream answers (httptools), and the demo backend's OpenAI and KServe bodies.

Rules:
- Header inputs are `name: value` blocks decoded as aiohttp decodes a head (target.header_block).
- Refusals: HintError, TokenError, ApiError (the handlers' error answer), BrokenAnswer, and the
  demo backend's OpenAIRequestError / KServeRequestError with the JSON faults its adapter turns
  into a 400 (ValueError, UnicodeDecodeError).
- The forwarding headers are parsed inside the async handler `serve_forwarded`; it is driven
  whole, on an event loop, with a stand-in connection pool that answers as a peer or a backend
  would (the fuzzed `upstream-*` lines say how), so the peer's Retry-After and Server-Timing,
  which the handler also parses, are fuzzed too. No socket is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from multidict import CIMultiDict, CIMultiDictProxy

from hubhop.core import demo_protocol as demo
from hubhop.core.admission import Admission
from hubhop.core.client_tokens import TokenError, identify, token_digest
from hubhop.core.config import NodeConfig, parse_config
from hubhop.core.headers import end_to_end, valid_request_id
from hubhop.core.kserve_binary import binary_infer_header
from hubhop.core.routing_hints import HintError, parse_hints, route_ask_from_json
from hubhop.io.admission_gate import AdmissionGate
from hubhop.io.backend_proxy import Upstream, UpstreamRefused, UpstreamUnreachable
from hubhop.io.demo_backend import MAX_JSON_BODY_BYTES
from hubhop.io.http1_messages import BrokenAnswer, ResponseReader
from hubhop.io.http_errors import ApiError
from hubhop.io.local_endpoint import read_json_body
from hubhop.io.request_router import Call, Cluster, serve_forwarded
from hubhop.scoring.scorer import Scorer
from tests.fuzz.target import Target, header_block, lines

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rad-7f3c9a1e5b2d4c6a8e0f1a2b3c4d5e6f"
# A listener that restricts its clients, and one known client: every hint path can refuse.
ROUTING = f"""
[routing]
lane = "standard"
allowed_lanes = ["standard", "batch"]
tier = "province"
allowed_tiers = ["city", "province", "region"]
max_budget = 4.0
[[tokens]]
name = "radiology"
sha256 = "{token_digest(TOKEN)}"
lane = "emergency"
allowed_lanes = ["emergency", "standard"]
"""
ME = "wuhan-union-hospital"
BACKEND = "ascend-310p-ct"
# Peers the stand-in cluster knows an address for; any other next hop is unreachable.
KNOWN_PEERS = frozenset({"wuhan-dc-1", "hub-wuhu", "city-b"})


def node_config() -> NodeConfig:
    return parse_config((ROOT / "systemd" / "edge.toml").read_text() + ROUTING, "edge.toml")


def hint_seeds() -> list[bytes]:
    return [
        lines(("x-hubhop-tier", "province"), ("x-hubhop-lane", "batch")),
        lines(("x-hubhop-max-latency-ms", "4.5"), ("x-hubhop-chip", "nvidia-h100")),
        lines(("x-hubhop-budget", "2.5"), ("x-hubhop-deadline-ms", "8000")),
        lines(("x-hubhop-explain", "yes"), ("x-hubhop-spill", "none")),
        lines(("x-hubhop-idempotent", "false"), ("x-hubhop-tier", "city")),
        lines(("x-hubhop-lane", "emergency"), ("x-hubhop-tier", "national")),
    ]


def route_body_seeds() -> list[bytes]:
    bodies: list[dict[str, Any]] = [
        {"model": "qwen2.5-7b-instruct", "tier": "province", "lane": "batch"},
        {"model": "ct-stroke-triage", "max_latency_ms": 4.5, "chip": "ascend-310p"},
        {"model": "m", "budget": 2, "deadline_ms": 8000, "explain": True, "spill": "any"},
        {"model": "meta-llama/Llama-3.1-8B-Instruct", "tier": None, "explain": "1"},
    ]
    return [json.dumps(b).encode() for b in bodies]


def client_header_seeds() -> list[bytes]:
    return [
        lines(("authorization", f"Bearer {TOKEN}"), ("x-request-id", "req-42")),
        lines(("authorization", "Bearer wrong"), ("x-request-id", "a.b:c@d/e+f=g-h")),
        lines(("connection", "keep-alive, x-secret"), ("x-secret", "1"), ("te", "trailers")),
    ]


def forward_seeds() -> list[bytes]:
    here = ("x-hubhop-target", f"{ME}/{BACKEND}")
    relay = ("x-hubhop-target", f"hub-wuhu/{BACKEND}")
    timing = ("upstream-server-timing", "route;dur=0.120, network;dur=1.5, backend;dur=30.25")
    return [
        lines(here, ("x-hubhop-via", "city-b"), ("x-hubhop-lane", "emergency")),
        lines(here, ("x-hubhop-via", "edge-a,city-b"), ("x-hubhop-deadline-ms", "2500")),
        lines(relay, ("x-hubhop-hops", "hub-wuhu"), ("x-hubhop-via", "edge-a"), timing),
        lines(
            relay,
            ("x-hubhop-hops", "wuhan-dc-1,hub-wuhu"),
            ("x-hubhop-via", "edge-a"),
            ("x-hubhop-lane", "batch"),
            ("upstream-refused", "full"),
            ("upstream-retry-after", "3"),
        ),
    ]


def answer_seeds() -> list[bytes]:
    return [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer-Timing: backend;dur=3\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nx-hubhop-refused: full\r\nRetry-After: 2\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: [DONE]\n\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
    ]


def kserve_seeds() -> list[bytes]:
    """First line: the Inference-Header-Content-Length value ("-" for none); then the body."""
    header = binary_infer_header("ct", 4)
    json_body = {
        "id": "r1",
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}],
        "outputs": [{"name": "x"}],
    }
    return [
        str(len(header)).encode() + b"\n" + header + b"\x00\x01\x02\x03",
        b"-\n" + json.dumps(json_body).encode(),
    ]


def openai_seeds() -> list[bytes]:
    bodies: list[dict[str, Any]] = [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        {"model": "m", "prompt": ["a", "b"], "stream": True, "stream_options": {}},
        {"model": "m", "input": ["x", "y"], "encoding_format": "base64"},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]},
    ]
    return [json.dumps(b).encode() for b in bodies]


class _Request:
    """What serve_forwarded and read_json_body read of an aiohttp request."""

    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = CIMultiDictProxy(CIMultiDict(headers))
        self.remote = "127.0.1.2"
        self.content_length = len(body)
        self.content = self
        self._body = body

    async def readexactly(self, n: int) -> bytes:
        return self._body[:n]


class _Served(Exception):
    """The stand-in pool got the call through: a normal outcome."""


class _Pool:
    """Answers as the upstream the input's `upstream-*` lines describe, without a socket."""

    def __init__(self) -> None:
        self.answer: dict[str, str] = {}
        self.in_flight: dict[str, int] = {}

    async def open(self, request: object, upstream: Any, body: object, headers: object,
                   route_ms: float, request_headers: object = None,
                   timing: Callable[[float, float, str | None], str] | None = None,
                   before_answer: object = None) -> None:  # fmt: skip
        if not isinstance(upstream, Upstream):  # a backend of this node
            raise UpstreamUnreachable(Upstream(upstream.name, upstream.url), "fuzz")
        refused = self.answer.get("upstream-refused")
        if refused is not None:
            raise UpstreamRefused(upstream, 503, refused, self.answer.get("upstream-retry-after"))
        if timing is not None:
            timing(route_ms, 5.0, self.answer.get("upstream-server-timing"))
        raise _Served


class Forwarder:
    """serve_forwarded driven whole: this node is ME, fronting BACKEND; its peers are KNOWN_PEERS
    and the upstream answers as the `upstream-*` lines of the headers say."""

    def __init__(self, config: NodeConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.pool = _Pool()
        self.gate = AdmissionGate(Admission({BACKEND: (4, 1)}), time.monotonic)
        self.cluster = Cluster(
            scorer=cast(Scorer, None),  # a forwarded request is never decided again
            peer_addr=lambda node: "127.0.1.9:8080" if node in KNOWN_PEERS else None,
            is_member_host=lambda host: True,
            wan=lambda: None,
        )

    def answer(self, headers: dict[str, str]) -> ApiError | None:
        """The error the handler answers with; None when the call went through to the upstream."""
        self.pool.answer = headers
        call = Call(
            _request(b"", headers), "fuzz", self.config, cast(Any, self.pool), self.gate, b"",
            time.perf_counter(),
        )  # fmt: skip
        try:
            self.loop.run_until_complete(serve_forwarded(call, self.cluster))
        except ApiError as exc:
            return exc
        except _Served:
            return None
        raise AssertionError("serve_forwarded answered without the upstream")


def targets() -> list[Target]:
    config = node_config()
    routing, tokens = config.routing, config.tokens
    loop = asyncio.new_event_loop()
    forwarder = Forwarder(config, loop)

    def routing_headers(data: bytes) -> None:
        headers = header_block(data)
        with contextlib.suppress(HintError):
            parse_hints(headers.get, "qwen2.5-7b-instruct", routing)

    def route_body(data: bytes) -> None:
        try:
            _, document = loop.run_until_complete(read_json_body(_request(data), 1 << 20))
            route_ask_from_json(document, routing)
        except (ApiError, HintError):
            pass

    def client_headers(data: bytes) -> None:
        headers = header_block(data)
        valid_request_id(headers.get("x-request-id", ""))
        end_to_end(headers.items(), [v for k, v in headers.items() if k == "connection"])
        with contextlib.suppress(TokenError):
            identify(tokens, headers.get("authorization"))

    def forwarding(data: bytes) -> None:
        forwarder.answer(header_block(data))

    def upstream_answer(data: bytes) -> None:
        reader = ResponseReader(head_request=data[-1:] == b"H")
        cut = len(data) // 3
        try:
            reader.feed(data[:cut])
            reader.feed(data[cut:])
            reader.feed_eof()
        except BrokenAnswer:
            pass
        reader.take()

    def kserve_infer(data: bytes) -> None:
        """As the demo backend's _read_infer_request: the header length, the JSON (its faults
        are a 400), then the request's checks (KServeRequestError)."""
        value, _, body = data.partition(b"\n")
        binary = value != b"-"
        try:
            if binary:
                text = value.decode("utf-8", "surrogateescape")
                body = body[: demo.parse_header_length(text, len(body), MAX_JSON_BODY_BYTES)]
            document = _json(body)
            if document is not None:
                header = demo.parse_infer_request(document, binary_allowed=binary)
                sum(size for _, size in header.binary_sizes)
        except demo.KServeRequestError:
            pass

    def openai_body(data: bytes) -> None:
        body = _json(data)
        if body is None:
            return
        for parse in (demo.parse_chat_request, demo.parse_completion_request):
            with contextlib.suppress(demo.OpenAIRequestError):
                parse(body, 16)
        with contextlib.suppress(demo.OpenAIRequestError):
            demo.parse_embedding_request(body)

    def close() -> None:
        forwarder.gate.close()
        loop.close()

    return [
        Target("routing_headers", "text", tuple(hint_seeds()), routing_headers),
        Target("route_body", "text", tuple(route_body_seeds()), route_body),
        Target("client_headers", "text", tuple(client_header_seeds()), client_headers),
        Target("forwarding", "text", tuple(forward_seeds()), forwarding),
        Target("upstream_answer", "bytes", tuple(answer_seeds()), upstream_answer),
        Target("kserve_infer", "text", tuple(kserve_seeds()), kserve_infer),
        Target("openai_body", "text", tuple(openai_seeds()), openai_body, close),
    ]


def _json(data: bytes) -> Any:
    """The document, or None where the demo backend answers 400 (not JSON, or nested too deep
    for the parser)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _request(body: bytes, headers: dict[str, str] | None = None) -> Any:
    return _Request(headers or {}, body)
