"""The daemon as operators run it: a real `hubhop run` process, signals, systemd's notify socket.

Each test starts its own demo backend and node processes on loopback and stops them by PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers
from tests.procs import (
    Proc,
    node_config,
    reset_peak_rss,
    spawn_demo_backend,
    spawn_node,
    vm_kib,
)

MIB = 1024 * 1024
NOTIFY_WAIT_S = 30.0  # bound on any one systemd message arriving (cold CI boxes are slow)


class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET, as systemd holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, predicate: str) -> str:
        """Return the first message (since the last match) containing `predicate`."""
        deadline = time.monotonic() + NOTIFY_WAIT_S
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append(message)
            if predicate in message:
                return message
        raise AssertionError(f"no {predicate!r} within {NOTIFY_WAIT_S} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Proc]:
    running = spawn_demo_backend(
        tmp_path, "--models", "demo-llm,ct-triage", "--service-ms", "const:5", "--token-rate", "20"
    )
    yield running
    running.stop()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def get_json(url: str) -> tuple[int, dict[str, object]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def served_models(node: Proc) -> list[str]:
    status, body = get_json(f"{node.url}/v1/models")
    assert status == 200
    return [m["id"] for m in body["data"]]  # type: ignore[index, union-attr]


@pytest.mark.slow
async def test_200_mb_upload_streams_through_in_bounded_memory(
    tmp_path: Path, backend: Proc
) -> None:
    node = spawn_node(write_config(tmp_path, node_config(backend.url)))
    try:
        size = 200 * MIB
        slab = os.urandom(MIB)
        header = binary_infer_header("ct", size)
        headers = binary_infer_headers(header)
        url = f"{node.url}/v2/models/ct-triage/infer"
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            # One small request first, so the baseline holds a warmed-up proxy path.
            async with http.post(url, data=header + slab, headers=headers) as response:
                assert response.status == 400  # sizes disagree: the backend says so
            reset_peak_rss(node.pid)
            baseline_kib = vm_kib(node.pid, "VmRSS")

            async def body():  # type: ignore[no-untyped-def]
                yield header
                for _ in range(200):
                    yield slab

            async with http.post(url, data=body(), headers=headers) as response:
                assert response.status == 200
                outputs = {o["name"]: o["data"][0] for o in (await response.json())["outputs"]}
        peak_kib = vm_kib(node.pid, "VmHWM")
    finally:
        assert node.stop() == 0
    crc = 0
    for _ in range(200):
        crc = zlib.crc32(slab, crc)
    assert outputs == {"ct_nbytes": size, "ct_crc32": crc}
    growth_mib = (peak_kib - baseline_kib) / 1024
    assert growth_mib < 32, f"daemon grew by {growth_mib:.1f} MiB passing a 200 MiB body"


@pytest.mark.slow
def test_systemd_notify_ready_watchdog_reload_stopping(
    tmp_path: Path, backend: Proc, notify: NotifySocket
) -> None:
    node = spawn_node(
        write_config(tmp_path, node_config(backend.url)),
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"},
    )
    try:
        ready = notify.wait_for("READY=1")
        assert "STATUS=" in ready
        notify.wait_for("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1")  # keeps pinging from the loop, at half of WATCHDOG_USEC
        node.process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1")
        assert "MONOTONIC_USEC=" in reloading
        usec = int(reloading.split("MONOTONIC_USEC=")[1].split()[0])
        assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000
        notify.wait_for("READY=1")
        node.process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert node.process.wait(30) == 0
    finally:
        node.stop()


@pytest.mark.slow
async def test_request_in_flight_at_sigterm_completes(tmp_path: Path, backend: Proc) -> None:
    node = spawn_node(write_config(tmp_path, node_config(backend.url, drain_grace_s=20)))
    try:
        body = {"model": "demo-llm", "stream": True, "max_tokens": 20,
                "messages": [{"role": "user", "content": "read this CT"}]}  # fmt: skip
        events: list[str] = []
        timeout = aiohttp.ClientTimeout(total=60)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(f"{node.url}/v1/chat/completions", json=body) as response,
        ):
            assert response.status == 200
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    events.append(line[6:])
                    if len(events) == 1:  # the answer has started: now stop the daemon
                        node.process.send_signal(signal.SIGTERM)
        assert events[-1] == "[DONE]"
        tokens = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
        assert len([t for t in tokens if t]) == 20
        assert node.process.wait(30) == 0
        assert "draining" in node.log_tail()
        with pytest.raises(OSError):  # the listener is closed: new work goes elsewhere
            socket.create_connection(("127.0.1.1", int(node.url.rsplit(":", 1)[1])), timeout=5)
    finally:
        node.stop()


@pytest.mark.slow
def test_sighup_with_broken_file_keeps_old_config_and_good_file_swaps(
    tmp_path: Path, backend: Proc, notify: NotifySocket
) -> None:
    config = write_config(tmp_path, node_config(backend.url, models=("demo-llm",)))
    node = spawn_node(config, env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        notify.wait_for("READY=1")
        assert served_models(node) == ["demo-llm"]

        config.write_text(node_config(backend.url) + "slot = 4\n[[broken")
        node.process.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        assert "kept" in notify.wait_for("READY=1")
        assert served_models(node) == ["demo-llm"]
        assert "reload refused" in node.log_tail()
        assert "invalid TOML" in node.log_tail()

        config.write_text(node_config(backend.url, models=("demo-llm", "ct-triage")))
        node.process.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        assert "reloaded" in notify.wait_for("READY=1")
        assert served_models(node) == ["demo-llm", "ct-triage"]
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0


async def test_second_sigterm_exits_at_once(
    tmp_path: Path, backend: Proc, notify: NotifySocket
) -> None:
    node = spawn_node(
        write_config(tmp_path, node_config(backend.url, drain_grace_s=60)),
        env={"NOTIFY_SOCKET": str(notify.path)},
    )
    body = {"model": "demo-llm", "stream": True, "max_tokens": 2000,
            "messages": [{"role": "user", "content": "a long report"}]}  # fmt: skip
    try:
        notify.wait_for("READY=1")
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
            http.post(f"{node.url}/v1/chat/completions", json=body) as response,
        ):
            assert response.status == 200
            await response.content.readline()  # a long answer is under way: the drain must wait
            node.process.send_signal(signal.SIGTERM)
            notify.wait_for("STOPPING=1")
            node.process.send_signal(signal.SIGTERM)
            assert node.process.wait(10) == 128 + signal.SIGTERM
    finally:
        node.stop()


def test_listen_address_in_use_is_a_clear_error(tmp_path: Path, backend: Proc) -> None:
    holder = socket.socket()
    holder.bind(("127.0.1.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = write_config(tmp_path, node_config(backend.url).replace(':0"', f':{port}"', 1))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hubhop", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.1.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_kernels_are_warm_before_ready_and_cached_where_configured(
    tmp_path: Path, backend: Proc, notify: NotifySocket
) -> None:
    cache = tmp_path / "kernel-cache"
    text = node_config(backend.url) + f'[kernels]\ncache_dir = "{cache}"\n'
    config = write_config(tmp_path, text)
    snapshots = []
    for _ in ("cold start", "warm start"):
        node = spawn_node(config, env={"NOTIFY_SOCKET": str(notify.path)})
        try:
            notify.wait_for("READY=1")
            log = node.log_tail()
            assert "routing kernels ready (numba)" in log
            assert log.index("routing kernels ready") < log.index("serving on")
        finally:
            assert node.stop() == 0
        snapshots.append({p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()})
    cold, warm = snapshots
    # numba's cache for both kernel modules is where the config said ...
    assert {"scoring", "paths"} <= {p.name.split(".")[0] for p in cold if p.suffix == ".nbi"}
    # ... and the second start loaded it: nothing was compiled or written again.
    assert warm == cold
