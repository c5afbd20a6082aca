"""Talking to a routing daemon as an app does: the route endpoint and plain chat calls.

Shared by the multi-process routing tests (tests/test_routing_cluster.py, test_routing_wan.py).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.procs import Proc


def route(node: Proc, ask: dict[str, Any]) -> dict[str, Any]:
    """The node's decision for `ask` (POST /hubhop/v1/route), or its error body."""
    request = urllib.request.Request(
        f"{node.url}/hubhop/v1/route",
        data=json.dumps(ask).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))


def chat_request(
    node: Proc, model: str, headers: dict[str, str], max_tokens: int = 4
) -> urllib.request.Request:
    """An OpenAI chat completion request to `node`, not yet sent."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": max_tokens,
    }
    return urllib.request.Request(
        f"{node.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )


def chat(
    node: Proc,
    model: str,
    headers: dict[str, str],
    *,
    max_tokens: int = 4,
    timeout_s: float = 10.0,
) -> tuple[int, dict[str, str], Any]:
    """An OpenAI chat completion through `node`: status, answer headers (names lowercased) and
    the JSON body, whatever the status."""
    request = chat_request(node, model, headers, max_tokens)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, _lower(response.headers.items()), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), json.loads(exc.read())


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
