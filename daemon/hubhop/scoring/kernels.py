"""Which implementation of the kernels runs, and warming it up before the daemon says ready.

numba's compiled kernels when they import; otherwise (numba missing, or unable to compile or
cache here) the plain-NumPy references, which take the same arguments and give the same answers,
only slower. The choice is made once, at import, and the daemon logs why it fell back.

Compiled code is cached on disk (`cache=True` on every kernel). Where the package directory is
read-only (a system install, systemd's ProtectSystem=strict), the cache goes where
NUMBA_CACHE_DIR says; `hubhop run` sets it from `kernels.cache_dir` before anything imports
numba, so this module must not be imported earlier than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hubhop_native import columns as col
from hubhop_native import csr

decide: Callable[..., tuple[int, int]]
shortest_paths: Callable[..., None]

# Why the NumPy references run instead of numba ("" when numba runs): the daemon logs it.
FALLBACK_REASON = ""
try:
    import hubhop_native.paths as _paths
    import hubhop_native.scoring as _scoring
# Not only a missing numba: a sandbox that forbids writable and executable memory makes LLVM
# fail at import (OSError, RuntimeError), and a read-only package without NUMBA_CACHE_DIR has no
# place for the cache (RuntimeError). Slower kernels beat a daemon that does not start.
except (ImportError, OSError, RuntimeError) as exc:
    import hubhop_native.paths_ref as _paths  # type: ignore[no-redef]
    import hubhop_native.scoring_ref as _scoring  # type: ignore[no-redef]

    IMPLEMENTATION = "numpy"
    FALLBACK_REASON = f"numba unavailable ({type(exc).__name__}: {exc})"
else:
    IMPLEMENTATION = "numba"

decide = _scoring.decide
shortest_paths = _paths.shortest_paths


def warm_up() -> float:
    """Run every kernel once on a tiny input (compiling or loading from cache); seconds taken."""
    started = time.perf_counter()
    indptr, indices, rtt = csr.links_to_csr(
        2, np.array([0], np.int32), np.array([1], np.int32), np.array([1.0], np.float64)
    )
    latency = np.zeros(2, np.float64)
    shortest_paths(
        indptr, indices, rtt, 0, 0.1,
        np.zeros((2, 2), np.float64), np.zeros(2, np.float64), np.zeros(2, np.uint8),
        latency, np.zeros(2, np.int32), np.zeros(2, np.int32), np.zeros(2, np.uint8),
    )  # fmt: skip
    rows = 1
    num = np.zeros((col.ROW_FIELDS, rows), np.float64)
    num[col.ROW_SLOTS] = 1.0
    decide(
        np.zeros(rows, np.int32), np.ones(rows, np.uint8), np.zeros(rows, np.int32),
        np.ones((rows, 1), np.uint64), num, latency,
        0, -1, 1, 1.0, 1.0, 0.0, 0.0, 0.1, np.ones(1, np.uint64),
        np.zeros(rows, np.uint32), np.zeros(rows, np.float64), np.zeros(rows, np.float64),
    )  # fmt: skip
    return time.perf_counter() - started
