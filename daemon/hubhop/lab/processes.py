"""Processes a lab starts (daemons, demo backends, the tools a benchmark compares against), and
stopping them by their PID.

Shared by `hubhop demo`, the benchmarks (`bench/`) and the multi-process tests, so all three
start, wait for and stop processes the same way.

Rules:
- Every wait is bounded; a process that is not ready in time is killed and the caller gets a
  LaunchError with the tail of its log, so a broken daemon is a clear failure rather than a hang.
- Processes are stopped only by the PID this module started them under: SIGTERM, a bounded
  wait, then SIGKILL.
- Each child runs in its own session: a Ctrl-C at the terminal reaches only the caller, which
  then stops every child by PID, rather than each child dying of SIGINT half-way through.
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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

# A cold start imports aiohttp and numpy; on a loaded 2-core box that can take several seconds.
READY_TIMEOUT_S = 60.0
# hubhop drains in-flight work on SIGTERM; a lab stops it when its load has ended, so this is
# generous.
STOP_TIMEOUT_S = 15.0
LOG_TAIL_CHARS = 3000
# Stopping is mostly waiting for each process to drain and exit: threads, not CPU, bound it.
STOP_PARALLEL = 16
# What each kind of process prints on stdout once it serves (followed by its URL).
HUBHOP_READY = "hubhop ready"
DEMO_BACKEND_READY = "demo-backend ready"


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
            argv,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
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


def launch_demo_backend(workdir: Path, *extra: str, name: str = "demo-backend") -> Proc:
    """`hubhop demo-backend --port 0 EXTRA...` started, not yet ready; its log `workdir/NAME.log`.
    (Launch, register, then wait: a caller interrupted while it waits still owns the PID.)"""
    argv = hubhop_argv("demo-backend", "--port", "0", *extra)
    return popen(name, argv, workdir / f"{name}.log")


def start_demo_backend(workdir: Path, *extra: str, name: str = "demo-backend") -> Proc:
    """A demo backend, once it says it is ready (its URL in `proc.url`)."""
    return wait_ready_line(launch_demo_backend(workdir, *extra, name=name), DEMO_BACKEND_READY)


def start_hubhop_node(workdir: Path, config_text: str, name: str = "hubhop") -> Proc:
    config_path = workdir / f"{name}.toml"
    config_path.write_text(config_text)
    return run_hubhop_node(config_path)


def launch_hubhop_node(config_path: Path, env_extra: dict[str, str] | None = None) -> Proc:
    """`hubhop run` on an existing config file, started, not yet ready; its log beside the file."""
    argv = hubhop_argv("run", "--config", str(config_path))
    return popen(config_path.stem, argv, config_path.with_suffix(".log"), env_extra)


def run_hubhop_node(config_path: Path, env_extra: dict[str, str] | None = None) -> Proc:
    """`hubhop run` on an existing config file, once it says it is ready."""
    return wait_ready_line(launch_hubhop_node(config_path, env_extra), HUBHOP_READY)


def run_parallel(jobs: Sequence[Callable[[], object]], workers: int) -> None:
    """Run `jobs` on `workers` threads; the first to raise stops the ones not yet begun, the
    ones running finish, and its exception is raised. So does an interrupt (Ctrl-C)."""
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class Owner:
    """Holds the processes it started (`procs`, any keys) and stops them all by PID, also on
    leaving a `with` block, whatever happened inside it."""

    procs: dict[Any, Proc]

    def stop_all(self) -> dict[int, int | None]:
        """Stop every process started, by PID; each one's exit status by PID."""
        codes = stop_all(self.procs.values())
        self.procs.clear()
        return codes

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def stop_all(procs: Iterable[Proc]) -> dict[int, int | None]:
    """Stop every one of `procs` by its PID, in parallel; each one's exit status by PID (None:
    it outlived even SIGKILL's wait)."""
    chosen = list(procs)
    with ThreadPoolExecutor(STOP_PARALLEL) as pool:
        codes = list(pool.map(lambda proc: proc.stop(), chosen))
    return {proc.pid: code for proc, code in zip(chosen, codes, strict=True)}


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
