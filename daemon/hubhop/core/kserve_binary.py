"""The KServe v2 / Triton binary tensor extension, client side.

A request using it carries `Inference-Header-Content-Length: N`: the first N bytes of the body
are the JSON inference header, and the raw bytes of each binary input follow in order, each
input's size given in its `parameters.binary_data_size`. Large tensors (a CT series) travel this
way because raw bytes stream, where a JSON array of numbers would have to be parsed whole.
"""

from __future__ import annotations

import json

HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"


def binary_infer_header(name: str, nbytes: int, datatype: str = "UINT8") -> bytes:
    """The JSON header of a request with one binary input of `nbytes` bytes (shape [nbytes])."""
    tensor = {
        "name": name,
        "shape": [nbytes],
        "datatype": datatype,
        "parameters": {"binary_data_size": nbytes},
    }
    return json.dumps({"inputs": [tensor]}).encode()


def binary_infer_headers(header: bytes) -> dict[str, str]:
    """HTTP headers announcing a binary-extension body that starts with `header`."""
    return {HEADER_LENGTH_HEADER: str(len(header)), "Content-Type": "application/octet-stream"}
