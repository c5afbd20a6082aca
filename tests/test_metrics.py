"""Two real daemons gossiping, scraped as Prometheus would and audited from their logs.

edge-a (HTTP and gossip on 127.0.60.1) fronts a demo backend serving demo-llm; city-b
(127.0.60.2) fronts one serving ct-triage, so edge-a carries every ct-triage call to city-b.
Both backends are real demo backend processes (127.0.60.11 and .12). edge-a writes the audit
log (`[log] requests = true`).
"""

from __future__ import annotations

import json
import random
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubhop.core.keyring import Keyring
from hubhop.core.secure_channel import SecureChannel
from hubhop.lab.processes import (
    DEMO_BACKEND_READY,
    HUBHOP_READY,
    launch_demo_backend,
    launch_hubhop_node,
    wait_ready_line,
)
from tests.procs import Proc, wait_until
from tests.routing_helpers import chat, route

KEY = "AAECAwQFBgcICQoLDA0ODw=="
GOSSIP_PORT = 7946
NODES = {"edge-a": (1, "edge", "demo-llm"), "city-b": (2, "city", "ct-triage")}
# Two daemons join within a second or two; a slow, shared 2-core box gets a wide margin.
CONVERGE_S = 30.0

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def config_text(name: str, backend_url: str) -> str:
    i, role, model = NODES[name]
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.60.{i}:0"\n'
        "[lifecycle]\ndrain_grace_s = 2.0\n"
        # Links reach peers in a second, not the 30 s a production node waits: edge-a routes
        # to city-b as soon as it has measured the link.
        "[latency]\nlinks_republish_s = 1.0\n"
        f'[gossip]\nbind = "127.0.60.{i}:{GOSSIP_PORT}"\nseeds = ["127.0.60.1:{GOSSIP_PORT}"]\n'
        f'keys = ["{KEY}"]\n'
        "[tls]\nplaintext = true\n"
        f"[log]\nrequests = {'true' if name == 'edge-a' else 'false'}\n"
        f'[[backends]]\nname = "{role}-gpu"\nurl = "{backend_url}"\n'
        f'protocol = ["openai", "kserve_v2"]\nmodels = ["{model}"]\nslots = 3\n'
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    """Both backends started at once, then edge-a, then city-b: a node joins through its seed
    once, when it starts, so the seed must be up first."""
    tmp = tmp_path_factory.mktemp("metrics")
    procs: list[Proc] = []
    try:
        backends = {}
        for name, (i, _, model) in NODES.items():
            (tmp / name).mkdir()
            args = ("--host", f"127.0.60.{i + 10}", "--models", model, "--service-ms", "2")
            backends[name] = launch_demo_backend(tmp / name, *args)
            procs.append(backends[name])
        nodes = {}
        for name, backend in backends.items():  # edge-a, the seed, first
            wait_ready_line(backend, DEMO_BACKEND_READY)
            path = tmp / name / f"{name}.toml"
            path.write_text(config_text(name, backend.url))
            nodes[name] = launch_hubhop_node(path)
            procs.append(nodes[name])
            wait_ready_line(nodes[name], HUBHOP_READY)
        yield nodes
    finally:
        for proc in reversed(procs):
            proc.stop()


def scrape(node: Proc) -> Samples:
    """The node's /metrics as prometheus-client's parser reads it: name -> labels -> value."""
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return float(samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0))


def audit_lines(node: Proc) -> list[dict[str, Any]]:
    """The JSON lines of the node's log (stderr), as `journalctl -o cat | jq` would read them."""
    text = node.log_path.read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def send_with_wrong_key(to: tuple[str, int]) -> None:
    """One gossip datagram sealed under a key the cluster does not hold."""
    stranger = SecureChannel(Keyring([bytes(16)]), "stranger", 1, random.Random(5))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.60.9", 0))
        sock.sendto(stranger.seal(b"hello"), to)


