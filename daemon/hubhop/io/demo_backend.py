"""The built-in demo backend: a stand-in for vLLM or Triton in demos, tests and benchmarks.

It speaks the OpenAI REST API and the KServe v2 REST API (with the binary tensor extension) and
behaves like an inference server under load: a fixed number of slots, a bounded FIFO queue in
front of them, a service time drawn from a distribution, and tokens streamed at a steady rate.
`GET /demo/stats` shows the load, so tests and benchmarks need not guess it from timings.

Rules:
- Request and response shapes live in `hubhop.core.demo_protocol` (pure); this module does the
  sockets, the slots and the waiting. It waits only on the loop's clock (`_pause`).
- Shutdown: in-flight requests get a grace period to finish; then every wait is cut short and
  the rest are aborted (503, or a stream that ends without [DONE]), so the process exits soon.
- Every body it reads is bounded; binary tensors are consumed as a stream, never held whole.
- Every response carries `x-backend-chip` and `x-backend-name`, so a router's choice shows.
- Faults on demand, for fault tests: `POST /demo/fault` with {"fault": "error"} answers every
  inference 500 at once, "hang" never answers (until the client leaves or shutdown), "slow" adds
  `extra_ms` to every service time, "none" serves normally again. The same process goes bad and
  recovers; `GET /demo/stats` counts every inference request `received`, faulty or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import signal
import sys
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import StreamReader, web

from hubhop import __version__
from hubhop.core import demo_protocol as proto
from hubhop.core.kserve_binary import HEADER_LENGTH_HEADER
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io.loop import LOOP_KINDS, LoopUnavailable, run

# A JSON body (an OpenAI request, a KServe request with tensors inline, or a binary request's
# header) is read whole, so it is bounded. 64 MiB holds any realistic chat history or a
# few million inline numbers; bigger tensors belong in the binary extension, which streams.
MAX_JSON_BODY_BYTES = 64 * 1024 * 1024
# Binary tensors are read in pieces of this size: large enough that per-read overhead is
# negligible, small enough that a 200 MB upload costs the process about this much memory.
BINARY_READ_CHUNK_BYTES = 1024 * 1024
# On SIGTERM, in-flight requests get this long to finish before they are cut: the default
# 40 ms service time plus 16 tokens at 50 tokens/s is about 0.4 s, so 2 s covers a busy moment
# without making a test or a cluster restart wait.
SHUTDOWN_GRACE_SECONDS = 2.0
# Retry-After on a 503: about the time a full queue of default requests takes to move on.
RETRY_AFTER_SECONDS = 1
# What `POST /demo/fault` may switch to (see the rules).
FAULTS = ("none", "error", "hang", "slow")
# Real inference times are right-skewed: a 40 ms median (a small model's prefill on one GPU)
# with sigma 0.3 puts p99 near twice the median, like a lightly loaded vLLM.
DEFAULT_SERVICE_TIME = ServiceTimeDistribution("lognormal", (40.0, 0.3))


@dataclass(frozen=True)
class DemoBackendSettings:
    host: str = "127.0.0.1"  # loopback: the demo is never meant to face a network
    port: int = 0  # 0: the kernel picks a free port; the ready line says which
    chip: str = "cpu"  # the chip it claims to be; labels responses and routing choices
    models: tuple[str, ...] = ("demo-llm",)
    service_time: ServiceTimeDistribution = DEFAULT_SERVICE_TIME
    slots: int = 4  # a small continuous batch: enough to show queueing under a modest load
    # vLLM-like servers accept a deep queue before refusing; 256 lets a benchmark build a
    # visible backlog while still bounding memory and showing 503s under overload.
    max_queue: int = 256
    token_rate: float = 50.0  # tokens/s per request: a typical 7B model's decode speed
    max_tokens: int = 16  # answer length when the request does not say: short, quick demos
    seed: int | None = None  # None: a fresh random seed per process
    name: str = "demo"  # the backend's name in headers and metadata
    # Port of its KServe v2 gRPC side (hubhop.io.demo_backend_grpc), 0 a free one; None: none.
    grpc_port: int | None = None

    def __post_init__(self) -> None:
        faults = [
            fault
            for fault, bad in (
                ("host must not be empty", not self.host),
                (f"port must be 0..65535, got {self.port}", not 0 <= self.port <= 65535),
                ("chip must not be empty", not self.chip),
                ("models must name at least one model", not any(self.models)),
                ("models must not contain an empty name", "" in self.models),
                (f"slots must be at least 1, got {self.slots}", self.slots < 1),
                (f"max_queue must not be negative, got {self.max_queue}", self.max_queue < 0),
                (
                    f"token_rate must be a positive number, got {self.token_rate}",
                    not (math.isfinite(self.token_rate) and self.token_rate > 0),
                ),
                (
                    f"max_tokens must be 1..{proto.MAX_MODEL_TOKENS}, got {self.max_tokens}",
                    not 1 <= self.max_tokens <= proto.MAX_MODEL_TOKENS,
                ),
                ("name must not be empty", not self.name),
            )
            if bad
        ]
        if faults:
            raise ValueError("; ".join(faults))


class QueueFull(Exception):
    """Every slot is busy and the queue holds max_queue requests already."""


class SlotPool:
    """`slots` concurrent requests; up to `max_queue` more wait in FIFO order."""

    def __init__(self, slots: int, max_queue: int) -> None:
        self.slots = slots
        self.max_queue = max_queue
        self.in_flight = 0
        self.served = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.idle = asyncio.Event()  # set while no request holds or waits for a slot
        self.idle.set()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`; raises QueueFull when full."""
        await self._acquire()
        try:
            yield
            self.served += 1
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self.in_flight < self.slots and not self._waiters:
            self.in_flight += 1
            self.idle.clear()
            return
        if len(self._waiters) >= self.max_queue:
            self.rejected += 1
            raise QueueFull
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # _release hands its slot over: in_flight does not change
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()


