"""The benchmarks run end to end: `python -m bench proxy_overhead --quick` as a user would run it.

This checks that the benchmark starts its processes, measures every variant, writes its JSON
and prints its table. It asserts no timings: those belong to the benchmark's report, and a
shared CI box is too noisy for thresholds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_runs import run_quick

# The quick plan measures for about 10-20 s; start-up on a loaded 2-core box adds a few more.
TIMEOUT_S = 120


@pytest.mark.slow
def test_proxy_overhead_quick_run_writes_results_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, document = run_quick("proxy_overhead", out, timeout_s=TIMEOUT_S)
    assert document["machine"]["cpu_model"]
    variants = set(document["variants"])
    assert {"direct", "hubhop"} <= variants
    if "haproxy" not in variants:
        assert "haproxy" in document["skipped"]
        assert "HAProxy variant skipped" in stdout
    for workload in ("chat", "kserve_json", "upload_16mb"):
        by_variant = document["results"][workload]
        assert set(by_variant) == variants, workload
        for variant, entry in by_variant.items():
            c1 = entry["c1"]
            assert c1["n"] > 0, (workload, variant)
            assert c1["median_us"] > 0, (workload, variant)
            assert c1["p99_us"] >= c1["median_us"], (workload, variant)
            if workload == "upload_16mb":
                assert c1["mb_per_s"] > 0, variant
            else:
                assert entry["cN"]["req_per_s"] > 0, (workload, variant)

    assert "Small requests" in stdout
    assert "Binary tensor upload" in stdout
    for variant in variants:
        assert f"chat / {variant}" in stdout
    if "plot skipped" not in stdout:
        assert (out / "proxy_overhead.png").stat().st_size > 0
