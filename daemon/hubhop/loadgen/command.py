"""`hubhop loadgen WORKLOAD.toml`: run a workload against a network and report what it got.

Exit codes (as the other commands): 0 the run completed (its errors are results, in the
report); 1 it completed but not one request was answered ok (a wrong entry point, a network
that refuses everything); 2 a bad command-line value; 78 (EX_CONFIG) a bad workload file, one
line per fault naming the file and the key, or an auth_token_env that is not set.

What it prints: the report's tables on stdout (or, with --json, the JSON result instead), and
a line on stderr when the run starts. With --out DIR it writes DIR/NAME.json and
DIR/NAME-latency-cdf.png (NAME: the workload file's stem).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubhop.io.loop import LOOP_KINDS, LoopUnavailable
from hubhop.io.loop import run as run_loop
from hubhop.loadgen.workload import Workload, WorkloadError, entry_url_fault, parse_workload

if TYPE_CHECKING:
    from hubhop.loadgen.runner import RunResult

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_CONFIG = 78


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workload", metavar="WORKLOAD.toml", help="the workload file")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write the JSON result and the CDF plot here"
    )
    parser.add_argument("--duration", type=float, metavar="S", help="instead of [run] duration_s")
    parser.add_argument(
        "--rate-scale", type=float, default=1.0, metavar="X", help="multiply every rate by X"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="instead of [run] seed")
    parser.add_argument(
        "--entry",
        action="append",
        default=[],
        metavar="URL",
        help="send every stream to this entry point instead of the file's (repeat for several)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON result, not tables")
    parser.add_argument(
        "--loop", choices=LOOP_KINDS, default="auto", help="event loop (auto: uvloop when present)"
    )


def load_workload(path: str) -> Workload:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError([f"{path}: cannot read: {exc}"]) from None
    return parse_workload(text, path)


def _usage_fault(ns: argparse.Namespace) -> str | None:
    if ns.duration is not None and not 0.0 < ns.duration <= 7 * 24 * 3600:
        return f"--duration must be more than 0 s and at most a week, got {ns.duration:g}"
    if not 0.0 < ns.rate_scale <= 1e6:
        return f"--rate-scale must be more than 0, got {ns.rate_scale:g}"
    if ns.seed is not None and ns.seed < 0:
        return f"--seed must be 0 or more, got {ns.seed}"
    for url in ns.entry:
        why = entry_url_fault(url)
        if why:
            return f"--entry: {why}"
    return None


def _args(ns: argparse.Namespace) -> dict[str, Any]:
    shown = {k: v for k, v in vars(ns).items() if k not in ("func", "command")}
    return {k: str(v) if isinstance(v, Path) else v for k, v in shown.items()}


def cmd_loadgen(ns: argparse.Namespace) -> int:
    # The sender, the histograms and the plotting load here, not when the parser is built.
    from hubhop.loadgen import output, report, runner

    fault = _usage_fault(ns)
    if fault:
        print(f"hubhop loadgen: {fault}", file=sys.stderr)
        return EX_USAGE
    try:
        workload = load_workload(ns.workload).adjusted(
            duration_s=ns.duration,
            rate_scale=ns.rate_scale,
            seed=ns.seed,
            entries=tuple(url.rstrip("/") for url in ns.entry),
        )
    except WorkloadError as error:
        for line in error.faults:
            print(line, file=sys.stderr)
        return EX_CONFIG
    token = None
    if workload.auth_token_env:
        token = os.environ.get(workload.auth_token_env)
        if not token:
            name = workload.auth_token_env
            print(f"{workload.source}: run.auth_token_env: ${name} is not set", file=sys.stderr)
            return EX_CONFIG
    entries = sorted({e for s in workload.streams for e in s.entries})
    print(
        f"hubhop loadgen: {workload.rate:g} req/s for {workload.duration_s:g} s "
        f"to {', '.join(entries)}",
        file=sys.stderr,
    )
    try:
        result = run_loop(runner.run(workload, token), ns.loop)
    except LoopUnavailable as exc:
        print(f"hubhop loadgen: {exc}", file=sys.stderr)
        return EX_USAGE
    summary = report.run_summary(workload, result.stats, result.elapsed_s)
    document = report.document(workload, summary, args=_args(ns), machine=output.machine())
    if ns.json:
        print(json.dumps(document, indent=2))
    else:
        for line in report.lines(workload, summary):
            print(line)
    if ns.out is not None:
        _write_files(ns.out, Path(ns.workload).stem, workload, document, result)
    everything = summary["all"]
    return EX_FAILED if everything["sent"] and not everything["ok"] else EX_OK


def _write_files(
    out: Path, name: str, workload: Workload, document: dict[str, Any], result: RunResult
) -> None:
    from hubhop.loadgen import output, report

    where = out / f"{name}.json"
    output.write_json(where, document)
    written = [str(where)]
    png = out / f"{name}-latency-cdf.png"
    title = f"hubhop loadgen: {name}, {workload.rate:g} req/s, {workload.duration_s:g} s"
    if output.write_cdf_png(png, report.cdf_series(result.stats), title):
        written.append(str(png))
    else:
        print(output.NO_MATPLOTLIB, file=sys.stderr)
    print(f"wrote {', '.join(written)}", file=sys.stderr)
