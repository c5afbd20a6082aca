"""Starting the processes a benchmark measures, and stopping them by their PID.

Rules:
- Every wait is bounded; a process that is not ready in time is killed and the benchmark stops
  with the tail of its log, so a broken daemon is a clear failure rather than a hang.
- Processes are stopped only by the PID this module started them under: SIGTERM, a bounded
  wait, then SIGKILL.
- Servers bind loopback addresses only.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# A cold start imports aiohttp and numpy; on a loaded 2-core box that can take several seconds.
READY_TIMEOUT_S = 60.0
# hubhop drains in-flight work on SIGTERM; the benchmark stops it idle, so this is generous.
STOP_TIMEOUT_S = 15.0
LOG_TAIL_CHARS = 3000


class LaunchError(RuntimeError):
    """A process did not start or did not say it was ready in time."""


@dataclass
class Proc:
    """One started process: its URL once ready, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time this process (all its threads) has used so far."""
        return cpu_seconds(self.pid)

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL: only ever this process, by its PID."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time this process (all its threads) has used so far, in seconds; 0.0 once gone.

    Read from /proc/PID/task/*/schedstat (nanoseconds) rather than /proc/PID/stat, whose
    10 ms ticks are coarser than a whole block of small requests through HAProxy.
    """
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended between the listing and the read
    except OSError:
        return 0.0
    if total_ns:
        return total_ns / 1e9
    return _stat_cpu_seconds(pid)


def vm_kib(pid: int, field_name: str) -> int:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM, ...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def reset_peak_rss(pid: int) -> None:
    """Reset the process's peak resident size (VmHWM) so a later read shows a new peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _stat_cpu_seconds(pid: int) -> float:
    """utime + stime of /proc/PID/stat, for kernels without schedstat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its closing paren are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _pump(stream: object, lines: queue.Queue[str]) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        lines.put(raw.decode(errors="replace").rstrip("\n"))


def popen(
    name: str, argv: list[str], log_path: Path, env_extra: dict[str, str] | None = None
) -> Proc:
    """Start `argv` with stdout read line by line into `proc.lines` and stderr to `log_path`."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)  # a started daemon must not talk to the caller's systemd
    env.update(env_extra or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, env=env
        )
    proc = Proc(name, process, log_path)
    threading.Thread(target=_pump, args=(process.stdout, proc.lines), daemon=True).start()
    return proc


def wait_ready_line(proc: Proc, prefix: str) -> Proc:
    """Wait for a `PREFIX URL ...` line on stdout; the URL becomes `proc.url`."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = proc.lines.get(timeout=max(0.05, min(remaining, 0.5)))
        except queue.Empty:
            line = None
        if line is not None and line.startswith(prefix):
            proc.url = line.split()[len(prefix.split())]
            return proc
        if proc.process.poll() is not None or remaining <= 0:
            proc.stop()
            raise LaunchError(
                f"{proc.name} did not say '{prefix}' "
                f"(exit status {proc.process.poll()}):\n{proc.log_tail()}"
            )


def hubhop_argv(*args: str) -> list[str]:
    """The command line of `hubhop ARGS` with this interpreter (the venv's hubhop)."""
    return [sys.executable, "-m", "hubhop", *args]


def start_demo_backend(workdir: Path, *extra: str) -> Proc:
    proc = popen(
        "demo-backend",
        hubhop_argv("demo-backend", "--port", "0", *extra),
        workdir / "demo-backend.log",
    )
    return wait_ready_line(proc, "demo-backend ready")


def start_hubhop_node(workdir: Path, config_text: str, name: str = "hubhop") -> Proc:
    config_path = workdir / f"{name}.toml"
    config_path.write_text(config_text)
    return run_hubhop_node(config_path)


def run_hubhop_node(config_path: Path, env_extra: dict[str, str] | None = None) -> Proc:
    """`hubhop run` on an existing config file, its log beside the file."""
    argv = hubhop_argv("run", "--config", str(config_path))
    proc = popen(config_path.stem, argv, config_path.with_suffix(".log"), env_extra)
    return wait_ready_line(proc, "hubhop ready")


def free_port(host: str) -> int:
    """A port that was free on `host` a moment ago (for servers that cannot report port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_listening_process(
    name: str, argv: list[str], workdir: Path, host: str, port: int
) -> Proc:
    """Start a server that prints no ready line; ready once its port accepts a connection."""
    proc = popen(name, argv, workdir / f"{name}.log")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.process.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                proc.url = f"http://{host}:{port}"
                return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise LaunchError(
        f"{name} did not accept on {host}:{port} "
        f"(exit status {proc.process.poll()}):\n{proc.log_tail()}"
    )