@dataclass
class _BackendState:
    settings: DemoBackendSettings
    rng: random.Random
    pool: SlotPool
    created: int  # the models' "created" timestamp: when this backend started
    draining: bool = False  # shutting down: not ready, waiting for in-flight requests
    aborting: asyncio.Event = field(default_factory=asyncio.Event)  # grace is over: cut waits
    fault: str = "none"  # one of FAULTS
    fault_extra_ms: float = 0.0  # added to every service time while the fault is "slow"
    received: int = 0  # inference requests that arrived, whatever the fault made of them


_STATE = web.AppKey("demo_backend_state", _BackendState)


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_json(request: web.Request) -> object:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _BadBody(413, f"request body is over {MAX_JSON_BODY_BYTES} bytes") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting recurses
        raise _BadBody(400, f"request body is not valid JSON: {exc}") from None


class _Aborted(Exception):
    """The backend is shutting down and the grace period for in-flight requests is over."""


class _Failing(Exception):
    """The "error" fault is on: the request is answered 500."""


async def _misbehave(state: _BackendState) -> None:
    """Count an inference request in, and carry out the fault switched on, if any."""
    state.received += 1
    if state.fault == "error":
        raise _Failing
    if state.fault == "hang":
        await state.aborting.wait()  # till the client leaves (a cancel) or shutdown
        raise _Aborted


async def _pause(state: _BackendState, seconds: float) -> None:
    """Wait `seconds` on the loop's clock; raise _Aborted if shutdown cuts the wait."""
    if seconds <= 0:  # no wait (const:0, a token already due): skip the timer's cost
        if state.aborting.is_set():
            raise _Aborted
        return
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await state.aborting.wait()
    except TimeoutError:
        return
    raise _Aborted


async def _serve_sample(state: _BackendState) -> None:
    """Hold the caller's slot for one service-time sample (prefill, or one inference)."""
    extra_ms = state.fault_extra_ms if state.fault == "slow" else 0.0
    await _pause(state, (state.settings.service_time.sample_ms(state.rng) + extra_ms) / 1000.0)


async def _drain(app: web.Application) -> None:
    """On shutdown: let in-flight and queued requests finish within the grace, then cut them."""
    state = app[_STATE]
    state.draining = True
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE_SECONDS):
            await state.pool.idle.wait()
    except TimeoutError:
        pass
    state.aborting.set()


# --- OpenAI ----------------------------------------------------------------------------------


def _openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    error_type = {404: "not_found_error", 503: "server_error"}.get(status, "invalid_request_error")
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    body = proto.openai_error(message, error_type, param, code)
    return web.json_response(body, status=status, headers=headers)


def _model_not_found(model: str) -> web.Response:
    return _openai_error(404, f"The model '{model}' does not exist", "model", "model_not_found")


_OpenAIHandler = Callable[[web.Request, _BackendState], Awaitable[web.StreamResponse]]