@pytest.mark.slow
def test_a_scrape_shows_requests_gossip_members_and_drops_and_the_log_says_why(
    cluster: dict[str, Proc],
) -> None:
    edge, city = cluster["edge-a"], cluster["city-b"]
    last: dict[str, Any] = {}

    def routed_to_city() -> bool:
        last["route"] = route(edge, {"model": "ct-triage"})
        return (last["route"].get("chosen") or {}).get("node") == "city-b"

    try:
        wait_until(routed_to_city, CONVERGE_S, "edge-a routing ct-triage to city-b")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last decision: {last['route']}") from None
    for _ in range(2):
        assert chat(edge, "demo-llm", {})[0] == 200
    status, headers, _ = chat(edge, "ct-triage", {"x-hubhop-lane": "emergency"})
    assert status == 200 and headers["x-hubhop-node"] == "city-b"
    assert chat(edge, "ct-triage", {"x-hubhop-lane": "batch", "x-hubhop-budget": "-1"})[0] == 400

    def settled() -> bool:
        send_with_wrong_key(("127.0.60.1", GOSSIP_PORT))  # again each time: UDP may be lost
        s = last["scrape"] = scrape(edge)
        return (
            value(s, "hubhop_gossip_dropped_total", reason="bad_key") >= 1
            and value(s, "hubhop_probe_rtt_seconds_count", peer_role="city") >= 1
        )

    try:
        wait_until(settled, CONVERGE_S, "the stranger's datagram and a probe RTT counted")
    except AssertionError as exc:
        s = last["scrape"]
        seen = {
            k: s.get(k) for k in ("hubhop_gossip_dropped_total", "hubhop_probe_rtt_seconds_count")
        }
        raise AssertionError(f"{exc}; last scrape: {seen}") from None
    samples = scrape(edge)

    requests = "hubhop_requests_total"
    assert value(samples, requests, lane="standard", tier="any", outcome="served") == 2
    assert value(samples, requests, lane="emergency", tier="any", outcome="served") == 1
    assert value(samples, requests, lane="unknown", tier="unknown", outcome="rejected") == 1
    # Three calls decided and answered: as many decisions and added-latency observations.
    assert value(samples, "hubhop_route_decision_seconds_count") == 3
    assert value(samples, "hubhop_added_latency_seconds_count") == 3
    assert value(samples, "hubhop_added_latency_seconds_bucket", le="+Inf") == 3
    assert value(samples, "hubhop_backend_slots", backend="edge-gpu") == 3
    assert value(samples, "hubhop_members", state="alive") == 2
    assert value(samples, "hubhop_members", state="dead") == 0
    for direction in ("in", "out"):
        assert value(samples, "hubhop_gossip_datagrams_total", direction=direction) > 0
    assert value(samples, "hubhop_gossip_dropped_total", reason="replay") == 0
    # Probe RTTs by the peer's role, never by its name or address.
    assert {dict(k)["peer_role"] for k in samples["hubhop_probe_rtt_seconds_count"]} <= {
        "edge", "city", "hub", "unknown",
    }  # fmt: skip
    served_there = scrape(city)
    forwarded = "hubhop_forwarded_requests_total"
    assert value(served_there, forwarded, lane="emergency", outcome="served") == 1
    assert value(served_there, requests, lane="standard", tier="any", outcome="served") == 0

    (line,) = [x for x in audit_lines(edge) if x.get("request_id") == headers["x-request-id"]]
    assert (line["lane"], line["model"], line["outcome"], line["status"]) == (
        "emergency", "ct-triage", "served", 200,
    )  # fmt: skip
    assert line["path"] == ["edge-a", "city-b"] and line["served_by"] == "city-b"
    assert line["backend"] == "city-gpu" and line["client"] == "anonymous"
    assert set(line["ms"]) >= {"route", "network", "backend", "decision", "total"}
    assert set(line["reason"]["expected_ms"]) == {"network", "queue", "service", "total"}
    why_not_here = {(r["node"], r["backend"]): r["why"] for r in line["reason"]["rejected"]}
    assert why_not_here[("edge-a", "edge-gpu")] == ["model not served"]
    assert not audit_lines(city)  # the serving node writes none: the entry's line names it
