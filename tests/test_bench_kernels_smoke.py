"""`python -m bench kernels --quick` runs end to end, as a user would run it.

This checks that the benchmark builds its inputs, checks the implementations against each
other, times every implementation at every size, measures the cold starts, writes its JSON and
prints its tables. It asserts no timings: those belong to the benchmark's report, and a shared
CI box is too noisy for thresholds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_runs import run_quick

# The quick plan takes about 10 s; an empty-cache compile on a loaded 2-core box can add a lot.
TIMEOUT_S = 180

DECIDE_SIZES = {"100", "1000", "10000", "100000"}
PYTHON_LOOP_SIZES = {"100", "1000", "10000"}  # the quick plan skips 100,000 rows for the loop
PATH_SIZES = {"100", "1000", "10000"}


@pytest.mark.slow
def test_kernels_quick_run_writes_results_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, document = run_quick("kernels", out, timeout_s=TIMEOUT_S)
    assert document["machine"]["cpu_model"]
    results = document["results"]

    expected = {
        ("decide", "numba"): DECIDE_SIZES,
        ("decide", "numpy_ref"): DECIDE_SIZES,
        ("decide", "python_loop"): PYTHON_LOOP_SIZES,
        ("paths", "numba"): PATH_SIZES,
        ("paths", "numpy_ref"): PATH_SIZES,
    }
    for (group, impl), sizes in expected.items():
        by_size = results[group][impl]
        assert set(by_size) == sizes, (group, impl)
        for size, stats in by_size.items():
            assert stats["n"] > 0, (group, impl, size)
            assert stats["median"] > 0, (group, impl, size)
            assert stats["p90"] >= stats["median"], (group, impl, size)
    for impl in ("python_noop", "numba_noop"):
        assert all(s["median"] > 0 for s in results["floor"][impl].values()), impl

    cold = results["cold_start"]
    for kind in ("baseline", "no_cache", "warm_cache"):
        assert cold[kind]["n"] >= 1, kind
        assert cold[kind]["median_s"] > 0, kind

    # Before timing, the Python loop was checked against the kernel on every size it runs at.
    for size in PYTHON_LOOP_SIZES:
        assert document["inputs"]["decide"][size]["python_loop_checked"] > 0, size
    assert len(document["targets"]) == 6
    assert all(t["pass"] in (True, False) for t in document["targets"])

    for title in ("Decision:", "Path recomputation:", "Cold start:", "Targets"):
        assert title in stdout, title
    for row in ("10,000 / numba", "100,000 / numpy_ref", "10,000 / python_loop"):
        assert row in stdout, row
    assert "PASS" in stdout or "FAIL" in stdout
    if "plot skipped" not in stdout:
        assert (out / "kernels.png").stat().st_size > 0
