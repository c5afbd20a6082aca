"""The audit log: one JSON line per request an app sent this node, saying where it went and why.

Rules:
- Written by the entry node (the node that decided the route, so the one that knows why), on
  logger `hubhop.requests`, only with `[log] requests = true`. A node serving or relaying a
  request for a peer writes none: the entry's line names it, and the request id joins the two
  nodes' other logs.
- One JSON object per line, nothing before it (`JsonLineFormatter`), on stderr with the rest
  of the log, so journald keeps it and `journalctl -u hubhop -o cat | jq 'select(.request_id)'`
  reads it. The logger has its own handler and does not pass its lines on: `[log] level` does
  not silence an audit the config asked for.
- Routing facts only: ids, the client's token name, model, lane and tiers, where it was served
  and by which path, tries, hedging, outcome, status, times, and the decision's reasons. Never
  a body, a prompt, a header value a client chose beyond its request id, nor a token.
- The reason is compact: the chosen row's expected network, queue and service time, the
  feasible runners-up, the nearest rejected rows with why, and the rows that refused this
  request. It is built while the decision is at hand (`decision_reason`), only when the line
  will be written: a served request otherwise never asks for its rejections.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import IO, Any

from hubhop.scoring.route import Route
from hubhop.scoring.scorer import Candidate

REQUEST_LOG = logging.getLogger("hubhop.requests")
# Rejected rows a line names, nearest first: the local node and its neighbours are what an
# auditor asks about ("why not here?"); the far ones were too far, which the bound says.
REJECTED_LOGGED = 5


def decision_reason(route: Route) -> dict[str, Any]:
    """Why the route went where it did (or nowhere), compactly, as a log line carries it."""
    chosen = route.chosen
    reason: dict[str, Any] = {"bound_ms": _ms(route.bound_ms), "queued": route.queued}
    if chosen is not None:
        reason["expected_ms"] = {
            "network": _ms(chosen.network_ms),
            "queue": _ms(chosen.queue_ms),
            "service": _ms(chosen.service_ms),
            "total": _ms(chosen.expected_ms),
        }
        reason["one_way_ms"] = _ms(chosen.one_way_ms)
        reason["estimated"] = chosen.estimated
        reason["alternates"] = [
            {"node": c.node, "backend": c.backend, "expected_ms": _ms(c.expected_ms)}
            for c in route.decision.alternates
        ]
    reason["rejected"] = [_rejected(c) for c in route.first.rejected[:REJECTED_LOGGED]]
    if route.refused:
        reason["refused"] = sorted(f"{node}/{backend}" for node, backend in route.refused)
    return reason


def _rejected(c: Candidate) -> dict[str, Any]:
    return {
        "node": c.node,
        "backend": c.backend,
        "one_way_ms": _ms(c.one_way_ms),
        "why": list(c.reasons),
    }


def _ms(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def utc_stamp(seconds: float) -> str:
    """Unix `seconds` as UTC ISO 8601 with milliseconds: the time of a log line or a decision."""
    whole = int(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((seconds - whole) * 1000):03d}Z"


class JsonLineFormatter(logging.Formatter):
    """A record whose message is a dict becomes that dict as one JSON line, its time first
    (`ts`, UTC, ISO 8601 with milliseconds); any other record, {"ts", "message"}."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": utc_stamp(record.created)}
        if isinstance(record.msg, dict):
            line.update(record.msg)
        else:
            line["message"] = record.getMessage()
        return json.dumps(line, separators=(",", ":"), default=str)


class _RequestLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The audit log's own handler (a type of its own, so installing again replaces it)."""


def install_request_log(stream: IO[str] | None = None) -> None:
    """Send `hubhop.requests` lines, as JSON, to `stream` (stderr) and nowhere else."""
    handler = _RequestLogHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    for old in [h for h in REQUEST_LOG.handlers if isinstance(h, _RequestLogHandler)]:
        REQUEST_LOG.removeHandler(old)
    REQUEST_LOG.addHandler(handler)
    REQUEST_LOG.setLevel(logging.INFO)
    REQUEST_LOG.propagate = False