def _openai_endpoint(
    handler: _OpenAIHandler,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Turn request faults and a full queue into OpenAI-style error responses."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, request.app[_STATE])
        except _BadBody as exc:
            return _openai_error(exc.status, exc.message)
        except proto.OpenAIRequestError as exc:
            return _openai_error(400, exc.message, exc.param)
        except QueueFull:
            return _openai_error(503, "the server is overloaded; retry later")
        except _Aborted:
            return _openai_error(503, "the server is shutting down; retry elsewhere")
        except _Failing:
            return _openai_error(500, "the demo backend's error fault is on")

    return endpoint


async def _list_models(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    settings = state.settings
    return web.json_response(proto.models_list(settings.models, state.created, settings.name))


async def _generate(request: web.Request, state: _BackendState, chat: bool) -> web.StreamResponse:
    settings = state.settings
    parse = proto.parse_chat_request if chat else proto.parse_completion_request
    wanted = parse(await _read_json(request), settings.max_tokens)
    if wanted.model not in settings.models:
        return _model_not_found(wanted.model)
    await _misbehave(state)
    generation = proto.Generation(
        chat=chat,
        completion_id=f"{'chatcmpl' if chat else 'cmpl'}-{state.rng.getrandbits(96):024x}",
        created=int(time.time()),
        model=wanted.model,
        tokens=proto.generated_tokens(
            f"{settings.seed}|{wanted.model}|{wanted.prompt_text}", wanted.max_tokens
        ),
        finish_reason=wanted.finish_reason,
        prompt_tokens=proto.count_tokens(wanted.prompt_text),
        include_usage=wanted.include_usage,
    )
    token_interval = 1.0 / settings.token_rate
    async with state.pool.slot():
        await _serve_sample(state)  # prefill
        if not wanted.stream:
            await _pause(state, len(generation.tokens) * token_interval)  # decode
            return web.json_response(generation.body())
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        try:
            for index in range(len(generation.tokens)):
                deadline += token_interval  # paced from the start, so delays do not add up
                await _pause(state, deadline - loop.time())
                await response.write(generation.token_event(index))
            await response.write(generation.closing_events())
        except _Aborted:
            pass  # shutdown: the stream ends without [DONE], which tells the client it was cut
        except ConnectionResetError:
            pass  # the client went away; the slot is released on the way out
        return response


async def _chat_completions(request: web.Request, state: _BackendState) -> web.StreamResponse:
    return await _generate(request, state, chat=True)


async def _completions(request: web.Request, state: _BackendState) -> web.StreamResponse:
    return await _generate(request, state, chat=False)


async def _embeddings(request: web.Request, state: _BackendState) -> web.StreamResponse:
    wanted = proto.parse_embedding_request(await _read_json(request))
    if wanted.model not in state.settings.models:
        return _model_not_found(wanted.model)
    await _misbehave(state)
    async with state.pool.slot():
        await _serve_sample(state)
    return web.json_response(proto.embeddings_body(wanted))


# --- KServe v2 -------------------------------------------------------------------------------


def _kserve_error(status: int, message: str) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _kserve_model(request: web.Request) -> str | None:
    """The model the path names, or None when it or its version is not served here."""
    model = request.match_info["model"]
    version = request.match_info.get("version", proto.DEMO_MODEL_VERSION)
    known = model in request.app[_STATE].settings.models and version == proto.DEMO_MODEL_VERSION
    return model if known else None


def _unknown_model(request: web.Request) -> web.Response:
    version = request.match_info.get("version")
    which = request.match_info["model"] + (f" version {version}" if version else "")
    return _kserve_error(404, f"Request for unknown model: '{which}' is not found")


async def _server_metadata(request: web.Request) -> web.Response:
    return web.json_response(proto.server_metadata(request.app[_STATE].settings.name, __version__))


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"live": True})


async def _ready(request: web.Request) -> web.Response:
    ready = not request.app[_STATE].draining
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def _model_metadata(request: web.Request) -> web.Response:
    model = _kserve_model(request)
    return (
        _unknown_model(request) if model is None else web.json_response(proto.model_metadata(model))
    )


async def _model_ready(request: web.Request) -> web.Response:
    model = _kserve_model(request)
    if model is None:
        return _unknown_model(request)
    ready = not request.app[_STATE].draining
    return web.json_response({"name": model, "ready": ready}, status=200 if ready else 503)


