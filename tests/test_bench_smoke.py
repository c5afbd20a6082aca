"""The benchmarks run end to end: `python -m bench proxy --quick` as a user would run it.

This checks that the benchmark starts its processes, measures every variant, writes its JSON
and prints its tables. It asserts no timings: those belong to the benchmark's report, and a
shared CI box is too noisy for thresholds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_runs import run_quick

# The quick plan measures for about 5-10 s; start-up on a loaded 2-core box adds a few more.
TIMEOUT_S = 120


@pytest.mark.slow
def test_proxy_quick_run_writes_results_and_prints_the_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, document = run_quick("proxy", out, timeout_s=TIMEOUT_S)
    assert document["machine"]["cpu_model"]
    variants = set(document["variants"])
    assert {"direct", "aiohttp-minimal", "hubhop"} <= variants
    if "haproxy" not in variants:
        assert "haproxy" in document["skipped"]
        assert "HAProxy variant skipped" in stdout
    for workload in ("chat", "kserve_json", "upload"):
        by_variant = document["results"][workload]
        assert set(by_variant) == variants, workload
        for variant, entry in by_variant.items():
            c1 = entry["c1"]
            assert c1["n"] > 0, (workload, variant)
            assert c1["median_us"] > 0, (workload, variant)
            assert c1["p99_us"] >= c1["median_us"], (workload, variant)
            proxied = variant != "direct"
            assert (c1["proxy_cpu_us_per_request"] is not None) == proxied, (workload, variant)
            if workload == "upload":
                assert c1["mb_per_s"] > 0, variant
                assert c1["upload_bytes"] == document["parameters"]["upload_bytes"]
                if proxied:
                    assert c1["peak_rss_mib"] > 0, variant
            else:
                assert entry["cN"]["req_per_s"] > 0, (workload, variant)
                assert entry["cN"]["p99_us"] >= entry["cN"]["median_us"], (workload, variant)

    cpu = document["cpu_per_request"]
    assert document["parameters"]["concurrency"] == 32
    for key in ("c1", "cN"):
        assert cpu[key]["hubhop_over_minimal"]["verdict"] in ("met", "missed")
        assert cpu[key]["us_per_request"]["hubhop"]["median"] > 0
    assert cpu["verdict"] in ("met", "missed")

    assert "Small requests, concurrency 1" in stdout
    assert "Small requests, concurrency 32" in stdout
    assert "Binary tensor upload" in stdout
    assert "hubhop <= 1.2x aiohttp-minimal" in stdout
    for variant in variants:
        assert f"chat / {variant}" in stdout
    if "plot skipped" not in stdout:
        assert (out / "proxy.png").stat().st_size > 0
