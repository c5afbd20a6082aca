"""`python -m bench [NAME [options]]`: run one benchmark, or list them all and run each.

`python -m bench --list` only lists. Each benchmark is a module of this package exposing
`SUMMARY`, `add_arguments(parser)` and `run(namespace) -> exit status`. Results go to
`bench/results/NAME/` unless `--out DIR` says otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# name -> module; append new benchmarks here.
BENCHMARKS: dict[str, str] = {
    "proxy": "bench.proxy",
    "kernels": "bench.kernels",
    "gossip": "bench.gossip",
    "latency": "bench.latency",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def _list() -> None:
    print("benchmarks (python -m bench NAME [--quick] [--out DIR]; NAME --help for options):")
    for name in BENCHMARKS:
        print(f"  {name:20s} {_module(name).SUMMARY}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    sub = parser.add_subparsers(dest="name", metavar="NAME")
    for name in BENCHMARKS:
        module = _module(name)
        add_arguments = module.add_arguments
        add_arguments(sub.add_parser(name, help=module.SUMMARY))
    ns = parser.parse_args(args)
    if ns.list:
        _list()
        return 0
    if ns.name is not None:
        status: int = _module(ns.name).run(ns)
        return status
    _list()
    worst = 0
    for name in BENCHMARKS:
        print(f"\n=== {name} ===")
        worst = max(worst, _module(name).run(parser.parse_args([name])))
    return worst


if __name__ == "__main__":
    sys.exit(main())