async def _consume_binary(
    content: StreamReader, sizes: tuple[tuple[str, int], ...]
) -> dict[str, tuple[int, int]]:
    """Read each binary input piece by piece; return name -> (byte count, CRC-32)."""
    digests: dict[str, tuple[int, int]] = {}
    for name, size in sizes:
        received, crc = 0, 0
        while received < size:
            piece = await content.read(min(BINARY_READ_CHUNK_BYTES, size - received))
            if not piece:
                raise proto.KServeRequestError(
                    f"body ended after {received} of {size} bytes of input '{name}'"
                )
            crc = zlib.crc32(piece, crc)
            received += len(piece)
        digests[name] = (received, crc)
    if await content.read(1):
        raise proto.KServeRequestError(
            "body is longer than the header and binary_data_size add up to"
        )
    return digests


async def _read_infer_request(
    request: web.Request,
) -> tuple[proto.InferRequest, dict[str, tuple[int, int]]]:
    header_length_text = request.headers.get(HEADER_LENGTH_HEADER)
    if header_length_text is None:
        return proto.parse_infer_request(await _read_json(request), binary_allowed=False), {}
    body_length = request.content_length
    header_length = proto.parse_header_length(header_length_text, body_length, MAX_JSON_BODY_BYTES)
    try:
        header = json.loads(await request.content.readexactly(header_length))
    except asyncio.IncompleteReadError:
        raise _BadBody(400, "body is shorter than Inference-Header-Content-Length") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _BadBody(400, f"inference header is not valid JSON: {exc}") from None
    wanted = proto.parse_infer_request(header, binary_allowed=True)
    binary_total = sum(size for _, size in wanted.binary_sizes)
    if body_length is not None and header_length + binary_total != body_length:
        raise proto.KServeRequestError(
            f"header ({header_length}) and binary_data_size ({binary_total}) add up to "
            f"{header_length + binary_total} bytes, the body has {body_length}"
        )
    return wanted, await _consume_binary(request.content, wanted.binary_sizes)


async def _infer(request: web.Request) -> web.Response:
    model = _kserve_model(request)
    if model is None:
        return _unknown_model(request)
    state = request.app[_STATE]
    try:
        wanted, digests = await _read_infer_request(request)
        await _misbehave(state)
        async with state.pool.slot():
            await _serve_sample(state)
    except _BadBody as exc:
        return _kserve_error(exc.status, exc.message)
    except proto.KServeRequestError as exc:
        return _kserve_error(400, str(exc))
    except QueueFull:
        return _kserve_error(503, "the server is overloaded; retry later")
    except _Aborted:
        return _kserve_error(503, "the server is shutting down; retry elsewhere")
    except _Failing:
        return _kserve_error(500, "the demo backend's error fault is on")
    return web.json_response(proto.infer_response_body(model, wanted, digests))


# --- the application -------------------------------------------------------------------------


