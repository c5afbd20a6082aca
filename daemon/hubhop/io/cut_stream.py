"""How an answer already streaming to its client ends when its upstream fails mid-way (a backend
or a peer daemon that died, a connection reset).

Rules:
- The status line and head are gone, so the failure must be said in the body or by the framing.
- A server-sent event stream (OpenAI `stream: true`) ends with one error event in the client's
  API style (`data: {"error": {...}}`, as OpenAI's own API sends mid-stream errors and its
  clients raise on), naming the upstream and what happened, and then ends properly: no
  `data: [DONE]` follows, so no client mistakes it for a whole answer. A relay between entry and
  server passes such an event on like any other bytes: only the hop nearest the failure speaks.
- Any other body (a JSON answer or a tensor of known length, a chunked body) cannot carry an
  error its client would read, so the connection is cut: its length or last chunk never comes,
  and the client's HTTP library reports a short answer rather than a silently short one.
- A client that has left by then hears nothing: there is nobody left to tell.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from hubhop.io.http_errors import error_document

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
# The status an error event reports: the upstream broke its answer, as a 502 before the head.
CUT_STATUS = 502
CUT_CODE = "upstream_cut"


def error_event(path: str, message: str) -> bytes:
    """One server-sent event carrying the error body a client of `path` expects."""
    body = json.dumps(error_document(path, CUT_STATUS, message, CUT_CODE))  # one line
    return b"data: " + body.encode() + b"\n\n"


async def end_cut_answer(
    request: web.Request, response: web.StreamResponse, message: str
) -> web.StreamResponse:
    """End `response`, whose head went out and whose upstream failed: with an error event for
    an event stream, else by cutting the connection (see the rules)."""
    if response.headers.get("Content-Type", "").startswith(EVENT_STREAM):
        try:
            await response.write(error_event(request.path, message))
            await response.write_eof()
            return response
        except ConnectionResetError as exc:  # the client left meanwhile
            log.debug("client %s left before hearing: %s (%s)", request.remote, message, exc)
    if request.transport is not None:
        request.transport.close()
    return response
