"""Where numba cannot run, the daemon routes with the NumPy references instead of not starting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
from hubhop.scoring import kernels
print(kernels.IMPLEMENTATION)
print(kernels.FALLBACK_REASON)
kernels.warm_up()
"""


def test_a_numba_that_fails_to_load_falls_back_to_numpy(tmp_path: Path) -> None:
    # What a sandbox forbidding writable and executable memory does to LLVM at import.
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('cannot allocate executable memory')\n")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    implementation, reason = done.stdout.splitlines()[:2]
    assert implementation == "numpy"
    assert reason == "numba unavailable (RuntimeError: cannot allocate executable memory)"
