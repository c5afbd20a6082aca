"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubhop.io.sd_notify import SdNotifier, monotonic_usec, watchdog_loop


class FakeManager:
    """The service manager's end: a bound datagram socket we read notifications from."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.sock.settimeout(2.0)  # bound every wait: a missing datagram fails, never hangs
        self.address = address

    def recv(self) -> str:
        return self.sock.recv(65536).decode("utf-8")

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        out: list[str] = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(65536).decode("utf-8"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeManager]:
    m = FakeManager(str(tmp_path / "notify.sock"))
    yield m
    m.close()


@pytest.fixture
def notifier(manager: FakeManager) -> Iterator[SdNotifier]:
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": manager.address})
    yield n
    n.close()


def test_ready_with_status_arrives_as_one_datagram(
    manager: FakeManager, notifier: SdNotifier
) -> None:
    assert notifier.enabled
    assert notifier.ready("serving on 127.0.1.1:8080, 2 backend(s)") is True
    assert manager.recv() == "READY=1\nSTATUS=serving on 127.0.1.1:8080, 2 backend(s)"
    assert manager.pending() == []


def test_each_convenience_method_sends_its_assignment(
    manager: FakeManager, notifier: SdNotifier
) -> None:
    notifier.ready()
    notifier.status("draining 3 request(s)")
    notifier.stopping()
    notifier.watchdog()
    assert [manager.recv() for _ in range(4)] == [
        "READY=1",
        "STATUS=draining 3 request(s)",
        "STOPPING=1",
        "WATCHDOG=1",
    ]


def test_reloading_carries_monotonic_usec_of_now(
    manager: FakeManager, notifier: SdNotifier
) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = manager.recv().split("\n")
    assert lines[0] == "RELOADING=1"
    assert len(lines) == 2
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert value.isdigit()
    assert before <= int(value) <= after


def test_reloading_with_status(manager: FakeManager, notifier: SdNotifier) -> None:
    notifier.reloading("reloading /etc/hubhop/edge.toml")
    fields = dict(line.split("=", 1) for line in manager.recv().split("\n"))
    assert fields["RELOADING"] == "1"
    assert fields["STATUS"] == "reloading /etc/hubhop/edge.toml"
    assert int(fields["MONOTONIC_USEC"]) <= monotonic_usec()


def test_notify_with_lines_and_fields(manager: FakeManager, notifier: SdNotifier) -> None:
    assert notifier.notify("STATUS=warming kernels", "X_HUBHOP_PHASE=2", READY=True)
    assert manager.recv() == "STATUS=warming kernels\nX_HUBHOP_PHASE=2\nREADY=1"


def test_utf8_status_arrives_intact(manager: FakeManager, notifier: SdNotifier) -> None:
    notifier.status("武汉 edge: ready")
    assert manager.recv() == "STATUS=武汉 edge: ready"


@pytest.mark.parametrize("bad", ["line one\nREADY=1", "a\rb", "nul\0byte"])
def test_values_with_newlines_are_rejected_and_nothing_is_sent(
    manager: FakeManager, notifier: SdNotifier, bad: str
) -> None:
    with pytest.raises(ValueError):
        notifier.status(bad)
    with pytest.raises(ValueError):
        notifier.ready(bad)
    with pytest.raises(ValueError):
        notifier.notify(STATUS="ok", EXTRA=bad)  # one bad field spoils the whole datagram
    assert manager.pending() == []


@pytest.mark.parametrize("line", ["READY", "ready=1", "=1", "WITH SPACE=1"])
def test_malformed_lines_are_rejected(notifier: SdNotifier, line: str) -> None:
    with pytest.raises(ValueError):
        notifier.notify(line)


def test_empty_notification_is_rejected(notifier: SdNotifier) -> None:
    with pytest.raises(ValueError):
        notifier.notify()


def test_abstract_namespace_socket(tmp_path: Path) -> None:
    name = f"@hubhop-test-{os.getpid()}-{uuid.uuid4().hex}"
    m = FakeManager(name)
    try:
        with SdNotifier.from_environ({"NOTIFY_SOCKET": name}) as n:
            assert n.ready("abstract") is True
        assert m.recv() == "READY=1\nSTATUS=abstract"
    finally:
        m.close()


def test_unset_notify_socket_is_a_no_op() -> None:
    n = SdNotifier.from_environ({})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.reloading() is False
    assert n.watchdog() is False
    n.close()


def test_unusable_notify_socket_value_disables_notifications() -> None:
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": "relative/path.sock"})
    assert not n.enabled
    assert n.ready() is False


def test_from_environ_defaults_to_process_environment(
    manager: FakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", manager.address)
    with SdNotifier.from_environ() as n:
        n.stopping()
    assert manager.recv() == "STOPPING=1"


def test_vanished_socket_does_not_raise_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = FakeManager(str(tmp_path / "gone.sock"))
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": m.address})
    m.close()
    os.unlink(m.address)
    with caplog.at_level(logging.DEBUG, logger="hubhop.io.sd_notify"):
        assert n.ready("nobody listens") is False
        assert n.watchdog() is False
        assert n.stopping() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gone.sock" in warnings[0].getMessage()
    n.close()


def test_manager_restarting_at_the_same_path_is_reached_again(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    first = FakeManager(path)
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": path})
    first.close()
    os.unlink(path)
    assert n.watchdog() is False
    second = FakeManager(path)
    try:
        assert n.watchdog() is True
        assert second.recv() == "WATCHDOG=1"
    finally:
        second.close()
        n.close()


def test_full_receive_queue_does_not_block_or_raise(
    manager: FakeManager, notifier: SdNotifier
) -> None:
    # Nobody reads the manager's socket: the kernel queue fills and sends must fail fast.
    start = time.monotonic()
    results = [notifier.status("x" * 1024) for _ in range(2000)]
    assert time.monotonic() - start < 5.0
    assert results[0] is True
    assert False in results


def test_close_stops_sending_and_is_idempotent(manager: FakeManager, notifier: SdNotifier) -> None:
    notifier.close()
    notifier.close()
    assert not notifier.enabled
    assert notifier.ready() is False
    assert manager.pending() == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "{pid}"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "{other}"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": "{pid}"}, None),
    ],
)
def test_watchdog_interval_from_environment(env: dict[str, str], expected: float | None) -> None:
    pid = os.getpid()
    filled = {k: v.format(pid=pid, other=pid + 1) for k, v in env.items()}
    n = SdNotifier.from_environ(filled)
    assert n.watchdog_interval_s() == expected


def test_watchdog_interval_does_not_need_notify_socket_to_be_read_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = SdNotifier.from_environ()
    monkeypatch.delenv("WATCHDOG_USEC")  # the value seen at start-up is the one that counts
    assert n.watchdog_interval_s() == 2.0


async def test_watchdog_loop_pings_until_cancelled(
    manager: FakeManager, notifier: SdNotifier
) -> None:
    task = asyncio.create_task(watchdog_loop(notifier, 0.01))
    received: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while len(received) < 3 and loop.time() < deadline:
        await asyncio.sleep(0.01)
        received += manager.pending()
    assert received[:3] == ["WATCHDOG=1"] * 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    manager.pending()  # drop anything sent before the cancel landed
    await asyncio.sleep(0.05)  # five intervals: a loop that kept running would have pinged
    assert manager.pending() == []


async def test_blocked_event_loop_misses_pings(manager: FakeManager, notifier: SdNotifier) -> None:
    task = asyncio.create_task(watchdog_loop(notifier, 0.01))
    await asyncio.sleep(0)  # the first ping goes out at once
    manager.pending()
    time.sleep(0.1)  # noqa: ASYNC251 - on purpose: the loop is stuck for ten intervals
    assert manager.pending() == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_loop_without_manager_keeps_running(tmp_path: Path) -> None:
    n = SdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    task = asyncio.create_task(watchdog_loop(n, 0.005))
    await asyncio.sleep(0.03)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    n.close()


async def test_watchdog_loop_rejects_non_positive_interval(notifier: SdNotifier) -> None:
    with pytest.raises(ValueError):
        await asyncio.wait_for(watchdog_loop(notifier, 0), timeout=1.0)
