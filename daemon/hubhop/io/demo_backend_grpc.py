"""The demo backend's KServe v2 gRPC side (`hubhop demo-backend --grpc-port N`): the same model,
slots, service times and faults as its REST side, over inference.GRPCInferenceService.

Rules:
- It shares the REST side's state (hubhop.io.demo_backend): one slot pool, one fault switch,
  one `received` count, so `GET /demo/stats` tells of both.
- ModelInfer answers as the REST infer does: inputs given typed (`contents`) are echoed back as
  outputs; inputs given raw (`raw_input_contents`) are answered with `NAME_nbytes` and
  `NAME_crc32` INT64 outputs, raw too. A raw input whose size does not match its shape and
  datatype, typed and raw inputs mixed, or a raw entry count that does not match the inputs is
  INVALID_ARGUMENT; an unknown model or version NOT_FOUND; a full queue or shutdown
  UNAVAILABLE (nothing was done: a router may send it elsewhere); the "error" fault INTERNAL.
- Responses carry x-backend-chip and x-backend-name in trailing metadata, as REST's headers.
"""

from __future__ import annotations

import struct
import zlib
from typing import NoReturn

import grpc

from hubhop import __version__
from hubhop.api.inference import grpc_service_pb2 as pb
from hubhop.api.inference import grpc_service_pb2_grpc as pb_grpc
from hubhop.core import demo_protocol as proto
from hubhop.io.demo_backend import (
    QueueFull,
    _Aborted,
    _BackendState,
    _Failing,
    _misbehave,
    _serve_sample,
)

# What a gRPC client may send: the REST side's bound on a whole JSON body.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Calls in flight get this long to finish when the demo backend stops (its REST grace).
STOP_GRACE_S = 2.0


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, text: str) -> NoReturn:
    await context.abort(code, text)
    raise AssertionError("grpc.aio's abort returned")  # pragma: no cover


class DemoInference(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: _BackendState) -> None:
        self.state = state

    def _stamp(self, context: grpc.aio.ServicerContext) -> None:
        settings = self.state.settings
        context.set_trailing_metadata(
            (("x-backend-chip", settings.chip), ("x-backend-name", settings.name))
        )

    async def _known(self, context: grpc.aio.ServicerContext, model: str, version: str) -> None:
        if model not in self.state.settings.models or version not in ("", proto.DEMO_MODEL_VERSION):
            which = model + (f" version {version}" if version else "")
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"unknown model: '{which}'")

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.state.draining)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=self.state.settings.name, version=__version__)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        await self._known(context, request.name, request.version)
        self._stamp(context)
        return pb.ModelReadyResponse(ready=not self.state.draining)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        await self._known(context, request.name, request.version)
        self._stamp(context)
        meta = proto.model_metadata(request.name)
        wildcard = pb.ModelMetadataResponse.TensorMetadata(name="*", datatype="BYTES", shape=[-1])
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[proto.DEMO_MODEL_VERSION],
            platform=str(meta["platform"]),
            inputs=[wildcard],
            outputs=[wildcard],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        await self._known(context, request.model_name, request.model_version)
        problem = infer_problem(request)
        if problem is not None:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        state = self.state
        try:
            await _misbehave(state)
            async with state.pool.slot():
                await _serve_sample(state)
        except QueueFull:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the server is overloaded")
        except _Aborted:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        except _Failing:
            await _abort(context, grpc.StatusCode.INTERNAL, "the demo backend's error fault is on")
        self._stamp(context)
        return infer_response(request)


def infer_problem(request: pb.ModelInferRequest) -> str | None:
    """Why the demo cannot answer `request`; None when it can."""
    raw = request.raw_input_contents
    if raw and any(t.HasField("contents") for t in request.inputs):
        return "inputs are given both raw and typed; use one or the other"
    if raw and len(raw) != len(request.inputs):
        return f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs"
    for tensor, data in zip(request.inputs, raw, strict=False):
        size = proto.DATATYPE_SIZES.get(tensor.datatype)
        if size is None:
            continue  # BYTES: length-prefixed elements, any size
        count = 1
        for dimension in tensor.shape:
            count *= max(0, dimension)
        if count * size != len(data):
            return (
                f"input '{tensor.name}': {len(data)} bytes, its shape {list(tensor.shape)} of "
                f"{tensor.datatype} needs {count * size}"
            )
    return None


def infer_response(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    """The REST infer's answer, in gRPC's messages (see the rules)."""
    wanted = {o.name for o in request.outputs} or None
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version=proto.DEMO_MODEL_VERSION, id=request.id
    )
    raw = request.raw_input_contents
    for index, tensor in enumerate(request.inputs):
        if raw:
            data = raw[index]
            for name, value in (
                (f"{tensor.name}_nbytes", len(data)),
                (f"{tensor.name}_crc32", zlib.crc32(data)),
            ):
                if wanted is None or name in wanted:
                    response.outputs.add(name=name, datatype="INT64", shape=[1])
                    response.raw_output_contents.append(struct.pack("<q", value))
        elif wanted is None or tensor.name in wanted:
            output = response.outputs.add(
                name=tensor.name, datatype=tensor.datatype, shape=tensor.shape
            )
            output.contents.CopyFrom(tensor.contents)
    return response


async def start_grpc(state: _BackendState, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Serve the gRPC side on host:port (0: a free port); the server and its bound port."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(DemoInference(state), server)  # type: ignore[no-untyped-call]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        await server.stop(None)
        raise OSError(f"gRPC cannot bind {address}")
    await server.start()
    return server, bound
