"""`python -m bench tables`: rewrite the results tables of README.md and bench/README.md from the
benchmarks' last result files, so the figures shown are the figures last measured.

What it does, per benchmark of `bench.registry`:
- Takes the newer (by the run's own date) of `bench/results/NAME/NAME.json`, which a run
  writes and git ignores, and `docs/bench/NAME.json`, the committed copy. Normally that is the
  run just made; a committed copy newer than a stale local result wins, so refreshing on a
  fresh clone does not put old local figures back.
- Asks the benchmark's `markdown_tables(document)` for its regions' markdown, puts a line saying
  which run it comes from first (`bench._markdown.source_line`), and writes each into the
  region of that ID (`bench.marked_regions`) wherever it appears in the two files.
- When the figures came from bench/results/, copies that JSON and its PNG into docs/bench/:
  the committed evidence the README's numbers can be checked against, and the plot it shows.

Rules:
- A benchmark with no result file anywhere leaves its regions as they are, with a printed note,
  so a partial run never blanks the README.
- A region ID must be a benchmark's name, or its name and a dash and more (`proxy-detail`); a
  marker of an unknown benchmark, malformed or unbalanced markers, a region the benchmark does
  not produce, or a benchmark whose tables fail, are errors: printed, and the status is 1.
  A file with a marker error is left untouched; otherwise every region that could be filled is.
"""

from __future__ import annotations

import json
import shutil
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import registry
from bench._markdown import source_line
from bench._report import REPO_ROOT
from bench.marked_regions import MarkerError, find_regions, rewrite

# The files whose regions are generated: the project's front page and the benchmarks' own.
DOCUMENTS = (REPO_ROOT / "README.md", REPO_ROOT / "bench" / "README.md")
RESULTS_DIR = REPO_ROOT / "bench" / "results"
EVIDENCE_DIR = REPO_ROOT / "docs" / "bench"

MarkdownTables = Callable[[dict[str, Any]], dict[str, str]]


@dataclass(frozen=True)
class Result:
    """The result file a benchmark's regions are generated from."""

    name: str
    path: Path
    document: dict[str, Any]
    # True when it is the run's own output (bench/results/), to be copied to docs/bench/.
    fresh: bool


@dataclass
class Outcome:
    """What a refresh did: regions written per file, notes, and errors (any error: status 1)."""

    written: dict[str, list[str]] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def benchmark_of(region_id: str, names: Iterable[str]) -> str | None:
    """The benchmark a region ID belongs to (`proxy` for `proxy` and `proxy-detail`), or None."""
    for name in names:
        if region_id == name or region_id.startswith(name + "-"):
            return name
    return None


def _run_date(document: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(document["machine"]["date"]))
    except (KeyError, TypeError, ValueError):
        return None


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def latest_result(name: str, results_dir: Path, evidence_dir: Path) -> Result | None:
    """The newer of the run's output and the committed copy (the run's output on a tie or when
    a date is missing); None when neither exists."""
    fresh_path = results_dir / name / f"{name}.json"
    kept_path = evidence_dir / f"{name}.json"
    fresh, kept = _read(fresh_path), _read(kept_path)
    if fresh is not None and kept is not None:
        fresh_date, kept_date = _run_date(fresh), _run_date(kept)
        if fresh_date is not None and kept_date is not None and kept_date > fresh_date:
            return Result(name, kept_path, kept, fresh=False)
    if fresh is not None:
        return Result(name, fresh_path, fresh, fresh=True)
    if kept is not None:
        return Result(name, kept_path, kept, fresh=False)
    return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _generate(result: Result, markdown_tables: MarkdownTables, evidence: str) -> dict[str, str]:
    regions = markdown_tables(result.document)
    head = source_line(result.document, evidence)
    return {region_id: f"{head}\n\n{body.strip()}" for region_id, body in regions.items()}


