"""The capacity table an operator reads (`GET /hubhop/v1/table`): built from made-up inputs.

The entry node is a Wuhan hospital edge fronting one CPU backend. Gossip told it of a Wuhan data
center 0.2 ms away (measured), Shiyan 3.4 ms away (measured), Enshi (coordinates only) and a
node it cannot place yet. What an operator must be able to trust: the figures are the ones
routing decides on, each filter keeps exactly what it says, and a bad filter is refused by name.
"""

from __future__ import annotations

import aiohttp
import pytest

from hubhop.core.config import parse_config
from hubhop.scoring.candidates import BackendLoad
from hubhop.scoring.route import scoring_model
from hubhop.scoring.scorer import Scorer
from hubhop.scoring.table_view import (
    QUERY_PARAMETERS,
    QueryError,
    TableQuery,
    parse_table_query,
    table_json,
)
from tests.conftest import start_node
from tests.test_scoring_bridge import load as bridge_load

ENTRY = "wuhan-edge-1"
CONFIG = parse_config(
    f'[node]\nname = "{ENTRY}"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
    '[http]\nlisten = "127.0.21.20:0"\n'
    '[[backends]]\nname = "cpu-0"\nurl = "http://127.0.23.20:9"\n'
    'protocol = ["openai", "kserve_v2"]\nmodels = ["chat-7b"]\nslots = 4\n',
    "edge.toml",
)
# busy slots, waiting per lane (emergency, standard, batch), measured service ms
LIVE_LOAD = {"cpu-0": (1.0, (0.0, 2.0, 0.0), 12.5)}
MEMBERS = [
    {"name": ENTRY, "state": "alive", "role": "edge", "region": "hubei", "city": "wuhan"},
    {"name": "wuhan-dc1", "state": "alive", "role": "city", "region": "hubei", "city": "wuhan"},
    {"name": "shiyan-2", "state": "suspect", "role": "city", "region": "hubei", "city": "shiyan"},
    {"name": "enshi-1", "state": "alive", "role": "edge", "region": "hubei", "city": "enshi"},
]


def load(
    models: tuple[str, ...], chip: str = "ascend-910b", protocol: str = "openai", **changes: object
) -> BackendLoad:
    """The scoring bridge's test load, its models served over `protocol`, a little busy."""
    changes = {"busy": 2.0, "queue": (0.0, 1.0, 3.0), **changes}
    return bridge_load(tuple(scoring_model(protocol, m) for m in models), chip, **changes)


@pytest.fixture
def scorer() -> Scorer:
    s = Scorer(ENTRY, seed=1)
    s.paths.set_link(ENTRY, "wuhan-dc1", 0.4)
    s.paths.set_link(ENTRY, "shiyan-2", 6.8)
    s.paths.set_coordinate(ENTRY, (0.0,) * 8, 0.1)
    s.paths.set_coordinate("enshi-1", (7.0,) + (0.0,) * 7, 0.1)
    # Its own record as gossip fed it back: the table shows the live figures instead.
    s.table.upsert(ENTRY, "cpu-0", load(("chat-7b",), chip="cpu", busy=0.0))
    s.table.upsert("wuhan-dc1", "npu-0", load(("ct-triage", "chat-7b")))
    gpu = load(("ct-triage",), chip="nvidia-h100", protocol="kserve_v2", price=5.0)
    s.table.upsert("wuhan-dc1", "gpu-0", gpu)
    s.table.upsert("shiyan-2", "npu-0", load(("ct-triage",)))
    s.table.upsert("enshi-1", "cpu-0", load(("seq-align",), chip="cpu", price=0.2))
    s.table.upsert("nowhere-9", "cpu-0", load(("seq-align",), chip="cpu"))
    return s


def view(scorer: Scorer | None, **filters: str) -> dict[str, object]:
    query = parse_table_query(filters.items())
    members = MEMBERS if scorer is not None else None
    return table_json(CONFIG, LIVE_LOAD, query, members=members, scorer=scorer)


def rows_of(scorer: Scorer | None, **filters: str) -> dict[tuple[str, str], dict[str, object]]:
    rows = view(scorer, **filters)["rows"]
    assert isinstance(rows, list)
    return {(r["node"], r["backend"]): r for r in rows}


