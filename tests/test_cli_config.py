"""The real `hubhop` command on good and bad config files, run as a subprocess.

What an operator sees: `check-config` exits 0 for a good file and 78 (EX_CONFIG) for a bad one,
with one line per fault on stderr naming the file and the key, and never a Python traceback.
`hubhop run` refuses a bad file the same way, before it starts anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EX_CONFIG = 78

GOOD = """
[node]
name = "wuhan-union-hospital"
role = "edge"
region = "hubei"
city = "wuhan"

[http]
listen = "127.0.1.1:18080"

[[backends]]
name = "ascend0"
url = "http://127.0.2.1:19000"
protocol = "openai"
models = ["qwen2.5-7b-instruct"]
chip = "ascend-910b"
slots = 4
"""


def hubhop(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)  # never talk to a real service manager from a test
    paths = [str(REPO / "daemon"), str(REPO / "native")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run(
        [sys.executable, "-m", "hubhop", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert 'File "' not in output, output


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_version() -> None:
    result = hubhop("version")
    assert result.returncode == 0, result.stderr
    from hubhop import __version__

    assert result.stdout.strip() == f"hubhop {__version__}"


def test_check_config_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = hubhop("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    assert result.stdout.startswith(f"{path}: ok")
    assert "wuhan-union-hospital" in result.stdout
    assert "127.0.1.1:18080" in result.stdout
    assert result.stderr == ""


BAD_CASES = {
    "unknown key": (
        GOOD.replace("slots = 4", "slot = 4"),
        ["backends[0].slot: unknown key"],
    ),
    "wrong type": (
        GOOD.replace("slots = 4", 'slots = "4"'),
        ["backends[0].slots: must be an integer, got string"],
    ),
    "out of range": (
        GOOD.replace("slots = 4", "slots = 0\ngreen_share = 1.5"),
        [
            "backends[0].slots: 0 is out of range [1, 1000000]",
            "backends[0].green_share: 1.5 is out of range [0.0, 1.0]",
        ],
    ),
    "bad role": (
        GOOD.replace('role = "edge"', 'role = "router"'),
        ["node.role: 'router' is not one of edge, city, hub"],
    ),
    "missing listen": (
        GOOD.replace('listen = "127.0.1.1:18080"', ""),
        ["http.listen: is required"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), BAD_CASES.values(), ids=BAD_CASES.keys())
def test_check_config_bad_file(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    result = hubhop("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [f"{path}: {line}" for line in expected]
    assert result.stdout == ""


def test_check_config_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('role = "edge"', "role = edge"))
    result = hubhop("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: invalid TOML: ")
    assert "line 4" in line


def test_check_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = hubhop("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [f"{path}: cannot read: No such file or directory"]


def test_check_config_directory_and_non_utf8(tmp_path: Path) -> None:
    result = hubhop("check-config", str(tmp_path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [f"{tmp_path}: cannot read: Is a directory"]

    path = tmp_path / "latin1.toml"
    path.write_bytes(GOOD.replace("wuhan-union-hospital", "wuhan-\xe9").encode("latin-1"))
    result = hubhop("check-config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: not UTF-8 text")


def test_check_config_relative_path_is_named_as_given(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("slots = 4", "slots = -1"), name="edge.toml")
    result = hubhop("check-config", "edge.toml", cwd=tmp_path)
    assert result.returncode == EX_CONFIG
    assert result.stderr.splitlines() == [
        "edge.toml: backends[0].slots: -1 is out of range [1, 1000000]"
    ]


def test_check_config_without_a_file_is_a_usage_error() -> None:
    result = hubhop("check-config")
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "usage:" in result.stderr


def test_run_with_bad_config_exits_78_before_starting(tmp_path: Path) -> None:
    # The listen address is free to bind, so reaching "start" would be noticed as a hang or a
    # listening socket; the command must refuse first.
    path = write(tmp_path, GOOD.replace("slots = 4", "slots = 0\ncolour = 'blue'"))
    result = hubhop("run", "--config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    assert sorted(result.stderr.splitlines()) == sorted(
        [
            f"{path}: backends[0].slots: 0 is out of range [1, 1000000]",
            f"{path}: backends[0].colour: unknown key",
        ]
    )


def test_run_with_missing_config_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = hubhop("run", "--config", str(path))
    assert result.returncode == EX_CONFIG
    assert_no_traceback(result)
    assert result.stderr.splitlines() == [f"{path}: cannot read: No such file or directory"]


@pytest.mark.parametrize("role", ["edge", "city", "hub"])
def test_shipped_example_configs_name_each_missing_credential(role: str) -> None:
    # Outside the unit the credentials are not there: the ExecStartPre check says which, each
    # on its own line, and exits 78 so systemd does not restart in a loop. (With them in place
    # the examples pass: tests/test_example_configs.py.)
    path = REPO / "systemd" / f"{role}.toml"
    result = hubhop("check-config", str(path))
    assert result.returncode == 78
    assert_no_traceback(result)
    credentials = f"/run/credentials/hubhop@{role}.service/"
    missing = sorted(
        line.split(":")[0].removeprefix(credentials) for line in result.stderr.splitlines()
    )
    assert missing == ["gossip-keyring", "tls-ca.pem", "tls-cert.pem", "tls-key.pem"]
