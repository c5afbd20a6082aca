"""Keyring rotation across three real daemons from the real `hubhop keys` command, and
`hubhop status` over the admin socket: what an operator does, and what must hold meanwhile.

Three daemons (HTTP and gossip on 127.0.61.1-3) share K1 and each keeps its keyring in a state
file. `hubhop keys install` then `use` K2 reach all three; nobody is suspected meanwhile and a
record change still spreads; `remove` K1 leaves K2 alone; a fourth daemon holding only K1 cannot
join (its datagrams are refused as bad_key); a restarted daemon comes back on K2 although its
config still seeds K1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubhop.cli_admin import ask_admin
from hubhop.core.keyring import fingerprint
from tests.procs import Proc, spawn_node, wait_until

K1 = bytes(range(16))
K2 = bytes(range(200, 232))
B64 = {key: base64.b64encode(key).decode() for key in (K1, K2)}
PORT = 7946
# Three or four daemons on two shared cores: joins, rotations and restarts take seconds.
CONVERGE_S = 30.0


def config_text(i: int, home: Path, models: str = '"chat-7b"', seed_key: bytes = K1) -> str:
    return (
        f'[node]\nname = "n{i}"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "127.0.61.{i}:0"\n'
        f"[lifecycle]\ndrain_grace_s = 1.0\n"
        f'[admin]\nsocket = "{home}/n{i}.sock"\n'
        f'[gossip]\nbind = "127.0.61.{i}:{PORT}"\nseeds = ["127.0.61.1:{PORT}"]\n'
        f'keys = ["{B64[seed_key]}"]\nkeyring_state_file = "{home}/n{i}.keyring"\n'
        f"[tls]\nplaintext = true\n"
        f'[[backends]]\nname = "npu-0"\nurl = "http://127.0.61.{100 + i}:9000"\n'
        f'protocol = "openai"\nmodels = [{models}]\nslots = 4\n'
    )


def status(home: Path, i: int) -> dict[str, Any]:
    ns = argparse.Namespace(socket=str(home / f"n{i}.sock"), config=None, json=False)
    view = ask_admin(ns, "GET", "/admin/v1/status")
    assert isinstance(view, dict), view
    return view


def hubhop(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubhop", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alive_everywhere(home: Path, nodes: dict[int, Proc]) -> bool:
    return all(status(home, i)["members"]["counts"]["alive"] == len(nodes) for i in nodes)


@pytest.fixture
def home() -> Iterator[Path]:
    # A short directory: a unix socket's path must fit 107 bytes, pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="hh-keys-", dir="/tmp") as path:
        yield Path(path)


@pytest.mark.slow
def test_a_rotation_from_the_cli_reaches_every_member_and_survives_a_restart(home: Path) -> None:
    nodes: dict[int, Proc] = {}
    try:
        for i in (1, 2, 3):
            (home / f"n{i}.toml").write_text(config_text(i, home))
            nodes[i] = spawn_node(home / f"n{i}.toml")
        wait_until(lambda: alive_everywhere(home, nodes), CONVERGE_S, "3 daemons, all alive")
        sock = stat.S_IMODE(os.stat(home / "n1.sock").st_mode)
        assert sock == 0o660
        before = {i: status(home, i)["members"]["suspected_since_start"] for i in nodes}

        key_file = home / "k2"
        key_file.write_text(B64[K2] + "\n")
        key_file.chmod(0o600)
        admin = ("--socket", str(home / "n1.sock"))
        installed = hubhop("keys", "install", "--key-file", str(key_file), *admin)
        assert installed.returncode == 0, installed.stderr
        assert "ok on 3 of 3 members" in installed.stdout
        used = hubhop("keys", "use", "-", "--config", str(home / "n2.toml"), stdin=B64[K2])
        assert used.returncode == 0, used.stderr

        listed = hubhop("keys", "list", *admin, "--json")
        assert listed.returncode == 0, listed.stderr
        report = json.loads(listed.stdout)
        assert {m["primary"] for m in report["members"]} == {fingerprint(K2)}
        assert len(report["members"]) == 3

        # Gossip keeps flowing on K2: n3's new model reaches the others.
        (home / "n3.toml").write_text(config_text(3, home, models='"chat-7b", "ct-triage"'))
        nodes[3].process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: all("ct-triage" in models_of(nodes[i], "n3") for i in (1, 2)),
            CONVERGE_S,
            "n3's new model reaches n1 and n2",
        )

        removed = hubhop("keys", "remove", "--key-file", str(key_file.with_name("k1")), *admin)
        assert removed.returncode == 2 and "cannot read the key" in removed.stderr
        key_file.with_name("k1").write_text(B64[K1])
        removed = hubhop("keys", "remove", "--key-file", str(key_file.with_name("k1")), *admin)
        assert removed.returncode == 0, removed.stdout + removed.stderr

        shown = hubhop("status", *admin)
        assert shown.returncode == 0, shown.stderr
        assert f"primary {fingerprint(K2)} (loaded from" in shown.stdout
        assert fingerprint(K1) not in shown.stdout
        assert "3 alive, 0 suspect, 0 dead, 0 left" in shown.stdout
        assert B64[K2] not in shown.stdout
        after = {i: status(home, i)["members"]["suspected_since_start"] for i in nodes}
        assert after == before, "a member was suspected during the rotation"

        # A daemon that holds only the retired key is refused.
        (home / "n4.toml").write_text(config_text(4, home))
        nodes[4] = spawn_node(home / "n4.toml")
        wait_until(
            lambda: status(home, 1)["members"]["datagrams_refused"].get("bad_key", 0) > 0,
            CONVERGE_S,
            "n1 refuses the K1 daemon's datagrams",
        )
        assert status(home, 4)["members"]["counts"]["alive"] == 1
        assert all(status(home, i)["members"]["counts"]["alive"] == 3 for i in (1, 2, 3))

        # A restart keeps the rotated keyring (the state file), though the config seeds K1.
        assert nodes[2].stop() == 0
        assert not (home / "n2.sock").exists()
        nodes[2] = spawn_node(home / "n2.toml")
        trio = {i: nodes[i] for i in (1, 2, 3)}
        wait_until(lambda: alive_everywhere(home, trio), CONVERGE_S, "n2 is back, all alive")
        keyring = status(home, 2)["keyring"]
        assert keyring["fingerprints"] == [fingerprint(K2)]
        assert keyring["source"].startswith("keyring_state_file")
        assert stat.S_IMODE(os.stat(home / "n2.keyring").st_mode) == 0o600
    finally:
        for node in nodes.values():
            node.stop()


def models_of(node: Proc, name: str) -> list[str]:
    with urllib.request.urlopen(f"{node.url}/hubhop/v1/members", timeout=10) as response:
        view = json.loads(response.read())
    return next((m.get("models", []) for m in view["members"] if m["name"] == name), [])


def test_status_of_a_daemon_that_is_not_running_names_the_socket(home: Path) -> None:
    gone = home / "gone.sock"
    shown = hubhop("status", "--socket", str(gone))
    assert shown.returncode == 69
    assert f"cannot reach the daemon's admin socket {gone}" in shown.stderr