def refresh(
    names: Sequence[str],
    load_tables: Callable[[str], MarkdownTables],
    documents: Sequence[Path] = DOCUMENTS,
    results_dir: Path = RESULTS_DIR,
    evidence_dir: Path = EVIDENCE_DIR,
    root: Path = REPO_ROOT,
) -> Outcome:
    """Regenerate every region of `documents` from the benchmarks' latest results (see the
    module docstring); `load_tables(name)` gives a benchmark's `markdown_tables`."""
    outcome = Outcome()
    texts: dict[Path, str] = {}
    wanted: dict[str, set[str]] = {}  # benchmark -> region IDs found in the files
    for path in documents:
        text = path.read_text()
        source = _relative(path, root)
        try:
            regions = find_regions(text, source)
        except MarkerError as exc:
            outcome.errors.append(f"{exc} ({source} left untouched)")
            continue
        unknown = [r for r in regions if benchmark_of(r.id, names) is None]
        if unknown:
            for r in unknown:
                outcome.errors.append(
                    f"{source}:{r.begin_line + 1}: region {r.id!r} belongs to no benchmark "
                    f"(known: {', '.join(names)}); {source} left untouched"
                )
            continue
        texts[path] = text
        for r in regions:
            wanted.setdefault(benchmark_of(r.id, names) or "", set()).add(r.id)

    generated: dict[str, str] = {}
    for name in names:
        result = latest_result(name, results_dir, evidence_dir)
        if result is None:
            if wanted.get(name):
                outcome.notes.append(
                    f"{name}: no result file (bench/results/{name}/{name}.json or "
                    f"docs/bench/{name}.json); its regions are left as they are"
                )
            continue
        evidence = _relative(evidence_dir / f"{name}.json", root)
        try:
            tables = _generate(result, load_tables(name), evidence)
        except Exception as exc:  # one benchmark's failure must not stop others
            detail = traceback.format_exception_only(exc)[-1].strip()
            outcome.errors.append(
                f"{name}: no tables from {_relative(result.path, root)}: {detail}; "
                "its regions are left as they are"
            )
            continue
        generated.update(tables)
        if result.fresh:
            outcome.copied += _copy_evidence(result, evidence_dir, root)
        missing = sorted(set(tables) - wanted.get(name, set()))
        if missing:
            outcome.notes.append(
                f"{name}: no markers for region(s) {', '.join(missing)}: not shown "
                f"(add {missing[0]!r} markers to a README to show it)"
            )
        for region_id in sorted(wanted.get(name, set()) - set(tables)):
            outcome.errors.append(
                f"{name}: region {region_id!r} is marked in a README but markdown_tables "
                f"gives only {', '.join(sorted(tables)) or 'nothing'}; left as it is"
            )

    for path, text in texts.items():
        source = _relative(path, root)
        new = rewrite(text, generated, source)
        filled = [r.id for r in find_regions(text, source) if r.id in generated]
        if new != text:
            path.write_text(new)
        outcome.written[source] = filled
    return outcome


def _copy_evidence(result: Result, evidence_dir: Path, root: Path) -> list[str]:
    """Copy the result JSON and its PNG (when the run drew one) into `evidence_dir`."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in (result.path, result.path.with_suffix(".png")):
        if source.is_file():
            target = evidence_dir / source.name
            shutil.copyfile(source, target)
            copied.append(_relative(target, root))
    return copied


def _load_tables(name: str) -> MarkdownTables:
    tables: MarkdownTables = registry.load(name).markdown_tables
    return tables


def main() -> int:
    """Refresh the tables of every registered benchmark; print what was done; 0 or 1."""
    outcome = refresh(list(registry.BENCHMARKS), _load_tables)
    for source, filled in outcome.written.items():
        print(f"{source}: regenerated {', '.join(filled) if filled else 'no region'}")
    if outcome.copied:
        print(f"copied to docs/bench/: {', '.join(Path(p).name for p in outcome.copied)}")
    for note in outcome.notes:
        print(f"note: {note}")
    for error in outcome.errors:
        print(f"error: {error}")
    return 1 if outcome.errors else 0
