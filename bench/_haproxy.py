"""HAProxy as the comparison proxy: finding (or installing) it, and its generated config.

Rules:
- HAProxy is installed only when the operator asks (`--install`): a benchmark must not change
  the machine behind anyone's back. Without it, the HAProxy variant is skipped with a message.
- The config is written into the benchmark's temporary directory; nothing under /etc is read
  or changed. HAProxy runs in the foreground (`-db`), so it is one process with one PID.
- It binds a loopback address only, and forwards over pooled keep-alive connections, as an
  operator would configure it in front of an inference server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Where the Debian package puts the binary; root's PATH has it, a user's may not.
CANDIDATE_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
# apt-get over a slow mirror can take a while; bound it so a bench never hangs on it.
INSTALL_TIMEOUT_S = 300.0


def find_haproxy() -> str | None:
    found = shutil.which("haproxy")
    if found:
        return found
    return next((path for path in CANDIDATE_PATHS if os.access(path, os.X_OK)), None)


def install_haproxy() -> tuple[str | None, str]:
    """`apt-get install -y haproxy` (with `apt-get update` first); returns (path, message)."""
    if shutil.which("apt-get") is None:
        return None, "apt-get is not available here"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log: list[str] = []
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "haproxy"],
    ):
        try:
            done = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(argv)}` took over {INSTALL_TIMEOUT_S:.0f} s"
        log.append(done.stdout[-500:] + done.stderr[-500:])
        if done.returncode != 0:
            return None, f"`{' '.join(argv)}` failed ({done.returncode}): {log[-1].strip()}"
    path = find_haproxy()
    return path, "installed" if path else "installed, but no haproxy binary was found"


def find_or_install(skip: bool, install: bool) -> tuple[str | None, str]:
    """(the haproxy binary, "") or (None, why its variants are skipped): `skip` is the
    benchmark's --no-haproxy, `install` its --install."""
    if skip:
        return None, "skipped: --no-haproxy was given"
    binary = find_haproxy()
    if binary is not None:
        return binary, ""
    if not install:
        return None, (
            "skipped: haproxy is not installed. Install it (Debian: apt-get install haproxy) "
            "or run this benchmark with --install to have it installed."
        )
    print("haproxy is not installed; --install given: apt-get update && apt-get install haproxy")
    binary, message = install_haproxy()
    if binary is None:
        return None, f"skipped: installing haproxy failed: {message}"
    return binary, ""


def haproxy_version(binary: str) -> str:
    try:
        done = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = done.stdout.strip().splitlines()
    return first[0] if first else "unknown"


def haproxy_config(listen_host: str, listen_port: int, backend_host: str, backend_port: int) -> str:
    """An HTTP-mode reverse proxy to one server, with keep-alive on both sides."""
    return f"""\
global
    # One thread: the same CPU budget as the single-threaded hubhop event loop it is compared
    # with, and on a 2-core box a second thread would only compete with the client and backend.
    nbthread 1
    maxconn 1024

defaults
    mode http
    # Keep-alive to the client and to the server: the way it is run in front of a model server.
    option http-keep-alive
    # Reuse idle server connections across client connections, like hubhop's pool.
    http-reuse always
    timeout connect 2s
    # Long enough for a 16 MB upload on a loaded box; only stops a stuck peer.
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench_in
    bind {listen_host}:{listen_port}
    default_backend bench_out

backend bench_out
    server demo {backend_host}:{backend_port}
"""


def write_config(workdir: Path, text: str) -> Path:
    path = workdir / "haproxy.cfg"
    path.write_text(text)
    return path


def haproxy_argv(binary: str, config_path: Path) -> list[str]:
    # -db: foreground, no daemon fork, so the PID we hold is the process serving.
    return [binary, "-db", "-f", str(config_path)]
