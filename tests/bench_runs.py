"""Running a benchmark the way a user does, for the smoke tests: one place for the subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_quick(name: str, out: Path, *extra: str, timeout_s: float) -> tuple[str, dict[str, Any]]:
    """`python -m bench NAME --quick --out OUT EXTRA...`; its stdout and its JSON document.

    Fails the test with the benchmark's whole output when it exits non-zero.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick", "--out", str(out), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    document: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    assert document["benchmark"] == name
    assert document["machine"]["cores"] >= 1
    return done.stdout, document
