"""The gossip benchmark's README regions, from its JSON document (`gossip.json`).

- `gossip` (README.md): hubhop and Serf side by side at every N of the run on the figures an
  operator weighs (update spread, join, failure detection, idle cost), the starvation run in
  one line, and issue 3's targets in one line.
- `gossip-detail` (bench/README.md): the tables the run prints.
"""

from __future__ import annotations

from typing import Any

from bench._markdown import markdown_table, targets_line, text_block
from bench.gossip import summary

# The side-by-side metrics the front page shows (titles of summary.ROWS); the rest are in the
# detail.
README_METRICS = (
    "update to all: p50 (s)",
    "update to all: p99 (s)",
    "join: all list all N alive, after last join (s)",
    "kill -9: all mark dead (s)",
    "idle CPU per node: mean (%)",
    "idle CPU per node: max (%)",
    "idle private memory per node: mean (MB)",
    "idle sent per node: payload (B/s)",
)


def _starvation(fp: dict[str, Any]) -> str:
    if "hubhop" not in fp:
        why = fp.get("skipped") or fp.get("error") or "not run"
        return f"Starvation run: {why}."
    run = fp["hubhop"]
    counts = ", ".join(
        f"{system} {fp[system]['false_positive_nodes']}"
        for system in summary.SYSTEMS
        if system in fp
    )
    return (
        f"Starvation run ({run['nodes']} nodes of each system, node 2 stopped {run['stop_s']} s "
        f"every {run['period_s']} s, {run['bursts']} times over {run['seconds']:.0f} s): "
        f"healthy nodes declared dead: {counts}."
    )


def _targets(rows: list[dict[str, Any]]) -> str:
    return targets_line(
        "Issue 3",
        [
            (
                f"{r['target']}, N = {r['N']}",
                r["pass"],
                f"hubhop {summary.fmt(r['hubhop'])}, Serf {summary.fmt(r['serf'])}",
            )
            for r in rows
        ],
    )


def markdown_tables(document: dict[str, Any]) -> dict[str, str]:
    """Region id -> markdown; see the module docstring."""
    results = document["results"]
    sizes = [int(n) for n in document["parameters"]["sizes"]]
    headers, rows = summary.side_by_side_rows(results, sizes, README_METRICS)
    front = [
        markdown_table(headers, rows),
        _starvation(results.get("false_positives", {})),
        _targets(document.get("targets", [])),
    ]
    skipped = document.get("skipped", {}).get("serf")
    if skipped:
        front.append(f"Serf side {skipped}")
    detail = text_block(summary.report(results, sizes, document.get("targets", [])))
    errors = document.get("errors", {})
    if errors:
        detail += "\n\n" + "\n".join(
            f"- error: {key}: {message.splitlines()[0]}" for key, message in errors.items()
        )
    return {"gossip": "\n\n".join(front), "gossip-detail": detail}
