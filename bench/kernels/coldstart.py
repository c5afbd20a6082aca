"""What the kernels add to a daemon's start: fresh processes, with and without the JIT cache.

Three kinds of subprocess (`sys.executable -c ...`, cwd the repository), each run `cold_runs`
times:
- `baseline`: imports numpy and numba only, and exits: the floor any numba user pays.
- `no_cache`: NUMBA_CACHE_DIR points at a fresh empty directory; imports hubhop_native.scoring
  and hubhop_native.paths and calls each kernel once on a tiny input, so both compile.
- `warm_cache`: the same, with NUMBA_CACHE_DIR the directory the `no_cache` run just filled, so
  the compiled code is loaded from disk, as on every daemon start after the first.
With NUMBA_CACHE_DIR set, numba reads and writes its cache only there (it is the first cache
locator numba tries), so the in-tree `__pycache__` of a developer checkout does not leak in.

Figures: the wall time of each process, seen from this one (spawn to exit); the median per
kind; the time the kernels add = median of a kind minus the median baseline. Each child also
reports its own split (numpy + numba import, kernel-module import, first decide, first path
recomputation), measured inside with perf_counter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._report import REPO_ROOT

KINDS = ("baseline", "no_cache", "warm_cache")
TIMEOUT_S = 180.0  # one compile of both kernels takes seconds; this only catches a hang

_BASELINE = """
import json, time
t0 = time.perf_counter()
import numpy, numba
t1 = time.perf_counter()
print(json.dumps({"import_numpy_numba_s": t1 - t0}))
"""

_KERNELS = """
import json, time
t0 = time.perf_counter()
import numpy as np, numba
t1 = time.perf_counter()
from hubhop_native import columns, paths, scoring
t2 = time.perf_counter()
rows = 2
num = np.zeros((columns.ROW_FIELDS, rows), np.float64)
num[columns.ROW_SLOTS] = 4.0
num[columns.ROW_SERVICE_MS] = 50.0
chosen = scoring.decide(
    np.zeros(rows, np.int32), np.ones(rows, np.uint8), np.zeros(rows, np.int32),
    np.ones((rows, 1), np.uint64), num, np.array([0.5], np.float64),
    0, -1, 1, 5.0, np.inf, 20.0, 200.0, 0.1, np.ones(1, np.uint64),
    np.zeros(rows, np.uint32), np.zeros(rows, np.float64), np.zeros(rows, np.float64),
)
t3 = time.perf_counter()
n = 3
latency = np.zeros(n, np.float64)
paths.shortest_paths(
    np.array([0, 1, 2, 2], np.int32), np.array([1, 2], np.int32), np.array([1.0, 2.0]), 0, 0.05,
    np.zeros((n, 2), np.float64), np.zeros(n, np.float64), np.ones(n, np.uint8),
    latency, np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.uint8),
)
t4 = time.perf_counter()
assert chosen[0] in (0, 1) and latency[1] == 0.5, (chosen, latency)
print(json.dumps({
    "import_numpy_numba_s": t1 - t0, "import_kernels_s": t2 - t1,
    "first_decide_s": t3 - t2, "first_paths_s": t4 - t3,
}))
"""


class ColdStartError(RuntimeError):
    pass


def _child_env(cache_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)  # a JIT-less child would measure nothing
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def _spawn(code: str, cache_dir: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=_child_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise ColdStartError(f"cold-start child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    inside: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **inside}


def measure(runs: int, say: Any) -> dict[str, list[dict[str, Any]]]:
    """`runs` processes of each kind; baseline first, then a compile, then the warm start."""
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="hubhop-numba-cache-") as tmp:
            cache = Path(tmp)
            out["baseline"].append(_spawn(_BASELINE, None))
            out["no_cache"].append(_spawn(_KERNELS, cache))
            out["warm_cache"].append(_spawn(_KERNELS, cache))
            cached_files = sum(1 for p in cache.rglob("*") if p.is_file())
            if cached_files == 0:
                raise ColdStartError(f"NUMBA_CACHE_DIR={cache} stayed empty: no cache was written")
        say(
            f"  cold start: run {i + 1}/{runs}: baseline {out['baseline'][-1]['wall_s']:.2f} s, "
            f"no cache {out['no_cache'][-1]['wall_s']:.2f} s, "
            f"warm cache {out['warm_cache'][-1]['wall_s']:.2f} s"
        )
    return out


def summarize(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    base = float(np.median([s["wall_s"] for s in samples["baseline"]]))
    result: dict[str, Any] = {}
    for kind in KINDS:
        walls = [s["wall_s"] for s in samples[kind]]
        entry: dict[str, Any] = {
            "n": len(walls),
            "median_s": round(float(np.median(walls)), 3),
            "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3),
            "runs_s": [round(w, 3) for w in walls],
            "added_s": round(float(np.median(walls)) - base, 3),
        }
        for part in ("import_numpy_numba_s", "import_kernels_s", "first_decide_s", "first_paths_s"):
            values = [s[part] for s in samples[kind] if part in s]
            if values:
                entry[f"inside_{part}"] = round(float(np.median(values)), 3)
        result[kind] = entry
    return result
