"""The admin API's socket and what `hubhop status` / `hubhop keys` make of it, in-process: the
socket file's life (mode, a stale file replaced, a live one refused, removed on stop), bad
requests, the `[admin]` and `keyring_state_file` config, the keyring state file, the renderers."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubhop.cli_admin import ask_admin, keys_change_lines, keys_list_lines, status_lines
from hubhop.core.config import ConfigError, parse_config
from hubhop.core.keyring import Keyring, fingerprint
from hubhop.io.admin_socket import AdminServer, AdminSocketError
from hubhop.io.keyring_state import load_gossip_keyring, save_keyring

K1 = bytes(range(16))
K2 = bytes(range(200, 232))
STATUS = {"node": "n1", "role": "edge", "readiness": "ready"}


@pytest.fixture
def home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hh-admin-", dir="/tmp") as path:
        yield Path(path)


def server(path: Path) -> AdminServer:
    return AdminServer(str(path), lambda: dict(STATUS), lambda: None)


async def ask(path: Path, method: str, url: str, body: dict[str, Any] | None = None) -> object:
    ns = argparse.Namespace(socket=str(path), config=None, json=False, command="status")
    return await asyncio.to_thread(ask_admin, ns, method, url, body)


async def test_the_socket_is_0660_answers_status_and_is_removed_on_stop(home: Path) -> None:
    path = home / "n1.sock"
    admin = server(path)
    await admin.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert await ask(path, "GET", "/admin/v1/status") == STATUS
    finally:
        await admin.close()
    assert not path.exists()
    assert await ask(path, "GET", "/admin/v1/status") == 69  # EX_UNAVAILABLE


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(home: Path) -> None:
    path = home / "n1.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a killed daemon's leftover: bound, nobody listening
    stale.close()
    first = server(path)
    await first.start()
    try:
        with pytest.raises(AdminSocketError, match="another daemon answers"):
            await server(path).start()
        assert await ask(path, "GET", "/admin/v1/status") == STATUS  # the first one is intact
    finally:
        await first.close()
    path.write_text("not a socket")
    with pytest.raises(AdminSocketError, match="is not a socket"):
        await server(path).start()
    assert path.read_text() == "not a socket"
    with pytest.raises(AdminSocketError, match="No such file"):
        await server(home / "missing" / "n1.sock").start()


async def test_bad_key_requests_get_a_clear_400_and_a_node_without_gossip_409(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / "n1.sock"
    admin = server(path)
    await admin.start()
    try:
        key = base64.b64encode(K2).decode()
        for body, message in (
            ({"op": "wipe", "key": key}, "op must be one of install, use, remove"),
            ({"op": "install", "key": "AAAA"}, "decodes to 3 bytes"),
            ({"op": "install", "key": "not base64!"}, "not valid base64"),
            ({"op": "install", "key": key, "timeout_s": 99}, "timeout_s must be in (0, 30]"),
        ):
            assert await ask(path, "POST", "/admin/v1/keys", body) == 2
            assert message in capsys.readouterr().err
        assert await ask(path, "POST", "/admin/v1/keys", {"op": "use", "key": key}) == 2
        assert "does not gossip" in capsys.readouterr().err
    finally:
        await admin.close()


NODE = (
    '[node]\nname = "n1"\nrole = "edge"\n[http]\nlisten = "127.0.61.1:0"\n[tls]\nplaintext = true\n'
)
GOSSIP = f'[gossip]\nbind = "127.0.61.1:7946"\nkeys = ["{base64.b64encode(K1).decode()}"]\n'


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('[admin]\nsocket = "n1.sock"\n', "admin.socket: 'n1.sock' must be an absolute path"),
        ("[admin]\nsocket = " + '"/' + "x" * 120 + '"\n', "longer than the 107 bytes"),
        ('[admin]\nsockt = "/run/n1.sock"\n', "admin.sockt: unknown key"),
        (GOSSIP + 'keyring_state_file = "state"\n', "keyring_state_file: 'state' must be an"),
    ],
)
def test_admin_and_state_file_settings_are_checked(text: str, fault: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(NODE + text, "n1.toml")
    assert any(fault in f for f in raised.value.faults), raised.value.faults


def test_no_admin_section_means_no_socket() -> None:
    assert parse_config(NODE, "n1.toml").admin.socket is None
    config = parse_config(NODE + '[admin]\nsocket = "/run/hubhop/n1.sock"\n', "n1.toml")
    assert config.admin.socket == "/run/hubhop/n1.sock"


def test_the_state_file_wins_over_the_seed_once_written(home: Path) -> None:
    state = home / "n1.keyring"
    text = NODE + GOSSIP + f'keyring_state_file = "{state}"\n'
    gossip = parse_config(text, "n1.toml").gossip
    assert gossip is not None
    ring, source = load_gossip_keyring(gossip)
    assert ring.keys == (K1,) and source == "keys (inline)"
    rotated = Keyring([K1, K2], primary=1)
    save_keyring(state, rotated)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    ring, source = load_gossip_keyring(gossip)
    assert ring.primary == K2 and set(ring.keys) == {K1, K2}
    assert source == f"keyring_state_file {state}"
    assert [p.name for p in home.iterdir()] == ["n1.keyring"]  # no temporary file left
    state.write_text("garbage\n")
    with pytest.raises(ConfigError, match=r"n1\.keyring: bad keyring"):
        load_gossip_keyring(gossip)


REPORT = {
    "op": "install",
    "key": fingerprint(K2),
    "ok": False,
    "members": [
        {"name": "n1", "status": "ok", "fingerprints": ["aa", "bb"], "primary": "aa"},
        {
            "name": "n2",
            "status": "failed",
            "error": "no room",
            "fingerprints": ["aa"],
            "primary": "aa",
        },
        {"name": "n3", "status": "no_answer", "error": None, "fingerprints": [], "primary": None},
    ],
    "not_asked": ["n4"],
}


def test_key_reports_say_who_failed_and_count_holders() -> None:
    assert keys_change_lines(REPORT) == [
        f"install key {fingerprint(K2)}: ok on 1 of 3 members, 1 failed, 1 no answer",
        "  n2: failed: no room",
        "  n3: no answer",
        "not asked (dead or left): n4",
    ]
    assert keys_list_lines(REPORT)[:3] == [
        "KEY  HELD BY  PRIMARY ON",
        "aa   2 of 2   2 of 2",
        "bb   1 of 2   0 of 2",
    ]


def test_status_shows_members_table_keyring_and_errors_but_no_key() -> None:
    view = {
        "node": "n1",
        "role": "edge",
        "version": "0.1.0",
        "readiness": "draining",
        "uptime_s": 3725.0,
        "pid": 42,
        "listening": {"http": "127.0.61.1:8000", "gossip": None, "admin": "/run/hubhop/n1.sock"},
        "members": {
            "counts": {"alive": 2, "suspect": 1, "dead": 0, "left": 0},
            "not_alive": {"suspect": ["n3"]},
            "suspected_since_start": 1,
            "declared_dead_since_start": 0,
            "datagrams_refused": {"bad_key": 7},
        },
        "table": {"records": 3, "oldest_record_age_s": 12.0, "newest_record_age_s": 0.4},
        "keyring": {
            "primary": "aa",
            "fingerprints": ["bb", "aa"],
            "source": "keyring_file /etc/k",
            "saved_to": None,
        },
        "recent_errors": [{"at": 0.0, "level": "warning", "logger": "x", "message": "boom"}],
    }
    lines = status_lines(view)
    assert lines[0] == "n1: edge node, hubhop 0.1.0, draining, up 1h02m (pid 42)"
    text = "\n".join(lines)
    assert "http 127.0.61.1:8000, admin /run/hubhop/n1.sock" in text
    assert "2 alive, 1 suspect (n3), 0 dead, 0 left" in text
    assert "refused datagrams: 7 bad_key" in text
    assert "3 records, newest 0.4 s old, oldest 12.0 s old" in text
    assert "primary aa; also bb (loaded from keyring_file /etc/k)" in text
    assert text.endswith("warning x: boom")
