"""GET /metrics and the audit log of one node, in process: what a scraper and an auditor see.

Each node here fronts its own demo backend; all addresses are in 127.0.60.0/24, above .100
(tests/test_metrics.py, the multi-process half, keeps to the low addresses).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubhop.app import Node
from hubhop.core.config import ConfigError, parse_config
from hubhop.io import demo_backend
from hubhop.io.node_collector import DROP_REASONS, drop_counts
from hubhop.io.node_metrics import NodeMetrics
from hubhop.io.request_log import REQUEST_LOG, JsonLineFormatter, install_request_log
from tests.conftest import FAST_BACKEND, start_node
from tests.procs import node_config

KEY = "AAECAwQFBgcICQoLDA0ODw=="
TOKEN = "scraper-token-0123456789abcdef"
RADIOLOGY = "radiology-token-0123456789abcdef"
CT = {"name": "a", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
async def backend() -> AsyncIterator[str]:
    settings = replace(FAST_BACKEND, host="127.0.60.101")
    runner, port = await demo_backend.start(settings)
    try:
        yield f"http://127.0.60.101:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def audit_lines() -> Iterator[io.StringIO]:
    """The audit log as `hubhop run` writes it, into a buffer; put back as it was after."""
    stream = io.StringIO()
    before = (list(REQUEST_LOG.handlers), REQUEST_LOG.level, REQUEST_LOG.propagate)
    install_request_log(stream)
    yield stream
    REQUEST_LOG.handlers[:] = before[0]
    REQUEST_LOG.setLevel(before[1])
    REQUEST_LOG.propagate = before[2]


async def started(text: str) -> Node:
    return await start_node(parse_config(text, "metrics.toml"))


async def scrape(
    http: aiohttp.ClientSession, node: Node, **headers: str
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the node's /metrics, parsed by prometheus-client's own parser: sample
    name -> sorted labels -> value."""
    async with http.get(f"{node.url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def requests_by(samples: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """hubhop_requests_total by (lane, tier, outcome)."""
    by = {}
    for labels, count in samples["hubhop_requests_total"].items():
        d = dict(labels)
        by[d["lane"], d["tier"], d["outcome"]] = count
    return by


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0))


async def chat(
    http: aiohttp.ClientSession, node: Node, model: str = "demo-llm", **headers: str
) -> tuple[int, dict[str, str]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    async with http.post(f"{node.url}/v1/chat/completions", json=body, headers=headers) as r:
        await r.read()
        return r.status, {name.lower(): v for name, v in r.headers.items()}


async def test_requests_are_counted_by_lane_tier_and_outcome_with_sub_millisecond_histograms(
    backend: str, http: aiohttp.ClientSession
) -> None:
    node = await started(node_config(backend, address="127.0.60.102"))
    try:
        for _ in range(2):
            assert (await chat(http, node))[0] == 200
        emergency = {"x-hubhop-lane": "emergency", "x-hubhop-tier": "city"}
        assert (await chat(http, node, **emergency))[0] == 200
        infer = f"{node.url}/v2/models/ct-triage/infer"
        async with http.post(infer, json={"inputs": [CT]}, headers={"x-hubhop-lane": "batch"}) as r:
            assert r.status == 200
        # A lane nobody has: refused, and counted without the client's word for it.
        assert (await chat(http, node, **{"x-hubhop-lane": "urgent!!"}))[0] == 400
        assert (await chat(http, node, model="no-such-model"))[0] == 404
        samples = await scrape(http, node)
    finally:
        await node.drain_and_stop()

    assert requests_by(samples) == {
        ("standard", "any", "served"): 2,
        ("emergency", "city", "served"): 1,
        ("batch", "any", "served"): 1,
        ("unknown", "unknown", "rejected"): 1,  # the lane the client gave is no label
        ("standard", "any", "no_route"): 1,
    }
    # Added latency: one observation per answered request, in buckets finer than a millisecond.
    buckets = samples["hubhop_added_latency_seconds_bucket"]
    edges = sorted(float(dict(k)["le"]) for k in buckets)
    assert edges[0] <= 50e-6 and sum(1 for e in edges if e < 1e-3) >= 4
    assert value(samples, "hubhop_added_latency_seconds_count") == 4
    assert value(samples, "hubhop_added_latency_seconds_bucket", le="+Inf") == 4
    # The backend as the config and admission say: 4 slots, one of them the emergency reserve.
    assert value(samples, "hubhop_backend_slots", backend="demo") == 4
    assert value(samples, "hubhop_backend_emergency_reserve_slots", backend="demo") == 1
    assert value(samples, "hubhop_backend_busy_slots", backend="demo") == 0
    for lane in ("emergency", "standard", "batch"):
        assert ("hubhop_backend_queued_requests") in samples
        assert value(samples, "hubhop_backend_queued_requests", backend="demo", lane=lane) == 0
    admitted = value(
        samples, "hubhop_admission_decisions_total", decision="admitted", lane="standard",
        reason="free-slot",
    )  # fmt: skip
    assert admitted == 2
    assert "hubhop_members" not in samples  # a node that does not gossip has no members


async def test_metrics_take_a_token_like_every_other_path_when_tokens_are_configured(
    backend: str, http: aiohttp.ClientSession
) -> None:
    text = node_config(backend, address="127.0.60.103") + (
        "[routing]\nanonymous = false\n"
        f'[[tokens]]\nname = "prometheus"\nsha256 = "{digest(TOKEN)}"\n'
    )
    node = await started(text)
    try:
        for refused in ({}, {"Authorization": "Bearer not-the-scraper-token"}):
            async with http.get(f"{node.url}/metrics", headers=refused) as response:
                assert response.status == 401
        samples = await scrape(http, node, Authorization=f"Bearer {TOKEN}")
        assert value(samples, "hubhop_backend_slots", backend="demo") == 4
    finally:
        await node.drain_and_stop()


def gossip_config(backend: str, address: str, extra: str = "") -> str:
    """One node that gossips alone: it routes every call with a decision over its own rows."""
    return node_config(backend, address=address) + (
        f'[gossip]\nbind = "{address}:7946"\nkeys = ["{KEY}"]\n[tls]\nplaintext = true\n'
        "[log]\nrequests = true\n"
        f'[[tokens]]\nname = "radiology"\nsha256 = "{digest(RADIOLOGY)}"\n{extra}'
    )


WHERE_IT_WENT = (
    "protocol", "model", "lane", "tier_asked", "tier_served", "spilled", "served_by", "backend",
    "path", "outcome", "status", "tries",
)  # fmt: skip


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_routed_request_is_one_json_line_saying_where_it_went_and_why(
    backend: str, http: aiohttp.ClientSession, audit_lines: io.StringIO
) -> None:
    node = await started(gossip_config(backend, "127.0.60.104"))
    bearer = {"Authorization": f"Bearer {RADIOLOGY}"}
    try:
        asked = {"x-hubhop-lane": "emergency", "x-hubhop-tier": "city"}
        status, headers = await chat(http, node, **bearer, **asked)
        assert status == 200
        # Nothing here has the chip asked for: the line says which row was turned down, why.
        no_route, _ = await chat(http, node, **{"x-hubhop-chip": "nvidia-h100"})
        assert no_route == 503
        samples = await scrape(http, node)
    finally:
        await node.drain_and_stop()

    served, refused = lines_of(audit_lines)
    assert served["request_id"] == headers["x-request-id"]
    assert served["ts"].endswith("Z") and served["node"] == "test-edge"
    assert served["client"] == "radiology"
    assert {k: served[k] for k in WHERE_IT_WENT} == {
        "protocol": "openai",
        "model": "demo-llm",
        "lane": "emergency",
        "tier_asked": "city",
        "tier_served": "city",
        "spilled": False,
        "served_by": "test-edge",
        "backend": "demo",
        "path": ["test-edge"],
        "outcome": "served",
        "status": 200,
        "tries": 1,
    }
    assert set(served["ms"]) >= {"route", "backend", "decision", "total"}
    expected = served["reason"]["expected_ms"]
    assert set(expected) == {"network", "queue", "service", "total"}
    assert "messages" not in json.dumps(served) and "hi" not in served.values()

    assert refused["client"] == "anonymous"
    assert (refused["outcome"], refused["status"]) == ("no_route", 503)
    assert refused["served_by"] is None and refused["error"]["code"] == "no_route"
    (row,) = refused["reason"]["rejected"]
    assert (row["node"], row["backend"]) == ("test-edge", "demo")
    assert any("chip" in why for why in row["why"])

    # Both decisions were timed, each well under the 50 ms top bucket.
    assert value(samples, "hubhop_route_decision_seconds_count") == 2
    assert value(samples, "hubhop_route_decision_seconds_bucket", le="0.05") == 2
    assert value(samples, "hubhop_members", state="alive") == 1
    assert requests_by(samples) == {
        ("emergency", "city", "served"): 1,
        ("standard", "any", "no_route"): 1,
    }


async def test_without_the_switch_no_request_is_logged(
    backend: str, http: aiohttp.ClientSession, audit_lines: io.StringIO
) -> None:
    text = gossip_config(backend, "127.0.60.105").replace("requests = true", "requests = false")
    node = await started(text)
    try:
        assert (await chat(http, node))[0] == 200
    finally:
        await node.drain_and_stop()
    assert audit_lines.getvalue() == ""


def test_gossip_drops_are_reported_under_a_closed_set_of_reasons() -> None:
    counters = {
        "dropped_bad_key": 3,
        "dropped_replay": 2,
        "dropped_malformed": 1,
        "msg_malformed": 1,
        "stream_malformed": 1,
        "transport_stream_in_failed_TimeoutError": 2,
        "transport_stream_out_failed_OSError": 1,
        "transport_udp_send_dropped": 4,
        "datagrams_in": 100,
    }
    counts = drop_counts(counters)
    assert tuple(counts) == DROP_REASONS
    assert counts["bad_key"] == 3 and counts["replay"] == 2 and counts["malformed"] == 3
    assert counts["stream_failed"] == 3 and counts["send_buffer_full"] == 4
    assert counts["version"] == 0


def test_label_values_a_client_or_peer_chose_never_become_series() -> None:
    metrics = NodeMetrics()
    for lane in ("emergency", "x" * 40, "lane-2", "lane-3"):
        metrics.count_request(lane, "province", "served")
        metrics.count_forwarded(lane, "served")
    body, _ = metrics.exposition(None)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    lanes = {s.labels["lane"] for s in families["hubhop_requests"].samples}
    assert lanes == {"emergency", "unknown"}
    forwarded = {s.labels["lane"]: s.value for s in families["hubhop_forwarded_requests"].samples}
    assert forwarded == {"emergency": 1.0, "unknown": 3.0}


def test_an_audit_line_is_one_json_object_with_its_time_first() -> None:
    fields = {"lane": "batch"}
    record = logging.LogRecord("hubhop.requests", logging.INFO, "", 0, fields, None, None)
    record.created, record.msecs = 1_700_000_000.25, 250.0
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {"ts": "2023-11-14T22:13:20.250Z", "lane": "batch"}


def test_the_request_log_switch_must_be_a_boolean() -> None:
    text = node_config("http://127.0.60.101:9000") + '[log]\nrequests = "yes"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "metrics.toml")
    assert "metrics.toml: log.requests:" in str(caught.value)


def test_keeping_recent_decisions_can_be_turned_off_and_is_bounded() -> None:
    base = node_config("http://127.0.60.101:9000")
    assert parse_config(base, "a.toml").log.recent_decisions == 1000
    assert parse_config(base + "[log]\nrecent_decisions = 0\n", "a.toml").log.recent_decisions == 0
    with pytest.raises(ConfigError) as caught:
        parse_config(base + "[log]\nrecent_decisions = -1\n", "a.toml")
    assert "log.recent_decisions" in str(caught.value)