def test_every_backend_is_one_row_in_node_order(scorer: Scorer) -> None:
    body = view(scorer)
    rows = body["rows"]
    assert isinstance(rows, list)
    assert [(r["node"], r["backend"]) for r in rows] == [
        ("enshi-1", "cpu-0"),
        ("nowhere-9", "cpu-0"),
        ("shiyan-2", "npu-0"),
        ("wuhan-dc1", "gpu-0"),
        ("wuhan-dc1", "npu-0"),
        (ENTRY, "cpu-0"),
    ]
    assert body["node"] == ENTRY and body["gossip"] is True
    assert body["rows_total"] == 6 and body["filters"] == {}


def test_own_backends_show_the_live_load_and_sit_at_zero_distance(scorer: Scorer) -> None:
    own = rows_of(scorer)[(ENTRY, "cpu-0")]
    assert own["protocols"] == ["kserve_v2", "openai"] and own["models"] == ["chat-7b"]
    assert (own["role"], own["region"], own["city"], own["state"]) == (
        "edge", "hubei", "wuhan", "alive",
    )  # fmt: skip
    assert (own["slots"], own["busy"], own["free"], own["load"]) == (4, 1.0, 3.0, 0.25)
    assert own["queue"] == {"emergency": 0.0, "standard": 2.0, "batch": 0.0}
    assert own["service_ms"] == 12.5
    assert own["latency"] == {"one_way_ms": 0.0, "tier": "city", "source": "local",
                              "path": [ENTRY]}  # fmt: skip


def test_gossiped_rows_carry_the_figures_routing_reads(scorer: Scorer) -> None:
    rows = rows_of(scorer)
    npu = rows[("wuhan-dc1", "npu-0")]
    assert npu["protocols"] == ["openai"] and npu["models"] == ["chat-7b", "ct-triage"]
    assert (npu["chip"], npu["price"], npu["green_share"]) == ("ascend-910b", 1.0, 0.3)
    assert (npu["slots"], npu["emergency_reserve"], npu["busy"], npu["free"]) == (8, 1, 2.0, 6.0)
    assert npu["queue"] == {"emergency": 0.0, "standard": 1.0, "batch": 3.0}
    assert (npu["role"], npu["city"], npu["state"], npu["alive"]) == (
        "city",
        "wuhan",
        "alive",
        True,
    )
    assert npu["latency"] == {"one_way_ms": 0.2, "tier": "city", "source": "measured",
                              "path": [ENTRY, "wuhan-dc1"]}  # fmt: skip
    gpu = rows[("wuhan-dc1", "gpu-0")]
    assert gpu["protocols"] == ["kserve_v2"] and gpu["models"] == ["ct-triage"]
    assert rows[("shiyan-2", "npu-0")]["latency"]["tier"] == "province"  # type: ignore[index]
    assert rows[("shiyan-2", "npu-0")]["state"] == "suspect"
    enshi = rows[("enshi-1", "cpu-0")]["latency"]
    assert isinstance(enshi, dict)
    assert enshi["source"] == "estimated" and enshi["one_way_ms"] == pytest.approx(3.6)
    # Neither linked nor placed: no latency, and no membership entry: liveness from the table.
    nowhere = rows[("nowhere-9", "cpu-0")]
    assert nowhere["latency"] is None and nowhere["state"] == "alive" and nowhere["role"] == ""


def test_a_node_membership_dropped_reads_dead_from_the_table(scorer: Scorer) -> None:
    scorer.table.materialize()
    scorer.table.set_alive("nowhere-9", False)
    row = rows_of(scorer)[("nowhere-9", "cpu-0")]
    assert row["state"] == "dead" and row["alive"] is False


FILTERS = {
    "model": ("ct-triage", {("wuhan-dc1", "npu-0"), ("wuhan-dc1", "gpu-0"), ("shiyan-2", "npu-0")}),
    "chip": ("cpu", {("enshi-1", "cpu-0"), ("nowhere-9", "cpu-0"), (ENTRY, "cpu-0")}),
    "node": ("wuhan-dc1", {("wuhan-dc1", "npu-0"), ("wuhan-dc1", "gpu-0")}),
    "role": ("edge", {("enshi-1", "cpu-0"), (ENTRY, "cpu-0")}),
    "state": ("suspect", {("shiyan-2", "npu-0")}),
    "tier": ("city", {(ENTRY, "cpu-0"), ("wuhan-dc1", "npu-0"), ("wuhan-dc1", "gpu-0")}),
}


