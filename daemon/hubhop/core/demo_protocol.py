"""The demo backend's wire shapes: OpenAI and KServe v2 bodies, checked and built without I/O.

`hubhop.io.demo_backend` does the sockets, the slots and the clock; this module decides what a
request asks for and what the answer looks like, so both are testable without a server.

Rules:
- Pure and deterministic: no clock, no sockets, no shared random state. Generated text is drawn
  from a `random.Random` seeded by the request's own content, so the same request gets the same
  words from every demo backend that shares a seed.
- Faults in a request raise `OpenAIRequestError` or `KServeRequestError` with a message meant for
  the client; the adapter turns them into each protocol's error body.
- Shapes follow the public OpenAI REST reference and the KServe v2 / Open Inference Protocol
  REST spec with its binary tensor extension (as Triton implements it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
from dataclasses import dataclass
from typing import Any

# A small vocabulary of ordinary words: generated text should look like text in a demo, a log
# or a screenshot, not like random bytes.
WORDS: tuple[str, ...] = (
    "the", "network", "routes", "each", "request", "to", "a", "nearby", "node", "with",
    "free", "capacity", "and", "the", "model", "answers", "within", "its", "latency", "budget",
    "patients", "images", "are", "read", "in", "seconds", "while", "training", "jobs", "wait",
    "for", "cheaper", "power", "across", "province", "city", "data", "center", "hub", "link",
    "fiber", "carries", "light", "quickly", "so", "edge", "sites", "share", "their", "load",
    "scores", "paths", "by", "queue", "time", "price", "green", "energy", "chips", "serve",
    "tokens", "stream", "back", "steadily",
)  # fmt: skip

# Sentence lengths in words (fewest, most), so longer answers read as several sentences.
SENTENCE_WORDS = (5, 13)

# Embedding width: small enough to read in a test, wide enough that distinct inputs differ.
EMBEDDING_DIMENSION = 16

# The demo model's context window. A request asking for more tokens than this is refused, as a
# real server refuses max_tokens beyond its context, instead of holding a slot for minutes.
MAX_MODEL_TOKENS = 8192

SSE_DONE = b"data: [DONE]\n\n"


class OpenAIRequestError(ValueError):
    """The request is malformed; `param` names the offending field when there is one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class KServeRequestError(ValueError):
    """The inference request is malformed; the message is meant for the client."""


# --- OpenAI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """What a chat or text completion request asks the demo model to do."""

    model: str
    prompt_text: str
    max_tokens: int
    finish_reason: str  # "length" when the client capped the answer, else "stop"
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: str  # "float" or "base64"


def openai_error(message: str, error_type: str, param: str | None, code: str | None) -> object:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OpenAIRequestError("the request body must be a JSON object")
    return body


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIRequestError("you must provide a model parameter", "model")
    return model


