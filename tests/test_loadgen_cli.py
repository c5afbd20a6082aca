"""The `hubhop loadgen` command as an engineer runs it.

- A bad workload file exits 78 (EX_CONFIG, like a bad node config) with one line per fault on
  stderr naming the file and the key, and sends nothing; a bad flag exits 2; a token variable
  the file names but the environment lacks exits 78.
- With --json it prints the JSON result instead of tables; a run in which not one request was
  answered (nobody listening at the entry point) exits 1, every request a `connect` error.
- Against the real demo backend (a process, with a fixed 50 ms service time): it sends the
  planned number of requests, prints its tables, writes the JSON result (machine, args, seed,
  workload, figures) and the CDF plot, and exits 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hubhop.cli import main
from tests.procs import spawn_demo_backend

REPO = Path(__file__).resolve().parent.parent
EX_USAGE = 2
EX_CONFIG = 78

GOOD = """
[run]
duration_s = 2.0
arrival = "fixed"
seed = 3

[[streams]]
name = "ct-read"
entry = "http://127.0.0.1:1"
protocol = "kserve_v2_binary"
model = "ct-triage"
rate = 20
lane = "emergency"
tier = "city"
body_bytes = 65536

[[streams]]
name = "chat"
entry = "http://127.0.0.1:1"
protocol = "openai_chat"
model = "demo-llm"
rate = 10
lane = "standard"
stream = true
max_tokens = 4
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "workload.toml"
    path.write_text(text)
    return str(path)


def test_a_bad_workload_file_exits_78_naming_each_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = GOOD.replace('tier = "city"', 'tier = "town"').replace("rate = 10", "rate = -1")
    path = write(tmp_path, bad + "colour = 'red'\n")
    assert main(["loadgen", path]) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}: streams[0].tier: 'town' is not one of city, province, region, national, any",
        f"{path}: streams[1].rate: -1 is out of range [1e-05, 100000.0]",
        f"{path}: streams[1].colour: unknown key",
    ]
    assert main(["loadgen", str(tmp_path / "missing.toml")]) == EX_CONFIG
    assert "missing.toml: cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate-scale", "0"], "--rate-scale must be more than 0"),
        (["--duration", "-1"], "--duration must be more than 0 s"),
        (["--entry", "127.0.0.1:8080"], "--entry: '127.0.0.1:8080' is not an http://"),
        (["--seed", "-3"], "--seed must be 0 or more"),
    ],
)
def test_bad_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["loadgen", write(tmp_path, GOOD), *flags]) == EX_USAGE
    assert message in capsys.readouterr().err


def test_a_token_variable_that_is_not_set_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOADGEN_TEST_TOKEN", raising=False)
    path = write(tmp_path, '[run]\nauth_token_env = "LOADGEN_TEST_TOKEN"\n' + GOOD[6:])
    assert main(["loadgen", path]) == EX_CONFIG
    assert "run.auth_token_env: $LOADGEN_TEST_TOKEN is not set" in capsys.readouterr().err


def test_json_out_and_exit_1_when_nothing_was_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    path = write(tmp_path, GOOD)
    assert main(["loadgen", path, "--entry", nobody, "--duration", "0.2", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    every = document["result"]["all"]
    assert every["sent"] == 6 and every["ok"] == 0  # 30 req/s for 0.2 s
    assert every["errors"] == {"connect": 6}
    assert document["workload"]["duration_s"] == 0.2
    assert document["workload"]["streams"][0]["entries"] == [nobody]


@pytest.mark.slow
def test_a_run_against_the_demo_backend_prints_and_writes_its_results(tmp_path: Path) -> None:
    backend = spawn_demo_backend(
        tmp_path, "--service-ms", "const:50", "--models", "ct-triage,demo-llm",
        "--slots", "16", "--token-rate", "1000", "--seed", "1",
    )  # fmt: skip
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "daemon"), str(REPO)]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hubhop", "loadgen", write(tmp_path, GOOD), "--entry",
             backend.url, "--out", str(out), "--rate-scale", "1.5", "--duration", "2"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
    finally:
        backend.stop()
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    assert "emergency/city" in done.stdout and "standard/default" in done.stdout
    assert "LATENCY_MS" in done.stdout and "Traceback" not in done.stderr
    document = json.loads((out / "workload.json").read_text())
    assert (out / "workload-latency-cdf.png").stat().st_size > 0
    assert document["tool"] == "hubhop loadgen" and document["seed"] == 3
    assert document["machine"]["cores"] and document["machine"]["versions"]["hdrhistogram"]
    assert document["args"]["rate_scale"] == 1.5
    result = document["result"]
    ct, chat = result["groups"]
    assert (ct["sent"], chat["sent"]) == (60, 30)  # 20 and 10 req/s, x1.5, for 2 s
    assert (ct["ok"], chat["ok"]) == (60, 30), result["first_error"]
    assert result["all"]["sent"] == result["sent"] == 90
    # The demo backend serves each KServe call in 50 ms; loopback and the 64 KiB upload add
    # well under a few milliseconds.
    assert 50.0 <= ct["total_ms"]["p50"] <= 50.0 * 1.1
    assert chat["ttfb_ms"]["p50"] < chat["total_ms"]["p50"]  # streamed: first token first