async def _stats(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    pool = state.pool
    return web.json_response(
        {
            "in_flight": pool.in_flight,
            "queued": pool.queued,
            "served": pool.served,
            "received": state.received,
            "fault": state.fault,
            "rejected": pool.rejected,
            "slots": pool.slots,
            "chip": state.settings.chip,
            "models": list(state.settings.models),
        }
    )


async def _set_fault(request: web.Request) -> web.Response:
    """POST /demo/fault {"fault": one of FAULTS, "extra_ms": N (for "slow")}: switch it."""
    state = request.app[_STATE]
    try:
        body = await _read_json(request)
    except _BadBody as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    fault = body.get("fault") if isinstance(body, dict) else None
    extra_ms = body.get("extra_ms", 0.0) if isinstance(body, dict) else None
    if fault not in FAULTS:
        return web.json_response({"error": f"fault must be one of {', '.join(FAULTS)}"}, status=400)
    if (
        isinstance(extra_ms, bool)
        or not isinstance(extra_ms, int | float)
        or not 0 <= extra_ms < math.inf
    ):
        return web.json_response({"error": "extra_ms must be a number of ms >= 0"}, status=400)
    state.fault, state.fault_extra_ms = fault, float(extra_ms)
    return web.json_response({"fault": fault, "extra_ms": float(extra_ms)})


def build_app(settings: DemoBackendSettings, rng: random.Random) -> web.Application:
    """The demo backend's application; `rng` draws service times and ids."""
    state = _BackendState(
        settings, rng, SlotPool(settings.slots, settings.max_queue), int(time.time())
    )
    app = web.Application(client_max_size=MAX_JSON_BODY_BYTES)
    app[_STATE] = state

    async def stamp_backend_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-backend-chip"] = settings.chip
        response.headers["x-backend-name"] = settings.name

    app.on_response_prepare.append(stamp_backend_headers)
    app.on_shutdown.append(_drain)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_post("/v1/chat/completions", _openai_endpoint(_chat_completions))
    app.router.add_post("/v1/completions", _openai_endpoint(_completions))
    app.router.add_post("/v1/embeddings", _openai_endpoint(_embeddings))
    app.router.add_get("/v2", _server_metadata)
    app.router.add_get("/v2/health/live", _live)
    app.router.add_get("/v2/health/ready", _ready)
    for model_path in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.router.add_get(model_path, _model_metadata)
        app.router.add_get(model_path + "/ready", _model_ready)
        app.router.add_post(model_path + "/infer", _infer)
    app.router.add_get("/demo/stats", _stats)
    app.router.add_post("/demo/fault", _set_fault)
    return app


async def start(settings: DemoBackendSettings) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port."""
    app = build_app(settings, random.Random(settings.seed))
    # No access log: a benchmark sends thousands of requests and the log would cost more CPU
    # than the demo's own work.
    # Handler cancellation: a caller that hangs up frees its slot, as real inference servers
    # abort a generation whose client left.
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site.port


# --- the command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoBackendSettings()
    parser.add_argument("--host", default=defaults.host, help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--chip", default=defaults.chip, help="chip type it claims, e.g. nvidia-h100"
    )
    parser.add_argument(
        "--models", default=",".join(defaults.models), help="comma-separated model names"
    )
    parser.add_argument(
        "--service-ms",
        default=str(defaults.service_time),
        metavar="DIST",
        help="service time in ms: N, const:N, uniform:LO,HI, exp:MEAN or lognormal:MEDIAN,SIGMA",
    )
    parser.add_argument("--slots", type=int, default=defaults.slots, help="concurrent requests")
    parser.add_argument(
        "--max-queue", type=int, default=defaults.max_queue, help="waiting requests before 503"
    )
    parser.add_argument(
        "--token-rate", type=float, default=defaults.token_rate, help="tokens/s streamed"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        help="tokens when a request does not say",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable runs")
    parser.add_argument(
        "--name", default=defaults.name, help="backend name in headers and metadata"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=None, help="also serve KServe v2 over gRPC (0: free)"
    )
    parser.add_argument("--loop", choices=LOOP_KINDS, default="auto", help="event loop")


def _settings_from(namespace: argparse.Namespace) -> DemoBackendSettings:
    models = tuple(model.strip() for model in namespace.models.split(",") if model.strip())
    return DemoBackendSettings(
        host=namespace.host,
        port=namespace.port,
        chip=namespace.chip,
        models=models,
        service_time=ServiceTimeDistribution.parse(namespace.service_ms),
        slots=namespace.slots,
        max_queue=namespace.max_queue,
        token_rate=namespace.token_rate,
        max_tokens=namespace.max_tokens,
        seed=namespace.seed,
        name=namespace.name,
        grpc_port=namespace.grpc_port,
    )


async def _serve(settings: DemoBackendSettings) -> int:
    try:
        runner, port = await start(settings)
    except OSError as exc:
        reason = exc.strerror or exc
        print(
            f"demo-backend: cannot listen on {settings.host}:{settings.port}: {reason}",
            file=sys.stderr,
        )
        return 1
    grpc_server, grpc_at = None, ""
    if settings.grpc_port is not None:
        from hubhop.io.demo_backend_grpc import STOP_GRACE_S, start_grpc

        try:
            grpc_server, grpc_port = await start_grpc(
                runner.app[_STATE], settings.host, settings.grpc_port
            )
        except OSError as exc:
            print(f"demo-backend: {exc}", file=sys.stderr)
            await runner.cleanup()
            return 1
        grpc_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        grpc_at = f" grpc={grpc_host}:{grpc_port}"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"demo-backend ready http://{host}:{port}{grpc_at}", flush=True)
        await stop.wait()
    finally:
        for stop_signal in stop_signals:
            loop.remove_signal_handler(stop_signal)
        if grpc_server is not None:
            await grpc_server.stop(STOP_GRACE_S)
        await runner.cleanup()
    return 0


def run_from_cli(namespace: argparse.Namespace) -> int:
    """Run `hubhop demo-backend` until SIGTERM or SIGINT; returns the exit status."""
    try:
        settings = _settings_from(namespace)
    except ValueError as exc:
        print(f"demo-backend: {exc}", file=sys.stderr)
        return 2
    try:
        return run(_serve(settings), namespace.loop)
    except LoopUnavailable as exc:
        print(f"demo-backend: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hubhop demo-backend", description="A demo OpenAI and KServe v2 inference server."
    )
    add_arguments(parser)
    return run_from_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
