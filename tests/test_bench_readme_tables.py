"""The README tables are regenerated from result files: `python -m bench tables` and `python -m
bench` running every benchmark. Pure: temporary files and fake benchmarks, no processes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bench import __main__ as bench_cli
from bench import readme_tables, registry
from bench.marked_regions import MarkerError, find_regions, rewrite

PAGE = """# Title

Prose before.

<!-- bench:proxy:begin -->
old proxy table
<!-- bench:proxy:end -->

Prose between.

<!-- bench:kernels:begin -->
old kernels table
<!-- bench:kernels:end -->

Prose after.
"""


def test_rewrite_replaces_only_the_regions_it_is_given() -> None:
    new = rewrite(PAGE, {"proxy": "| a | b |\n| --- | ---: |\n| x | 1 |"}, "README.md")

    assert "old proxy table" not in new
    assert "<!-- bench:proxy:begin -->\n\n| a | b |\n| --- | ---: |\n| x | 1 |\n\n" in new
    assert "<!-- bench:proxy:end -->" in new
    # The region it has nothing for, and all prose, stay exactly as they were.
    assert "<!-- bench:kernels:begin -->\nold kernels table\n<!-- bench:kernels:end -->" in new
    for prose in ("# Title\n\nProse before.\n", "Prose between.", "Prose after.\n"):
        assert prose in new


def test_rewriting_twice_gives_the_same_text() -> None:
    contents = {"proxy": "table one", "kernels": "table two\n"}
    once = rewrite(PAGE, contents, "README.md")
    assert rewrite(once, contents, "README.md") == once


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "<!-- bench:proxy:begin -->\nno end\n",
            "README.md:1: region 'proxy' begins and never ends",
        ),
        (
            "text\n<!-- bench:proxy:end -->\n",
            "README.md:2: end of region 'proxy' with no region open",
        ),
        (
            "<!-- bench:a:begin -->\n<!-- bench:b:begin -->\n<!-- bench:b:end -->\n"
            "<!-- bench:a:end -->\n",
            "README.md:2: region 'b' begins inside region 'a'",
        ),
        (
            "<!-- bench:a:begin -->\n<!-- bench:a:end -->\n<!-- bench:a:begin -->\n"
            "<!-- bench:a:end -->\n",
            "README.md:3: region 'a' appears twice",
        ),
        ("<!-- bench:proxy:start -->\n", "README.md:1: malformed marker"),
        ("<!--bench:proxy:begin-->\n", "README.md:1: malformed marker"),
    ],
)
def test_markers_that_do_not_pair_up_are_an_error_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        find_regions(text, "README.md")


# --- refreshing READMEs from result files -----------------------------------------------------


def _document(date: str, quick: bool, figure: int) -> dict[str, Any]:
    return {
        "benchmark": "proxy",
        "quick": quick,
        "machine": {
            "date": date,
            "cpu_model": "Test CPU 9000",
            "cores": 2,
            "python": "3.11.7",
            "git_commit": "0123456789abcdef",
            "git_dirty": False,
        },
        "figure": figure,
    }


def _fake_tables(name: str) -> readme_tables.MarkdownTables:
    def tables(document: dict[str, Any]) -> dict[str, str]:
        return {name: f"{name} figure {document['figure']}", f"{name}-detail": "detail"}

    return tables


@pytest.fixture
def repo(tmp_path: Path) -> SimpleNamespace:
    """A README with proxy and kernels regions, a bench/README with proxy's detail, and empty
    results and evidence folders."""
    readme = tmp_path / "README.md"
    readme.write_text(PAGE)
    detail = tmp_path / "bench" / "README.md"
    detail.parent.mkdir()
    detail.write_text("<!-- bench:proxy-detail:begin -->\nold\n<!-- bench:proxy-detail:end -->\n")
    return SimpleNamespace(
        root=tmp_path,
        readme=readme,
        detail=detail,
        results=tmp_path / "bench" / "results",
        evidence=tmp_path / "docs" / "bench",
    )


def _write_result(folder: Path, name: str, document: dict[str, Any], png: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(document))
    if png:
        (folder / f"{name}.png").write_bytes(b"\x89PNG fake")


def _refresh(repo: SimpleNamespace, load: Any = _fake_tables) -> readme_tables.Outcome:
    return readme_tables.refresh(
        ["proxy", "kernels"],
        load,
        documents=[repo.readme, repo.detail],
        results_dir=repo.results,
        evidence_dir=repo.evidence,
        root=repo.root,
    )


def test_a_fresh_result_fills_its_regions_with_their_source_and_is_kept_as_evidence(
    repo: SimpleNamespace,
) -> None:
    _write_result(repo.results / "proxy", "proxy", _document("2026-11-24T10:00:00+00:00", True, 7))

    outcome = _refresh(repo)

    readme = repo.readme.read_text()
    assert "proxy figure 7" in readme
    source = next(line for line in readme.splitlines() if line.startswith("*Generated"))
    for shown in ("a quick pass", "2026-11-24 10:00:00 UTC", "Test CPU 9000", "2 cores"):
        assert shown in source
    assert "commit 0123456789" in source
    assert "`docs/bench/proxy.json`" in source
    assert "detail" in repo.detail.read_text()
    # The result and its plot are copied where git keeps them, byte for byte.
    assert (repo.evidence / "proxy.json").read_text() == (
        repo.results / "proxy" / "proxy.json"
    ).read_text()
    assert (repo.evidence / "proxy.png").read_bytes() == b"\x89PNG fake"
    assert outcome.errors == []


def test_a_benchmark_without_any_result_leaves_its_region_as_it_is(repo: SimpleNamespace) -> None:
    _write_result(repo.results / "proxy", "proxy", _document("2026-11-24T10:00:00+00:00", False, 7))

    outcome = _refresh(repo)

    assert "<!-- bench:kernels:begin -->\nold kernels table\n" in repo.readme.read_text()
    assert any("kernels: no result file" in note for note in outcome.notes)
    assert outcome.errors == []


def test_with_no_fresh_result_the_committed_copy_is_used_and_not_copied_again(
    repo: SimpleNamespace,
) -> None:
    _write_result(repo.evidence, "proxy", _document("2026-11-20T10:00:00+00:00", False, 3))

    _refresh(repo)

    readme = repo.readme.read_text()
    assert "proxy figure 3" in readme
    assert "the full run of 2026-11-20" in readme
    assert not repo.results.exists()


def test_a_committed_result_newer_than_the_local_one_wins(repo: SimpleNamespace) -> None:
    stale = _document("2026-11-20T10:00:00+00:00", True, 1)
    newer = _document("2026-11-24T10:00:00+00:00", False, 2)
    _write_result(repo.results / "proxy", "proxy", stale)
    _write_result(repo.evidence, "proxy", newer)

    _refresh(repo)

    assert "proxy figure 2" in repo.readme.read_text()
    assert json.loads((repo.evidence / "proxy.json").read_text())["figure"] == 2


def test_a_marker_of_no_benchmark_is_an_error_and_its_file_is_left_untouched(
    repo: SimpleNamespace,
) -> None:
    text = PAGE + "<!-- bench:proxxy:begin -->\n<!-- bench:proxxy:end -->\n"
    repo.readme.write_text(text)
    _write_result(repo.results / "proxy", "proxy", _document("2026-11-24T10:00:00+00:00", True, 7))

    outcome = _refresh(repo)

    assert repo.readme.read_text() == text
    assert any("region 'proxxy' belongs to no benchmark" in e for e in outcome.errors)
    # The other file is still refreshed.
    assert "detail" in repo.detail.read_text()


def test_unbalanced_markers_are_an_error_and_the_file_is_left_untouched(
    repo: SimpleNamespace,
) -> None:
    text = PAGE.replace("<!-- bench:kernels:end -->\n", "")
    repo.readme.write_text(text)
    _write_result(repo.results / "proxy", "proxy", _document("2026-11-24T10:00:00+00:00", True, 7))

    outcome = _refresh(repo)

    assert repo.readme.read_text() == text
    assert any("region 'kernels' begins and never ends" in e for e in outcome.errors)


def test_a_marked_region_the_benchmark_does_not_produce_is_an_error(repo: SimpleNamespace) -> None:
    repo.detail.write_text(
        "<!-- bench:proxy-upload:begin -->\nkept\n<!-- bench:proxy-upload:end -->\n"
    )
    _write_result(repo.results / "proxy", "proxy", _document("2026-11-24T10:00:00+00:00", True, 7))

    outcome = _refresh(repo)

    assert "kept" in repo.detail.read_text()
    assert "proxy figure 7" in repo.readme.read_text()
    assert any("'proxy-upload' is marked" in e for e in outcome.errors)
    assert any("proxy-detail" in note for note in outcome.notes)  # produced, shown nowhere


def test_a_benchmark_whose_tables_fail_keeps_its_regions_and_the_others_are_filled(
    repo: SimpleNamespace,
) -> None:
    for name in ("proxy", "kernels"):
        _write_result(repo.results / name, name, _document("2026-11-24T10:00:00+00:00", True, 5))

    def load(name: str) -> readme_tables.MarkdownTables:
        if name == "proxy":
            raise ImportError("No module named 'bench.proxy'")
        return _fake_tables(name)

    outcome = _refresh(repo, load)

    readme = repo.readme.read_text()
    assert "old proxy table" in readme
    assert "kernels figure 5" in readme
    assert any(e.startswith("proxy: no tables from") for e in outcome.errors)


# --- python -m bench ------------------------------------------------------------------------


class _FakeBenchmark:
    SUMMARY = "a fake"

    def __init__(self, outcome: int | Exception) -> None:
        self.outcome = outcome
        self.quick_seen: list[bool] = []

    @staticmethod
    def add_arguments(parser: Any) -> None:
        parser.add_argument("--quick", action="store_true")

    def run(self, ns: Any) -> int:
        self.quick_seen.append(ns.quick)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def fake_benchmarks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    fakes: dict[str, Any] = {
        "first": _FakeBenchmark(RuntimeError("it broke")),
        "second": _FakeBenchmark(0),
    }

    def load(name: str) -> Any:
        if name == "missing":
            raise ModuleNotFoundError("No module named 'bench.missing'")
        return fakes[name]

    monkeypatch.setattr(registry, "BENCHMARKS", {"first": "", "missing": "", "second": ""})
    monkeypatch.setattr(registry, "load", load)
    tables_runs: list[int] = []

    def refresh_tables() -> int:
        tables_runs.append(1)
        return 0

    monkeypatch.setattr(readme_tables, "main", refresh_tables)
    fakes["tables_runs"] = tables_runs
    return fakes


def test_running_all_goes_past_failures_reports_each_and_exits_1(
    fake_benchmarks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status = bench_cli.main(["--quick"])

    out = capsys.readouterr().out
    assert status == 1
    assert fake_benchmarks["second"].quick_seen == [True]  # ran after the failure, quick
    report = out[out.index("Benchmarks, short passes") :]
    assert "first" in report and "RuntimeError: it broke" in report
    assert "missing" in report and "No module named 'bench.missing'" in report
    assert "second" in report and "ok" in report
    assert "failed: first, missing" in out
    assert fake_benchmarks["tables_runs"] == [1]  # the tables are refreshed all the same


def test_one_benchmark_takes_the_quick_flag_before_its_name_and_leaves_the_tables(
    fake_benchmarks: dict[str, Any],
) -> None:
    assert bench_cli.main(["--quick", "second"]) == 0
    assert bench_cli.main(["second"]) == 0

    assert fake_benchmarks["second"].quick_seen == [True, False]
    assert fake_benchmarks["tables_runs"] == []
