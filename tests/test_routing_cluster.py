"""Three real daemons routing across each other: what an app calling its local daemon sees.

edge-a (HTTP 127.0.11.1, gossip 127.0.12.1) is the entry; it fronts a CPU backend serving
chat-7b. city-b fronts an Ascend NPU backend and hub-c an H100 backend, both serving ct-triage;
hub-c also serves seq-align, at a price. Every backend is a real demo backend process. All three
are on loopback, so every node is within the city tier of every other: the chip, the model and
the budget decide, and the answers must say where they were served.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.procs import Proc, spawn_demo_backend, spawn_node, wait_until
from tests.routing_helpers import chat, route

KEY = "AAECAwQFBgcICQoLDA0ODw=="
NODES = {
    "edge-a": (1, "edge", "cpu", ("chat-7b",), 0.0),
    "city-b": (2, "city", "ascend-910b", ("ct-triage",), 1.0),
    "hub-c": (3, "hub", "nvidia-h100", ("ct-triage", "seq-align"), 5.0),
}
# Three daemons join in a second or two; records with backends follow in the next gossip rounds.
CONVERGE_S = 60.0


def config_text(name: str, backend_url: str) -> str:
    i, role, chip, models, price = NODES[name]
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        f'[node]\nname = "{name}"\nrole = "{role}"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.11.{i}:0"\n'
        f"[lifecycle]\ndrain_grace_s = 2.0\n"
        # Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
        "[latency]\nlinks_republish_s = 2.0\n"
        f'[gossip]\nbind = "127.0.12.{i}:7946"\nseeds = ["127.0.12.1:7946"]\nkeys = ["{KEY}"]\n'
        "[tls]\nplaintext = true\n"
        f'[[backends]]\nname = "{chip}-0"\nurl = "{backend_url}"\nprotocol = "openai"\n'
        f'models = [{model_list}]\nchip = "{chip}"\nslots = 4\nprice = {price}\n'
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("routing")
    procs: list[Proc] = []
    nodes: dict[str, Proc] = {}
    try:
        for name, (i, _, chip, models, _) in NODES.items():
            workdir = tmp / name
            workdir.mkdir()
            backend = spawn_demo_backend(
                workdir, "--host", f"127.0.13.{i}", "--chip", chip, "--models", ",".join(models),
                "--service-ms", "5", "--name", f"{chip}-0",
            )  # fmt: skip
            procs.append(backend)
            path = workdir / f"{name}.toml"
            path.write_text(config_text(name, backend.url))
            nodes[name] = spawn_node(path)
            procs.append(nodes[name])

        def direct(ask: dict[str, str]) -> bool:
            """Chosen, over a measured direct link (before that, a measured path through the
            third node can beat an estimated direct one)."""
            chosen = route(nodes["edge-a"], ask).get("chosen") or {}
            return len(chosen.get("path", ())) == 2 and chosen.get("estimated") is False

        def every_backend_routable() -> bool:
            return direct({"model": "seq-align"}) and all(
                direct({"model": "ct-triage", "chip": chip})
                for chip in ("ascend-910b", "nvidia-h100")
            )

        wait_until(every_backend_routable, CONVERGE_S, "edge-a measuring its way to every backend")
        yield nodes
    finally:
        for proc in reversed(procs):
            proc.stop()


def client(node: Proc, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{node.url}/v1", api_key="unused", default_headers=headers, max_retries=0
    )


@pytest.mark.slow
def test_the_chip_asked_for_decides_which_node_serves_and_the_answer_says_so(
    cluster: dict[str, Proc],
) -> None:
    for chip, node in (("ascend-910b", "city-b"), ("nvidia-h100", "hub-c")):
        status, headers, body = chat(
            cluster["edge-a"], "ct-triage", {"x-hubhop-chip": chip, "x-hubhop-tier": "city"}
        )
        assert status == 200, body
        assert headers["x-hubhop-node"] == node
        assert headers["x-hubhop-path"] == f"edge-a>{node}"
        assert headers["x-hubhop-tier"] == "city"
        timing = headers["server-timing"]
        assert "route;dur=" in timing and "network;dur=" in timing and "backend;dur=" in timing


@pytest.mark.slow
def test_a_model_served_here_stays_here(cluster: dict[str, Proc]) -> None:
    status, headers, body = chat(cluster["edge-a"], "chat-7b", {})
    assert status == 200, body
    assert headers["x-hubhop-node"] == "edge-a"
    assert headers["x-hubhop-path"] == "edge-a"


@pytest.mark.slow
def test_the_official_openai_client_streams_through_two_daemons(cluster: dict[str, Proc]) -> None:
    api = client(cluster["edge-a"], **{"x-hubhop-chip": "nvidia-h100", "x-hubhop-lane": "batch"})
    plain = api.chat.completions.with_raw_response.create(
        model="ct-triage", messages=[{"role": "user", "content": "a CT series"}], max_tokens=4
    )
    assert plain.headers["x-hubhop-node"] == "hub-c"
    assert plain.parse().choices[0].message.content
    stream = api.chat.completions.create(
        model="ct-triage",
        messages=[{"role": "user", "content": "a CT series"}],
        max_tokens=6,
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) >= 3  # chunk by chunk, not one blob


@pytest.mark.slow
def test_a_budget_below_every_price_is_a_503_that_names_each_candidates_reason(
    cluster: dict[str, Proc],
) -> None:
    status, headers, body = chat(cluster["edge-a"], "ct-triage", {"x-hubhop-budget": "0.5"})
    assert status == 503
    reasons = {(c["node"], tuple(c["reasons"])) for c in body["route"]["rejected"]}
    assert ("city-b", ("over budget",)) in reasons
    assert ("hub-c", ("over budget",)) in reasons
    assert "nothing feasible" in body["error"]["message"]
    # Within budget, the cheaper one is found.
    status, headers, _ = chat(cluster["edge-a"], "ct-triage", {"x-hubhop-budget": "2"})
    assert status == 200 and headers["x-hubhop-node"] == "city-b"


@pytest.mark.slow
def test_an_unknown_chip_and_a_bad_hint_are_explained(cluster: dict[str, Proc]) -> None:
    status, _, body = chat(cluster["edge-a"], "ct-triage", {"x-hubhop-chip": "tpu-v9"})
    assert status == 503
    assert all("chip mismatch" in c["reasons"] for c in body["route"]["rejected"])
    status, _, body = chat(cluster["edge-a"], "ct-triage", {"x-hubhop-tier": "galaxy"})
    assert status == 400
    assert body["error"]["message"].startswith("x-hubhop-tier: 'galaxy'")
    status, _, body = chat(cluster["edge-a"], "ct-triage", {"x-hubhop-budget": "-1"})
    assert status == 400 and body["error"]["message"].startswith("x-hubhop-budget")


@pytest.mark.slow
def test_the_route_endpoint_gives_the_decision_alone(cluster: dict[str, Proc]) -> None:
    decision = route(cluster["edge-a"], {"model": "seq-align", "lane": "batch", "tier": "city"})
    assert decision["chosen"]["node"] == "hub-c"
    assert decision["chosen"]["url"] == cluster["hub-c"].url
    assert decision["tier"] == "city" and decision["spilled"] is False
    split = decision["chosen"]["expected_ms"]
    assert set(split) == {"network", "queue", "service", "total"}
    assert route(cluster["edge-a"], {"model": "seq-align", "tier": "nowhere"})["error"]


@pytest.mark.slow
def test_a_forwarding_header_from_an_app_is_refused(cluster: dict[str, Proc]) -> None:
    # The test process is not a member: it may not tell a daemon to skip the decision.
    status, _, body = chat(cluster["city-b"], "ct-triage", {"x-hubhop-target": "hub-c/x"})
    assert status == 403
    assert "x-hubhop-target" in body["error"]["message"]
