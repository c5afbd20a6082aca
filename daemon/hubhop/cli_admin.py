"""`hubhop status` and `hubhop keys`: the local daemon's admin API, over its unix socket.

    hubhop status [--config FILE | --socket PATH] [--json]
    hubhop keys list [--config FILE | --socket PATH] [--timeout S] [--json]
    hubhop keys install|use|remove (--key-file PATH | KEY | -) [...]

Rules:
- The socket is --socket, else the `[admin] socket` of the node's --config. Who may use it is
  the socket file's business (mode 0660, the unit's user and group): no token is sent.
- A key given on the command line is visible to every user in `ps` and stays in the shell's
  history: `--key-file PATH` (a 0600 file) or `-` (standard input) is the way to pass one; KEY
  as an argument is accepted for a lab. Keys are read, sent to the daemon, and never printed:
  output names keys by fingerprint.
- Exit codes as the other commands (hubhop.cli): 0 when every member answered ok, 1 when any
  member failed or did not answer, 2 for a bad request, 69 when the daemon cannot be reached,
  78 for a config fault.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any

from hubhop.cli import (
    EX_CONFIG,
    EX_FAILED,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
    _error_message,
    _print_faults,
    _print_lines,
)
from hubhop.cli_tables import aligned
from hubhop.core.config import ConfigError
from hubhop.io.config_file import load_config

View = Mapping[str, Any]
# The daemon answers status from memory at once; a key command waits up to its own timeout
# (the daemon's default 5 s, at most 30 s), and this margin covers the round trip around it.
STATUS_TIMEOUT_S = 10.0
ANSWER_MARGIN_S = 5.0
DEFAULT_KEY_TIMEOUT_S = 5.0


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a unix socket: http.client with the connect step replaced."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _socket_path(ns: argparse.Namespace) -> str | int:
    """The admin socket from --socket or the config's [admin]; an exit code on a fault."""
    if ns.socket is not None:
        return str(ns.socket)
    if ns.config is None:
        print(
            f"hubhop {ns.command}: give the node's --config FILE or --socket PATH", file=sys.stderr
        )
        return EX_USAGE
    try:
        config = load_config(ns.config)
    except ConfigError as error:
        _print_faults(error)
        return EX_CONFIG
    if config.admin.socket is None:
        print(
            f"{ns.config}: no admin socket: add [admin] socket = "
            f'"/run/hubhop/{config.node.name}.sock" and restart the node',
            file=sys.stderr,
        )
        return EX_CONFIG
    return config.admin.socket


def ask_admin(
    ns: argparse.Namespace,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout_s: float = STATUS_TIMEOUT_S,
) -> dict[str, Any] | int:
    """The daemon's JSON answer (printed raw with --json), or an exit code, its message said."""
    where = _socket_path(ns)
    if isinstance(where, int):
        return where
    connection = _UnixConnection(where, timeout_s)
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"content-type": "application/json"}
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except PermissionError:
        print(
            f"cannot reach the daemon's admin socket {where}: permission denied "
            "(run as root or as a member of the node's group)",
            file=sys.stderr,
        )
        return EX_UNAVAILABLE
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(
            f"cannot reach the daemon's admin socket {where}: {reason} (is the node running?)",
            file=sys.stderr,
        )
        return EX_UNAVAILABLE
    finally:
        connection.close()
    if response.status >= 400:
        print(f"{where}: {response.status} {_error_message(raw)}", file=sys.stderr)
        return EX_USAGE if response.status < 500 else EX_FAILED
    try:
        view: dict[str, Any] = json.loads(raw)
    except ValueError:
        print(f"{where}: the answer is not JSON", file=sys.stderr)
        return EX_UNAVAILABLE
    if ns.json:
        print(json.dumps(view, indent=2))
    return view


# --------------------------------------------------------------------------------------------
# what the commands print


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def status_lines(view: View) -> list[str]:
    head = (
        f"{view['node']}: {view['role']} node, hubhop {view['version']}, {view['readiness']}, "
        f"up {duration(view['uptime_s'])} (pid {view['pid']})"
    )
    listening = ", ".join(f"{k} {v}" for k, v in view["listening"].items() if v)
    rows = [("listening", listening)]
    members = view.get("members")
    if members is None:
        rows.append(("members", "none: this node does not gossip"))
    else:
        parts = []
        for state, count in members["counts"].items():
            names = members["not_alive"].get(state)
            parts.append(f"{count} {state}" + (f" ({', '.join(names)})" if names else ""))
        rows.append(("members", ", ".join(parts)))
        refused = ", ".join(f"{n} {why}" for why, n in members["datagrams_refused"].items())
        rows.append(
            (
                "gossip",
                f"{members['suspected_since_start']} suspicions, "
                f"{members['declared_dead_since_start']} deaths since start; "
                f"refused datagrams: {refused or 'none'}",
            )
        )
    table = view.get("table")
    if table is not None:
        ages = ""
        if table["newest_record_age_s"] is not None:
            ages = (
                f", newest {table['newest_record_age_s']:.1f} s old, "
                f"oldest {table['oldest_record_age_s']:.1f} s old"
            )
        rows.append(("table", f"{table['records']} records{ages}"))
    keyring = view.get("keyring")
    if keyring is not None:
        others = [f for f in keyring["fingerprints"] if f != keyring["primary"]]
        text = f"primary {keyring['primary']}" + (f"; also {', '.join(others)}" if others else "")
        saved = f"; saved to {keyring['saved_to']}" if keyring.get("saved_to") else ""
        rows.append(("keyring", f"{text} (loaded from {keyring['source']}{saved})"))
    errors = view.get("recent_errors") or []
    rows.append(("recent errors", f"{len(errors)}" if errors else "none"))
    lines = [head, *aligned(rows)]
    for record in errors:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["at"]))
        lines.append(f"  {at} {record['level']} {record['logger']}: {record['message']}")
    return lines