def _generation_options(
    body: dict[str, Any], default_max_tokens: int
) -> tuple[int, str, bool, bool]:
    """max_tokens, finish_reason, stream, include_usage from a chat or completion body."""
    requested: object = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if requested is None:
        max_tokens, finish_reason = default_max_tokens, "stop"
    elif isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise OpenAIRequestError(f"{param} must be a positive integer", param)
    elif requested > MAX_MODEL_TOKENS:
        raise OpenAIRequestError(
            f"{param} is {requested}, more than this model's context of {MAX_MODEL_TOKENS}", param
        )
    else:
        max_tokens, finish_reason = requested, "length"
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise OpenAIRequestError("stream must be a boolean", "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise OpenAIRequestError("stream_options must be an object", "stream_options")
    include_usage = stream_options.get("include_usage", False) is True
    return max_tokens, finish_reason, stream, include_usage


def _message_text(content: object) -> str:
    """The text of a chat message's content: a string, or a list of parts of type text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def parse_chat_request(body: object, default_max_tokens: int) -> GenerationRequest:
    fields = _require_object(body)
    model = _require_model(fields)
    messages = fields.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIRequestError("messages must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise OpenAIRequestError(f"messages[{index}] must be an object with a role", "messages")
    prompt_text = "\n".join(_message_text(message.get("content")) for message in messages)
    max_tokens, finish_reason, stream, include_usage = _generation_options(
        fields, default_max_tokens
    )
    return GenerationRequest(model, prompt_text, max_tokens, finish_reason, stream, include_usage)


def parse_completion_request(body: object, default_max_tokens: int) -> GenerationRequest:
    fields = _require_object(body)
    model = _require_model(fields)
    prompt = fields.get("prompt")
    if isinstance(prompt, str):
        prompt_text = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompt_text = "\n".join(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        prompt_text = " ".join(str(token_id) for token_id in prompt)  # token ids
    else:
        raise OpenAIRequestError("prompt must be a string or a non-empty array", "prompt")
    max_tokens, finish_reason, stream, include_usage = _generation_options(
        fields, default_max_tokens
    )
    return GenerationRequest(model, prompt_text, max_tokens, finish_reason, stream, include_usage)


def parse_embedding_request(body: object) -> EmbeddingRequest:
    fields = _require_object(body)
    model = _require_model(fields)
    given = fields.get("input")
    if isinstance(given, str):
        inputs: tuple[str, ...] = (given,)
    elif isinstance(given, list) and given and all(isinstance(text, str) for text in given):
        inputs = tuple(given)
    else:
        raise OpenAIRequestError("input must be a string or a non-empty array of strings", "input")
    encoding_format = fields.get("encoding_format", "float")
    if encoding_format not in ("float", "base64"):
        raise OpenAIRequestError("encoding_format must be 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(model, inputs, encoding_format)


def count_tokens(text: str) -> int:
    """A rough token count (one per word) for the usage figures; at least one."""
    return max(1, len(text.split()))


def generated_tokens(seed_material: str, count: int) -> tuple[str, ...]:
    """`count` tokens of plausible text, the same for the same `seed_material`.

    Each token is one word with its leading space, so joining them gives the text.
    """
    rng = random.Random(seed_material)
    tokens: list[str] = []
    words_left_in_sentence = 0
    for index in range(count):
        word = rng.choice(WORDS)
        if words_left_in_sentence == 0:
            word = word.capitalize()
            words_left_in_sentence = rng.randint(*SENTENCE_WORDS)
        words_left_in_sentence -= 1
        ends_sentence = words_left_in_sentence == 0 or index == count - 1
        tokens.append(("" if index == 0 else " ") + word + ("." if ends_sentence else ""))
    return tuple(tokens)


@dataclass(frozen=True)
class Generation:
    """One generated answer, as a whole body or as a stream of server-sent events."""

    chat: bool  # chat.completion objects, else text_completion
    completion_id: str
    created: int
    model: str
    tokens: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int
    include_usage: bool  # the stream ends with a usage event (stream_options.include_usage)

    def _usage(self) -> dict[str, int]:
        completion_tokens = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def _envelope(self, object_type: str, choices: list[object]) -> dict[str, object]:
        return {
            "id": self.completion_id,
            "object": object_type,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def body(self) -> dict[str, object]:
        """The non-streamed response."""
        text = "".join(self.tokens)
        choice: dict[str, object] = {"index": 0, "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choice["finish_reason"] = self.finish_reason
        body = self._envelope("chat.completion" if self.chat else "text_completion", [choice])
        body["usage"] = self._usage()
        return body

    def token_event(self, index: int) -> bytes:
        """The event for token `index`: the first carries the role, the last the finish reason."""
        token = self.tokens[index]
        choice: dict[str, object] = {"index": 0}
        if self.chat:
            choice["delta"] = (
                {"role": "assistant", "content": token} if index == 0 else {"content": token}
            )
        else:
            choice["text"] = token
        choice["logprobs"] = None
        choice["finish_reason"] = self.finish_reason if index == len(self.tokens) - 1 else None
        chunk = self._envelope(
            "chat.completion.chunk" if self.chat else "text_completion", [choice]
        )
        if self.include_usage:
            chunk["usage"] = None  # only the closing usage event fills it
        return sse_event(chunk)

    def closing_events(self) -> bytes:
        """What follows the last token: the usage event when asked for, then [DONE]."""
        if not self.include_usage:
            return SSE_DONE
        chunk = self._envelope("chat.completion.chunk" if self.chat else "text_completion", [])
        chunk["usage"] = self._usage()
        return sse_event(chunk) + SSE_DONE


def sse_event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def embedding_vector(text: str) -> list[float]:
    """A unit vector derived from a hash of `text`: the same text always maps to the same one."""
    digest = hashlib.blake2b(text.encode(), digest_size=2 * EMBEDDING_DIMENSION).digest()
    raw = [
        (digest[2 * i] << 8 | digest[2 * i + 1]) / 32767.5 - 1.0 for i in range(EMBEDDING_DIMENSION)
    ]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]


def embeddings_body(request: EmbeddingRequest) -> dict[str, object]:
    data: list[dict[str, object]] = []
    for index, text in enumerate(request.inputs):
        vector = embedding_vector(text)
        encoded: object = vector
        if request.encoding_format == "base64":  # little-endian float32, as OpenAI sends it
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    prompt_tokens = sum(count_tokens(text) for text in request.inputs)
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_list(models: tuple[str, ...], created: int, owned_by: str) -> dict[str, object]:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": created, "owned_by": owned_by}
            for model in models
        ],
    }


# --- KServe v2 -------------------------------------------------------------------------------

# Bytes per element of each fixed-size tensor datatype; BYTES elements vary in length.
DATATYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8,
    "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8,
    "FP16": 2, "BF16": 2, "FP32": 4, "FP64": 8,
}  # fmt: skip
DATATYPES = (*DATATYPE_SIZES, "BYTES")

# The demo model's one version; KServe paths may name it or leave it out.
DEMO_MODEL_VERSION = "1"


@dataclass(frozen=True)
class InferInput:
    """One input tensor: its JSON `data`, or the size of its bytes in the binary part."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: object
    binary_size: int | None  # None when the data is in the JSON header


@dataclass(frozen=True)
class InferRequest:
    request_id: str | None
    inputs: tuple[InferInput, ...]
    requested_outputs: tuple[str, ...] | None  # None: answer every output

    @property
    def binary_sizes(self) -> tuple[tuple[str, int], ...]:
        """(name, size) of the binary inputs, in the order their bytes follow the header."""
        return tuple(
            (tensor.name, tensor.binary_size)
            for tensor in self.inputs
            if tensor.binary_size is not None
        )


def parse_header_length(value: str, body_length: int | None, limit: int) -> int:
    """The value of Inference-Header-Content-Length, checked against the body and a bound."""
    text = value.strip()
    # ASCII digits only: str.isdigit also takes "²", which int() refuses.
    if not (text.isascii() and text.isdigit()):
        raise KServeRequestError(f"Inference-Header-Content-Length is not a number: {value!r}")
    if len(text.lstrip("0")) > len(str(limit)):  # int() refuses 4,300 digits and more
        raise KServeRequestError(f"inference header of {text[:40]}... bytes is over {limit} bytes")
    length = int(text)
    if length > limit:
        raise KServeRequestError(f"inference header of {length} bytes is over {limit} bytes")
    if body_length is not None and length > body_length:
        raise KServeRequestError(
            f"Inference-Header-Content-Length {length} is longer than the body ({body_length})"
        )
    return length


def _element_count(data: object) -> int:
    # A loop, not recursion: arrays nested as deep as the JSON parser allows (some 900 levels)
    # would overflow the stack of a handler that is already dozens of frames deep.
    count, stack = 0, [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return count


def _parse_input(index: int, tensor: object, binary_allowed: bool) -> InferInput:
    if not isinstance(tensor, dict):
        raise KServeRequestError(f"inputs[{index}] must be an object")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise KServeRequestError(f"inputs[{index}] needs a name")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise KServeRequestError(f"input '{name}': shape must be an array of non-negative ints")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise KServeRequestError(f"input '{name}': unknown datatype {datatype!r}")
    elements = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        if not binary_allowed:
            raise KServeRequestError(
                f"input '{name}': binary_data_size given without Inference-Header-Content-Length"
            )
        if isinstance(binary_size, bool) or not isinstance(binary_size, int) or binary_size < 0:
            raise KServeRequestError(f"input '{name}': binary_data_size must be an int >= 0")
        if "data" in tensor:
            raise KServeRequestError(f"input '{name}': has both data and binary_data_size")
        if datatype != "BYTES" and binary_size != elements * DATATYPE_SIZES[datatype]:
            raise KServeRequestError(
                f"input '{name}': shape {shape} of {datatype} is "
                f"{elements * DATATYPE_SIZES[datatype]} bytes, binary_data_size says {binary_size}"
            )
        return InferInput(name, tuple(shape), datatype, None, binary_size)
    if "data" not in tensor:
        raise KServeRequestError(f"input '{name}': no data and no binary_data_size")
    data = tensor["data"]
    if _element_count(data) != elements:
        raise KServeRequestError(
            f"input '{name}': shape {shape} has {elements} elements, data has "
            f"{_element_count(data)}"
        )
    return InferInput(name, tuple(shape), datatype, data, None)


def output_names(tensor: InferInput) -> tuple[str, ...]:
    """The outputs the demo model answers for one input: an echo, or a binary input's digest."""
    if tensor.binary_size is None:
        return (tensor.name,)
    return (f"{tensor.name}_nbytes", f"{tensor.name}_crc32")


def parse_infer_request(body: object, *, binary_allowed: bool) -> InferRequest:
    """Check an infer request's JSON (the whole body, or the binary extension's header)."""
    if not isinstance(body, dict):
        raise KServeRequestError("the inference request must be a JSON object")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise KServeRequestError("id must be a string")
    given_inputs = body.get("inputs")
    if not isinstance(given_inputs, list) or not given_inputs:
        raise KServeRequestError("inputs must be a non-empty array")
    inputs = tuple(
        _parse_input(index, tensor, binary_allowed) for index, tensor in enumerate(given_inputs)
    )
    names = [tensor.name for tensor in inputs]
    if len(set(names)) != len(names):
        raise KServeRequestError("input names must be unique")
    requested: tuple[str, ...] | None = None
    given_outputs = body.get("outputs")
    if given_outputs is not None:
        if not isinstance(given_outputs, list) or not all(
            isinstance(output, dict) and isinstance(output.get("name"), str)
            for output in given_outputs
        ):
            raise KServeRequestError("outputs must be an array of objects with a name")
        requested = tuple(output["name"] for output in given_outputs)
        known = {name for tensor in inputs for name in output_names(tensor)}
        for name in requested:
            if name not in known:
                raise KServeRequestError(f"unexpected inference output '{name}' for this model")
    return InferRequest(request_id, inputs, requested)


def infer_response_body(
    model: str, request: InferRequest, binary_digests: dict[str, tuple[int, int]]
) -> dict[str, object]:
    """Echo JSON inputs; answer each binary input with its byte count and CRC-32.

    `binary_digests` maps a binary input's name to (nbytes, crc32) of the bytes received.
    """
    outputs: list[dict[str, object]] = []
    for tensor in request.inputs:
        if tensor.binary_size is None:
            values = [(tensor.name, list(tensor.shape), tensor.datatype, tensor.data)]
        else:
            nbytes, crc32 = binary_digests[tensor.name]
            values = [
                (f"{tensor.name}_nbytes", [1], "INT64", [nbytes]),
                (f"{tensor.name}_crc32", [1], "INT64", [crc32]),
            ]
        for name, shape, datatype, data in values:
            if request.requested_outputs is None or name in request.requested_outputs:
                outputs.append({"name": name, "shape": shape, "datatype": datatype, "data": data})
    body: dict[str, object] = {
        "model_name": model,
        "model_version": DEMO_MODEL_VERSION,
        "outputs": outputs,
    }
    if request.request_id is not None:
        body["id"] = request.request_id
    return body


def server_metadata(name: str, version: str) -> dict[str, object]:
    return {"name": name, "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(model: str) -> dict[str, object]:
    # The demo model takes any tensors, so it declares one wildcard input and output.
    wildcard = {"name": "*", "datatype": "BYTES", "shape": [-1]}
    return {
        "name": model,
        "versions": [DEMO_MODEL_VERSION],
        "platform": "hubhop-demo",
        "inputs": [wildcard],
        "outputs": [wildcard],
    }
