"""Starting hubhop processes for tests: real processes on loopback, stopped by their PID.

Every wait is bounded; a process that is not ready in time is killed and the test fails with
the tail of its log.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

# A cold start imports aiohttp and numpy; on a loaded 2-core CI box that can take seconds.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(STOP_TIMEOUT_S)


def _pump(stream: object, lines: queue.Queue[str]) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        lines.put(raw.decode(errors="replace").rstrip("\n"))


def spawn_hubhop(
    args: list[str], ready_prefix: str, log_path: Path, env: dict[str, str] | None = None
) -> Running:
    """Run `python -m hubhop ARGS` and wait for its ready line (`<prefix> URL ...`)."""
    full_env = dict(os.environ)
    full_env.pop("NOTIFY_SOCKET", None)
    full_env.update(env or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "hubhop", *args],
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=full_env,
        )
    running = Running(process, "", log_path)
    threading.Thread(target=_pump, args=(process.stdout, running.lines), daemon=True).start()
    try:
        while True:
            line = running.lines.get(timeout=READY_TIMEOUT_S)
            if line.startswith(ready_prefix):
                running.url = line.split()[2]
                return running
    except queue.Empty:
        process.kill()
        process.wait(STOP_TIMEOUT_S)
        raise AssertionError(f"{args[0]} was not ready in time:\n{log_path.read_text()}") from None


def spawn_demo_backend(tmp_path: Path, *extra: str, name: str = "backend") -> Running:
    return spawn_hubhop(
        ["demo-backend", "--port", "0", *extra], "demo-backend ready", tmp_path / f"{name}.log"
    )


def spawn_node(config_path: Path, env: dict[str, str] | None = None) -> Running:
    return spawn_hubhop(
        ["run", "--config", str(config_path)],
        "hubhop ready",
        config_path.with_suffix(".log"),
        env,
    )


def node_config(
    backend_url: str,
    *,
    address: str = "127.0.1.1",
    models: tuple[str, ...] = ("demo-llm", "ct-triage"),
    extra_http: str = "",
    drain_grace_s: float = 10.0,
) -> str:
    """A valid single-node config text fronting one demo backend for both protocols."""
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        '[node]\nname = "test-edge"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "{address}:0"\n{extra_http}'
        f"[lifecycle]\ndrain_grace_s = {drain_grace_s}\n"
        f'[[backends]]\nname = "demo"\nurl = "{backend_url}"\n'
        f'protocol = ["openai", "kserve_v2"]\nmodels = [{model_list}]\nslots = 4\n'
    )


def vm_kib(pid: int, field_name: str) -> int:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM, ...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def reset_peak_rss(pid: int) -> None:
    """Reset the process's peak resident size (VmHWM) so a later read shows a new peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
