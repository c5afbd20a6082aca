"""Errors as JSON, in the style of the API the client spoke.

An OpenAI client expects `{"error": {"message", "type", "param", "code"}}`; a KServe v2 / Open
Inference Protocol client expects `{"error": "<message>"}`. The path tells which: `/v2/...` is
KServe, everything else is answered OpenAI-style.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

# OpenAI's error `type` per status class, as its API reports them.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def is_kserve_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def error_response(
    path: str,
    status: int,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    route: dict[str, Any] | None = None,
) -> web.Response:
    """`route`: the routing decision that led here (a 503 with nothing feasible), shown beside
    the error under "route" in either style."""
    body = error_document(path, status, message, code)
    if route is not None:
        body["route"] = route
    return web.json_response(body, status=status, headers=headers)


def error_document(path: str, status: int, message: str, code: str | None) -> dict[str, Any]:
    """The JSON body of an error, in the style of the API `path` belongs to."""
    if is_kserve_path(path):
        return {"error": message}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error in the client's style, with `headers`
    (such as Retry-After) and the `route` decision that explains it, when there is one."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        route: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.route = route