@pytest.mark.parametrize(("name", "value", "expected"), [(k, *v) for k, v in FILTERS.items()])
def test_each_filter_keeps_exactly_its_rows(
    scorer: Scorer, name: str, value: str, expected: set[tuple[str, str]]
) -> None:
    body = view(scorer, **{name: value})
    assert {(r["node"], r["backend"]) for r in body["rows"]} == expected  # type: ignore[attr-defined]
    assert body["filters"] == {name: value} and body["rows_total"] == 6


def test_tiers_agree_with_routing_and_only_any_keeps_the_unknown(scorer: Scorer) -> None:
    province = set(rows_of(scorer, tier="province"))
    assert ("shiyan-2", "npu-0") in province and ("enshi-1", "cpu-0") in province
    assert ("nowhere-9", "cpu-0") not in province
    assert len(rows_of(scorer, tier="any")) == 6


def test_filters_combine(scorer: Scorer) -> None:
    assert set(rows_of(scorer, model="ct-triage", tier="city", chip="ascend-910b")) == {
        ("wuhan-dc1", "npu-0")
    }
    assert rows_of(scorer, model="chat-7b", node="shiyan-2") == {}


def test_without_gossip_the_table_is_this_nodes_own_backends() -> None:
    body = view(None)
    assert body["gossip"] is False and body["rows_total"] == 1
    assert set(rows_of(None)) == {(ENTRY, "cpu-0")}
    assert rows_of(None, model="ct-triage") == {}


def test_an_unsampled_backend_is_idle_with_no_service_time() -> None:
    body = table_json(CONFIG, {}, TableQuery())
    [row] = body["rows"]
    assert (row["busy"], row["free"], row["service_ms"]) == (0.0, 4.0, None)


BAD_QUERIES = {
    "unknown": ([("colour", "blue")], "colour: unknown parameter (parameters: model, chip"),
    "repeated": ([("model", "a"), ("model", "b")], "model: given more than once"),
    "empty": ([("chip", " ")], "chip: must not be empty"),
    "role": ([("role", "router")], "role: 'router' is not a role (edge, city, hub)"),
    "tier": ([("tier", "galaxy")], "tier: 'galaxy' is not a tier (city, province, region"),
    "state": ([("state", "sleepy")], "state: 'sleepy' is not a state (alive, suspect, dead"),
    "model": ([("model", "no spaces")], "model: 'no spaces' is not a model name"),
    "chip": ([("chip", "Bad_Chip")], "chip: 'Bad_Chip' is not a chip type"),
    "node": ([("node", "UPPER")], "node: 'UPPER' is not a node name"),
    "long": ([("model", "m" * 200)], "model: is longer than 128 characters"),
}


@pytest.mark.parametrize(("pairs", "message"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_bad_query_is_refused_naming_the_parameter(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_table_query(pairs)
    assert str(caught.value).startswith(message)
    assert caught.value.parameter == pairs[-1][0]


def test_values_are_stripped() -> None:
    assert parse_table_query([("tier", " city ")]) == TableQuery(tier="city")


async def test_the_endpoint_serves_the_table_and_refuses_bad_filters_by_name() -> None:
    node = await start_node(CONFIG)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{node.url}/hubhop/v1/table?chip=cpu") as response:
                assert response.status == 200
                body = await response.json()
            assert body["gossip"] is False and body["filters"] == {"chip": "cpu"}
            [row] = body["rows"]
            assert (row["node"], row["backend"], row["free"]) == (ENTRY, "cpu-0", 4.0)
            async with http.get(f"{node.url}/hubhop/v1/table?colour=blue") as response:
                assert response.status == 400
                error = (await response.json())["error"]
            assert error["code"] == "invalid_parameter"
            assert error["message"].startswith("colour: unknown parameter")
            assert "x-request-id" in response.headers
    finally:
        await node.drain_and_stop()


def test_the_parameters_are_the_ones_the_command_line_offers() -> None:
    from hubhop.cli import TABLE_FILTERS

    assert TABLE_FILTERS == QUERY_PARAMETERS
