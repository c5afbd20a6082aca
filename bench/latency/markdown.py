"""The latency benchmark's README regions, from its JSON document (`latency.json`).

- `latency` (README.md): the figures of the real daemons on the emulated WAN beside the
  simulator's, and issue 4's targets in one line.
- `latency-detail` (bench/README.md): the same figures, and each target with its verdict.
"""

from __future__ import annotations

from typing import Any

from bench._markdown import markdown_table, targets_line
from bench.latency import summary


def _figures(document: dict[str, Any]) -> str:
    headers, rows = summary.figures_rows(document.get("daemons") or {}, document["simulator"])
    return markdown_table(headers, rows)


def _joiner(document: dict[str, Any]) -> str:
    join = (document.get("daemons") or {}).get("join")
    if not join:
        return ""
    return (
        f"The joiner, {join['joiner']}, started at {100 * join['error_at_start']:.0f}% median "
        "relative error (its coordinate at the origin)."
    )


def _notes(document: dict[str, Any]) -> str:
    notes = [f"error: {error}" for error in document.get("errors", [])]
    skipped = document["simulator"].get("skipped")
    if skipped:
        notes.append(f"simulator: {skipped}")
    return "\n".join(f"- {note}" for note in notes)


def markdown_tables(document: dict[str, Any]) -> dict[str, str]:
    """Region id -> markdown; see the module docstring."""
    goals = document.get("targets", [])
    verdicts = [(g["target"], bool(g["met"]), g["measured"]) for g in goals]
    line = targets_line("Issue 4", verdicts) if goals else "Issue 4's targets: not judged."
    table = markdown_table(
        ["target (issue 4)", "measured", "verdict"],
        [[g["target"], g["measured"], "met" if g["met"] else "**not met**"] for g in goals],
    )
    notes = _notes(document)
    front = "\n\n".join(part for part in (_figures(document), line, notes) if part)
    parts = (_figures(document), _joiner(document), table, notes)
    detail = "\n\n".join(part for part in parts if part)
    return {"latency": front, "latency-detail": detail}
