"""`python -m bench`: run the benchmarks, and keep the README tables in step with their results.

    python -m bench                   every benchmark, full run, then `tables`
    python -m bench --quick           every benchmark's short pass, then `tables`
    python -m bench NAME [options]    one benchmark (NAME --help for its options); no tables
    python -m bench tables            only rewrite the README tables from the last results
    python -m bench --list            list the benchmarks

Running every benchmark goes on past one that fails (or does not import), prints each one's
status and wall time at the end, and exits 1 if any failed. The tables are refreshed after
every full pass, even a partly failed one: a benchmark without a new result keeps the tables of
its last one, which say when that was. A single benchmark's run leaves the READMEs alone (run
`tables` after it to show its figures), so trying something does not rewrite the front page.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from bench import readme_tables, registry
from bench._report import format_table

TABLES = "tables"


@dataclass(frozen=True)
class Ran:
    name: str
    status: int
    seconds: float
    # Why it failed when it did not get to return a status (an import error, an exception).
    failure: str = ""


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="each benchmark's short pass (its --quick), with NAME or without",
    )
    parser.add_argument(
        "name",
        nargs="?",
        choices=[*registry.BENCHMARKS, TABLES],
        metavar="NAME",
        help=f"one of {', '.join(registry.BENCHMARKS)}, or {TABLES!r}",
    )
    return parser


def _benchmark_namespace(name: str, args: Sequence[str], quick: bool) -> argparse.Namespace:
    """The benchmark's own options parsed from `args` (argparse exits on an error, as usual)."""
    module = registry.load(name)
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=module.SUMMARY)
    module.add_arguments(parser)
    ns = parser.parse_args(args)
    ns.quick = ns.quick or quick
    return ns


def _list() -> None:
    print("benchmarks (python -m bench NAME [--quick] [--out DIR]; NAME --help for options):")
    for name in registry.BENCHMARKS:
        try:
            summary = registry.load(name).SUMMARY
        except ImportError as exc:
            summary = f"(does not import: {exc})"
        print(f"  {name:10s} {summary}")


def _run_one(name: str, quick: bool) -> Ran:
    print(f"\n=== {name}{' --quick' if quick else ''} ===", flush=True)
    started = time.monotonic()
    try:
        status = registry.load(name).run(_benchmark_namespace(name, [], quick))
    except Exception as exc:  # the next benchmark runs whatever this one did
        traceback.print_exc()
        failure = traceback.format_exception_only(exc)[-1].strip()
        return Ran(name, 1, time.monotonic() - started, failure)
    return Ran(name, int(status), time.monotonic() - started)


def run_all(quick: bool) -> int:
    """Every benchmark in turn, a report of each, then the tables; 1 if anything failed."""
    ran = [_run_one(name, quick) for name in registry.BENCHMARKS]
    rows = [
        [
            r.name,
            "ok" if r.status == 0 else f"FAILED (exit {r.status})",
            f"{r.seconds:.0f}",
            r.failure,
        ]
        for r in ran
    ]
    print()
    kind = "short passes (--quick)" if quick else "full runs"
    print(format_table(["benchmark", "status", "wall s", "why"], rows, f"Benchmarks, {kind}:"))
    print(f"\n=== {TABLES} ===", flush=True)
    tables_status = readme_tables.main()
    failed = [r.name for r in ran if r.status != 0]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed or tables_status else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Options before the first word are this command's; the word and all after it, NAME's.
    split = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    ns = _top_parser().parse_args(args[: split + 1])
    if ns.list:
        _list()
        return 0
    if ns.name == TABLES:
        if args[split + 1 :]:
            _top_parser().error(f"{TABLES} takes no options")
        return readme_tables.main()
    if ns.name is not None:
        status: int = registry.load(ns.name).run(
            _benchmark_namespace(ns.name, args[split + 1 :], ns.quick)
        )
        return status
    return run_all(ns.quick)


if __name__ == "__main__":
    sys.exit(main())
