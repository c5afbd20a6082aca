"""The fuzz runner: every target round-robin, seeded mutations, a JSON summary.

    python -m tests.fuzz --inputs 1000000 --seconds 900 --seed 1 --json bench/results/fuzz.json

Rules:
- Targets take turns in blocks of BLOCK inputs until `--inputs` inputs in all have run or
  `--seconds` have passed, whichever comes first. The same seed gives the same inputs: each
  target's mutator has its own rng, seeded from the run's seed and the target's name.
- A crash (anything a target raises) is recorded with its input in hex, and the run goes on;
  crashes are grouped by target, exception type and the line that raised, keeping the first
  input and a count. The exit status is 1 when anything crashed.
- Memory: the resident set size is read every BLOCK inputs; `growth` is the last reading minus
  the one taken once a tenth of the run is done (a warm-up: caches, interned strings and the
  allocator's arenas fill first). `peak_rss_mb` is the process's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import traceback
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.mutator import Mutator
from tests.fuzz.target import Target

# Inputs a target runs before the next one's turn: long enough that switching costs nothing,
# short enough that a time-bounded run still reaches every target many times.
BLOCK = 500
# Crashes of one kind whose inputs are kept beyond the first: enough to see a pattern.
SAMPLES_PER_CRASH = 3
PAGE_BYTES = resource.getpagesize()


def all_targets() -> list[Target]:
    from tests.fuzz import config_targets, gossip_targets, http_targets

    return [*gossip_targets.targets(), *http_targets.targets(), *config_targets.targets()]


def rss_mb() -> float:
    """The resident set size now, in MiB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / (1 << 20)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class TargetStats:
    inputs: int = 0
    seconds: float = 0.0
    crashes: int = 0


@dataclass
class Summary:
    seed: int
    inputs: int = 0
    seconds: float = 0.0
    targets: dict[str, TargetStats] = field(default_factory=dict)
    crashes: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_after_warmup_mb: float | None = None
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def growth_mb(self) -> float:
        warm = self.rss_after_warmup_mb
        return 0.0 if warm is None else self.rss_end_mb - warm

    def record_crash(self, target: str, data: bytes, exc: BaseException) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        key = f"{target}: {type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        entry = self.crashes.setdefault(
            key, {"target": target, "error": f"{type(exc).__name__}: {exc}"[:300], "count": 0,
                  "inputs_hex": [], "traceback": traceback.format_exception(exc)[-6:]},
        )  # fmt: skip
        entry["count"] += 1
        if len(entry["inputs_hex"]) < SAMPLES_PER_CRASH:
            entry["inputs_hex"].append(data.hex())
        self.targets[target].crashes += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "inputs": self.inputs,
            "seconds": round(self.seconds, 2),
            "inputs_per_second": round(self.inputs / self.seconds) if self.seconds else 0,
            "targets": {
                name: {
                    "inputs": s.inputs,
                    "inputs_per_second": round(s.inputs / s.seconds) if s.seconds else 0,
                    "crashes": s.crashes,
                }
                for name, s in self.targets.items()
            },
            "crashes": list(self.crashes.values()),
            "crash_kinds": len(self.crashes),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "rss_after_warmup_mb": None
            if self.rss_after_warmup_mb is None
            else round(self.rss_after_warmup_mb, 1),
            "rss_end_mb": round(self.rss_end_mb, 1),
            "growth_mb": round(self.growth_mb, 1),
        }


def run(
    targets: Sequence[Target],
    inputs: int,
    seconds: float = float("inf"),
    seed: int = 1,
    per_target: int | None = None,
) -> Summary:
    """Fuzz `targets` round-robin; `per_target` (instead of `inputs`) gives each that many."""
    summary = Summary(seed)
    mutators = {t.name: Mutator(_rng(seed, t.name), t.seeds, t.kind) for t in targets}
    budget = {t.name: per_target if per_target is not None else inputs for t in targets}
    summary.targets = {t.name: TargetStats() for t in targets}
    warm_after = min(inputs, sum(budget.values())) // 10
    started = time.perf_counter()
    while summary.inputs < inputs and time.perf_counter() - started < seconds:
        active = [t for t in targets if summary.targets[t.name].inputs < budget[t.name]]
        if not active:
            break
        for target in active:
            left = min(
                inputs - summary.inputs, budget[target.name] - summary.targets[target.name].inputs
            )
            _block(target, mutators[target.name], summary, min(BLOCK, left))
            if summary.rss_after_warmup_mb is None and summary.inputs >= warm_after:
                summary.rss_after_warmup_mb = rss_mb()
            if summary.inputs >= inputs or time.perf_counter() - started >= seconds:
                break
    summary.seconds = time.perf_counter() - started
    summary.rss_end_mb = rss_mb()
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def _rng(seed: int, name: str) -> random.Random:
    """A target's own stream: adding or removing a target leaves the others' inputs as they were."""
    return random.Random(seed * 1_000_003 + zlib.crc32(name.encode()))


def _block(target: Target, mutator: Mutator, summary: Summary, count: int) -> None:
    stats = summary.targets[target.name]
    t0 = time.perf_counter()
    for _ in range(count):
        data = mutator.next_input()
        try:
            target.run(data)
        except Exception as exc:
            summary.record_crash(target.name, data, exc)
        stats.inputs += 1
        summary.inputs += 1
    stats.seconds += time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs in all")
    parser.add_argument("--seconds", type=float, default=900.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--only", action="append", help="fuzz only this target (repeatable)")
    args = parser.parse_args(argv)
    targets = all_targets()
    if args.only:
        unknown = set(args.only) - {t.name for t in targets}
        if unknown:
            parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
        targets = [t for t in targets if t.name in args.only]
    try:
        summary = run(targets, args.inputs, args.seconds, args.seed)
    finally:
        for target in targets:
            target.close()
    report = summary.to_json()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)
    return 1 if summary.crashes else 0


def _print(report: dict[str, Any]) -> None:
    print(
        f"{report['inputs']} inputs in {report['seconds']} s ({report['inputs_per_second']}/s), "
        f"{report['crash_kinds']} kinds of crash; peak RSS {report['peak_rss_mb']} MiB, "
        f"growth after warm-up {report['growth_mb']} MiB"
    )
    for name, t in report["targets"].items():
        rate = t["inputs_per_second"]
        print(f"  {name:18} {t['inputs']:>9} inputs {rate:>8}/s  {t['crashes']} crashes")
    for crash in report["crashes"]:
        print(f"CRASH {crash['target']} x{crash['count']}: {crash['error']}")
        print(f"  input: {crash['inputs_hex'][0][:200]}")


if __name__ == "__main__":
    sys.exit(main())