_SAID = {"ok": "ok", "failed": "failed", "no_answer": "no answer"}


def _member_problems(report: View) -> list[str]:
    lines = []
    for member in report["members"]:
        if member["status"] != "ok":
            error = f": {member['error']}" if member.get("error") else ""
            lines.append(f"  {member['name']}: {_SAID[member['status']]}{error}")
    if report["not_asked"]:
        lines.append(f"not asked (dead or left): {', '.join(report['not_asked'])}")
    return lines


def _summary(report: View) -> str:
    members = report["members"]
    ok = sum(1 for m in members if m["status"] == "ok")
    failed = sum(1 for m in members if m["status"] == "failed")
    silent = len(members) - ok - failed
    return f"ok on {ok} of {len(members)} members, {failed} failed, {silent} no answer"


def keys_list_lines(report: View) -> list[str]:
    """How many members hold each key and where it is primary, then the members at fault."""
    answered = [m for m in report["members"] if m["status"] != "no_answer"]
    held: dict[str, int] = {}
    primary: dict[str, int] = {}
    for member in answered:
        for fp in member["fingerprints"]:
            held[fp] = held.get(fp, 0) + 1
        if member.get("primary"):
            primary[member["primary"]] = primary.get(member["primary"], 0) + 1
    n = len(answered)
    rows = [("KEY", "HELD BY", "PRIMARY ON")]
    for fp in sorted(held, key=lambda f: (-primary.get(f, 0), -held[f], f)):
        rows.append((fp, f"{held[fp]} of {n}", f"{primary.get(fp, 0)} of {n}"))
    return [*aligned(rows), _summary(report), *_member_problems(report)]


def keys_change_lines(report: View) -> list[str]:
    return [f"{report['op']} key {report['key']}: {_summary(report)}", *_member_problems(report)]


# --------------------------------------------------------------------------------------------
# the commands


def cmd_status(ns: argparse.Namespace) -> int:
    view = ask_admin(ns, "GET", "/admin/v1/status")
    if isinstance(view, int):
        return view
    if not ns.json:
        _print_lines(status_lines(view))
    return EX_OK


def read_key(ns: argparse.Namespace) -> str | int:
    """The base64 key from --key-file, `-` (stdin) or the argument; an exit code on a fault."""
    if (ns.key is None) == (ns.key_file is None):
        print(
            f"hubhop keys {ns.op}: give the key as --key-file PATH (or - for stdin)",
            file=sys.stderr,
        )
        return EX_USAGE
    source = ns.key_file if ns.key_file is not None else ns.key
    if ns.key_file is None and source != "-":
        return str(source)
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="ascii") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"{source}: cannot read the key: {getattr(exc, 'strerror', None) or exc}",
            file=sys.stderr,
        )
        return EX_USAGE
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if len(keys) != 1:
        print(f"{source}: expected one base64 key, found {len(keys)} lines", file=sys.stderr)
        return EX_USAGE
    return keys[0]


def cmd_keys(ns: argparse.Namespace) -> int:
    """Run a keyring command on every member through the local daemon; 1 unless all ok."""
    wait = ANSWER_MARGIN_S + ns.timeout
    if ns.op == "list":
        report = ask_admin(ns, "GET", f"/admin/v1/keys?timeout_s={ns.timeout}", timeout_s=wait)
    else:
        key = read_key(ns)
        if isinstance(key, int):
            return key
        body = {"op": ns.op, "key": key, "timeout_s": ns.timeout}
        report = ask_admin(ns, "POST", "/admin/v1/keys", body, timeout_s=wait)
    if isinstance(report, int):
        return report
    if not ns.json:
        lines = keys_list_lines(report) if ns.op == "list" else keys_change_lines(report)
        _print_lines(lines)
    return EX_OK if report.get("ok") else EX_FAILED


def _admin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="the node's TOML config (its [admin] socket)")
    p.add_argument("--socket", metavar="PATH", help="the admin socket (wins over --config)")
    p.add_argument("--json", action="store_true", help="print the daemon's raw JSON answer")


def add_admin_commands(sub: Any) -> None:
    """Register `status` and `keys` on the `hubhop` parser's subcommands."""
    p = sub.add_parser("status", help="the local daemon's status, from its admin socket")
    _admin_arguments(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "keys", help="the gossip keyring on every member: list, install, use, remove a key"
    )
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    for op, text in (
        ("list", "how many members hold each key, and where it is primary"),
        ("install", "every member accepts KEY from now on (step 1 of a rotation)"),
        ("use", "every member seals with KEY from now on (step 2)"),
        ("remove", "every member stops accepting KEY (step 3)"),
    ):
        q = ops.add_parser(op, help=text)
        if op != "list":
            q.add_argument(
                "key",
                nargs="?",
                metavar="KEY",
                help="the base64 key, or - to read it from stdin; an argument shows in `ps`, "
                "so prefer --key-file or -",
            )
            q.add_argument(
                "--key-file", metavar="PATH", help="read the key from PATH (recommended)"
            )
        q.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_KEY_TIMEOUT_S,
            metavar="S",
            help="how long to wait for members' answers (default 5, at most 30)",
        )
        _admin_arguments(q)
        q.set_defaults(func=cmd_keys)
