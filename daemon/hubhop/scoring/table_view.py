"""The capacity table as an operator reads it: one row per (node, backend), filterable.

This is what `GET /hubhop/v1/table` answers and `hubhop table` prints: what this daemon knows
about every backend it could route to, with the figures routing decides on.

Rules:
- This node's own backends come from its config and the live load its admission counts, so
  they are fresh and are there without gossip too. Every other node's rows come from the
  scorer's candidate table, as gossip last fed it: exactly what a routing decision reads,
  service-time default included.
- Latency is the scorer's: one-way along the path a decision would take (half the round trip,
  relays costed), `measured` over measured links or `estimated` from network coordinates;
  `local` for this node; null when the node is neither linked nor placed yet. A tier filter
  keeps the rows within that tier's one-way bound, as `POST /hubhop/v1/route` judges them, so
  `table --tier T` and `route --tier T` agree on who is near enough (an unknown latency passes
  only `any`).
- A node's state is what membership says; a row of a node membership no longer lists reads
  `alive` or `dead` from the table's own liveness.
- Query parameters are validated whole: an unknown name, a repeated one or a bad value is a
  QueryError naming the parameter (the endpoint's 400), never ignored, so a misspelt filter
  does not silently show the whole table.
- Rows are ordered by node, then backend, like the members view.

Pure: no clock, no I/O. Reading the scorer folds its queued changes in, as a decision would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from hubhop.core.capacity import LoadSample, default_emergency_reserve
from hubhop.core.config import CHIP_PATTERN, MODEL_PATTERN, NAME_PATTERN, ROLES, NodeConfig
from hubhop.core.members import MemberState
from hubhop.core.tiers import LANES, TIERS, tier_bound_ms, tier_of
from hubhop.scoring.candidates import BackendLoad, CandidateTable
from hubhop.scoring.scorer import Scorer
from hubhop_native import columns as col

QUERY_PARAMETERS: tuple[str, ...] = ("model", "chip", "node", "role", "tier", "state")
STATES: tuple[str, ...] = tuple(s.value for s in MemberState)
# Every legitimate filter value is a name of a few dozen characters; the cap bounds what an
# error message echoes back.
MAX_VALUE_LENGTH = 128
# Latency sources, as the rows and the route command name them.
LOCAL, MEASURED, ESTIMATED = "local", "measured", "estimated"


class QueryError(ValueError):
    """A query parameter that cannot be honoured; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class TableQuery:
    """Filters; None means not filtered on. All given filters must hold."""

    model: str | None = None
    chip: str | None = None
    node: str | None = None
    role: str | None = None
    tier: str | None = None
    state: str | None = None

    def given(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


def parse_table_query(pairs: Iterable[tuple[str, str]]) -> TableQuery:
    """The filters of a query string, as (name, value) pairs in order (repeats included)."""
    given: dict[str, str] = {}
    for name, raw in pairs:
        if name not in QUERY_PARAMETERS:
            known = ", ".join(QUERY_PARAMETERS)
            raise QueryError(name[:64], f"unknown parameter (parameters: {known})")
        if name in given:
            raise QueryError(name, "given more than once")
        given[name] = _value(name, raw)
    return TableQuery(**given)


def _value(name: str, raw: str) -> str:
    if len(raw) > MAX_VALUE_LENGTH:
        raise QueryError(name, f"is longer than {MAX_VALUE_LENGTH} characters")
    text = raw.strip()
    if not text:
        raise QueryError(name, "must not be empty")
    choices = {"role": ROLES, "tier": TIERS, "state": STATES}.get(name)
    if choices is not None and text not in choices:
        raise QueryError(name, f"{text!r} is not a {name} ({', '.join(choices)})")
    patterns = {
        "model": (MODEL_PATTERN, "a model name"),
        "chip": (CHIP_PATTERN, "a chip type (such as nvidia-h100, ascend-910b, cpu)"),
        "node": (NAME_PATTERN, "a node name"),
    }
    if name in patterns:
        pattern, what = patterns[name]
        if not pattern.fullmatch(text):
            raise QueryError(name, f"{text!r} is not {what}")
    return text


@dataclass(frozen=True)
class BackendRow:
    """One (node, backend) as this node sees it."""

    node: str
    backend: str
    protocols: tuple[str, ...]
    load: BackendLoad  # its models by their plain names; service_ms 0: not measured yet
    one_way_ms: float  # from this node; inf when unknown
    latency_source: str  # LOCAL, MEASURED, ESTIMATED, "" when unknown
    path: tuple[str, ...]


def local_rows(config: NodeConfig, load: Mapping[str, LoadSample]) -> list[BackendRow]:
    """This node's backends, with the live load admission counts (idle when not sampled)."""
    me = config.node.name
    out = []
    for b in config.backends:
        busy, queue, service_ms = load.get(b.name, (0.0, (0.0, 0.0, 0.0), 0.0))
        out.append(
            BackendRow(
                node=me,
                backend=b.name,
                protocols=tuple(sorted(b.protocols)),
                load=BackendLoad(
                    models=tuple(sorted(b.models)),
                    chip=b.chip,
                    price=b.price,
                    green_share=b.green_share,
                    slots=b.slots,
                    emergency_reserve=default_emergency_reserve(b.slots),
                    busy=busy,
                    queue=queue,
                    service_ms=service_ms,
                ),
                one_way_ms=0.0,
                latency_source=LOCAL,
                path=(me,),
            )
        )
    return out


def gossiped_rows(scorer: Scorer, skip_node: str) -> list[BackendRow]:
    """Every row of the scorer's table but `skip_node`'s, with its path latency."""
    table = scorer.table
    table.materialize()
    paths = scorer.paths
    latency = paths.recompute()
    num = table.row_num
    out = []
    for row, (node, backend) in enumerate(table.keys):
        if node == skip_node:
            continue
        node_id = int(table.row_node[row])
        one_way = float(latency[node_id]) if node_id < latency.shape[0] else math.inf
        known = math.isfinite(one_way)
        source = (ESTIMATED if paths.estimated[node_id] else MEASURED) if known else ""
        protocols, models = _served(table, row)
        out.append(
            BackendRow(
                node=node,
                backend=backend,
                protocols=protocols,
                load=BackendLoad(
                    models=models,
                    chip=table.chips.name_of(int(table.row_chip[row])),
                    price=float(num[col.ROW_PRICE, row]),
                    green_share=float(num[col.ROW_GREEN, row]),
                    slots=int(num[col.ROW_SLOTS, row]),
                    emergency_reserve=int(num[col.ROW_RESERVE, row]),
                    busy=float(num[col.ROW_BUSY, row]),
                    queue=(
                        float(num[col.ROW_QUEUE_EMERGENCY, row]),
                        float(num[col.ROW_QUEUE_STANDARD, row]),
                        float(num[col.ROW_QUEUE_BATCH, row]),
                    ),
                    service_ms=float(num[col.ROW_SERVICE_MS, row]),
                    alive=bool(table.row_alive[row]),
                ),
                one_way_ms=one_way if known else math.inf,
                latency_source=source,
                path=paths.path_to(node_id) if known else (),
            )
        )
    return out


def _served(table: CandidateTable, row: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The protocols and plain model names of a row's protocol-qualified model bitset."""
    words = table.row_models[row]
    protocols, models = set(), set()
    for ident in range(len(table.models)):
        word, bit = divmod(ident, col.MODEL_BITS_PER_WORD)
        if word < words.shape[0] and (int(words[word]) >> bit) & 1:
            protocol, _, model = table.models.name_of(ident).partition(":")
            protocols.add(protocol)
            models.add(model)
    return tuple(sorted(protocols)), tuple(sorted(models))


def table_json(
    config: NodeConfig,
    load: Mapping[str, LoadSample],
    query: TableQuery,
    *,
    members: Sequence[Mapping[str, Any]] | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """The table as `GET /hubhop/v1/table` shows it. `members`: the members view, when this
    node gossips (it gives every node's role, labels and state); `scorer`: the router's, for
    every other node's rows."""
    me = config.node.name
    rows = local_rows(config, load)
    if scorer is not None:
        rows += gossiped_rows(scorer, me)
    known = {str(m["name"]): m for m in members or ()}
    node = config.node
    labels = {me: {"role": node.role, "region": node.region, "city": node.city}}
    shown = []
    for row in sorted(rows, key=lambda r: (r.node, r.backend)):
        member = known.get(row.node, {})
        place = labels.get(row.node) or {k: member.get(k, "") for k in ("role", "region", "city")}
        state = (
            "alive"
            if row.node == me
            else member.get("state", "alive" if row.load.alive else "dead")
        )
        entry = {"node": row.node, **place, "state": state, **_backend_json(row)}
        if _keeps(query, row, entry):
            shown.append(entry)
    return {
        "node": me,
        "gossip": scorer is not None,
        "filters": query.given(),
        "rows_total": len(rows),
        "rows": shown,
    }


def _backend_json(row: BackendRow) -> dict[str, Any]:
    load = row.load
    free = max(0.0, load.slots - load.busy)
    latency = None
    if math.isfinite(row.one_way_ms):
        latency = {
            "one_way_ms": round(row.one_way_ms, 4),
            "tier": tier_of(row.one_way_ms),
            "source": row.latency_source,
            "path": list(row.path),
        }
    return {
        "backend": row.backend,
        "protocols": list(row.protocols),
        "models": list(load.models),
        "chip": load.chip,
        "slots": load.slots,
        "emergency_reserve": load.emergency_reserve,
        "busy": round(load.busy, 3),
        "free": round(free, 3),
        "load": round(load.busy / load.slots, 3) if load.slots > 0 else None,
        "queue": {lane: round(n, 3) for lane, n in zip(LANES, load.queue, strict=True)},
        "service_ms": round(load.service_ms, 3) if load.service_ms > 0 else None,
        "price": load.price,
        "green_share": load.green_share,
        "alive": load.alive,
        "latency": latency,
    }


def _keeps(query: TableQuery, row: BackendRow, entry: Mapping[str, Any]) -> bool:
    return (
        (query.model is None or query.model in row.load.models)
        and (query.chip is None or query.chip == row.load.chip)
        and (query.node is None or query.node == row.node)
        and (query.role is None or query.role == entry["role"])
        and (query.state is None or query.state == entry["state"])
        and (query.tier is None or row.one_way_ms <= tier_bound_ms(query.tier))
    )
