"""The project's benchmarks, in the order `python -m bench` runs them, and how to load one.

Each benchmark is a module of this package exposing:
- `SUMMARY`: one line saying what it measures;
- `add_arguments(parser)`: its options, always including `--quick` (a short pass), `--out DIR`
  (default `bench/results/NAME/`) and, where it draws random numbers, `--seed`;
- `run(namespace) -> int`: run it, write `NAME.json` (and `NAME.png`) into `--out`, return an
  exit status;
- `markdown_tables(document) -> dict[str, str]`: from its JSON document, the markdown of each
  README region it fills (`bench/readme_tables.py`), keyed by region id: `NAME` for the
  summary in README.md, `NAME-...` for others.

Modules are imported only when used, so one benchmark that fails to import (or is still being
written) fails alone: the others still list, run and fill their tables.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module, in run order: the in-process kernels first (no daemons: a broken environment
# shows within a minute), then the benchmarks that start daemons.
BENCHMARKS: dict[str, str] = {
    "kernels": "bench.kernels",
    "proxy": "bench.proxy",
    "gossip": "bench.gossip",
    "latency": "bench.latency",
    "routing": "bench.routing",
}


def load(name: str) -> ModuleType:
    """The benchmark's module; KeyError for a name not registered, ImportError as raised."""
    return importlib.import_module(BENCHMARKS[name])
