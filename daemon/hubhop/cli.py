"""`hubhop` command line: a thin layer over the library.

Exit codes follow sysexits.h where one fits: 0 ok, 2 usage error (argparse, or a request the
daemon refused as bad: its 4xx message is printed), 69 EX_UNAVAILABLE when the daemon cannot be
reached, 78 EX_CONFIG for a configuration fault (systemd units use RestartPreventExitStatus=78 so
a broken file is not restarted in a loop), 1 for anything else: no route, an unknown latency, a
daemon that answered 5xx.

The commands that ask the local daemon (members, peers, rtt, route, table) find it through
--url, or else the http.listen of the node's --config; what they print is `hubhop.cli_tables`'.
A node whose [[tokens]] require a client token is asked with the one in $HUBHOP_TOKEN.
`status` and `keys` ask through the daemon's admin unix socket instead (`hubhop.cli_admin`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hubhop import __version__, cli_tables
from hubhop.core.config import PROTOCOLS, ROLES, ConfigError
from hubhop.core.members import MemberState
from hubhop.core.routing_config import SPILLS
from hubhop.core.tiers import LANES, TIERS
from hubhop.io.config_file import check_referenced_files, load_config
from hubhop.io.loop import LOOP_KINDS

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_UNAVAILABLE = 69
EX_CONFIG = 78
# A daemon answers from memory in milliseconds; ten seconds only bounds a hung or wrong address.
DAEMON_TIMEOUT_S = 10
# The bearer token the query commands present, for a node whose [[tokens]] make it required.
TOKEN_ENV = "HUBHOP_TOKEN"


def _print_faults(error: ConfigError) -> None:
    for fault in error.faults:
        print(fault, file=sys.stderr)


def cmd_version(ns: argparse.Namespace) -> int:
    print(f"hubhop {__version__}")
    return EX_OK


def cmd_check_config(ns: argparse.Namespace) -> int:
    try:
        config = load_config(ns.file)
        check_referenced_files(config)
    except ConfigError as error:
        _print_faults(error)
        return EX_CONFIG
    print(
        f"{ns.file}: ok (node {config.node.name}, role {config.node.role}, "
        f"{len(config.backends)} backend(s), listening on {config.http.listen})"
    )
    return EX_OK


def cmd_run(ns: argparse.Namespace) -> int:
    try:
        config = load_config(ns.config)
        check_referenced_files(config)
    except ConfigError as error:
        _print_faults(error)
        return EX_CONFIG
    if config.kernels.cache_dir:
        # numba reads this once, when it is first imported, and importing the app imports it.
        os.environ["NUMBA_CACHE_DIR"] = config.kernels.cache_dir
    from hubhop.app import run_node

    return run_node(config, config_path=ns.config, loop_kind=ns.loop)


def _daemon_url(ns: argparse.Namespace) -> str | int:
    """The local daemon's URL from --url or the config's http.listen; an exit code on a fault."""
    if ns.url is not None:
        return str(ns.url).rstrip("/")
    if ns.config is None:
        message = f"hubhop {ns.command}: give the node's --config FILE or the daemon's --url URL"
        print(message, file=sys.stderr)
        return EX_USAGE
    try:
        config = load_config(ns.config)
    except ConfigError as error:
        _print_faults(error)
        return EX_CONFIG
    listen = config.http.listen
    if listen.port == 0:
        print(f"{ns.config}: http.listen has port 0; give the URL with --url", file=sys.stderr)
        return EX_CONFIG
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    return f"http://{host}:{listen.port}"


def _ask_daemon(
    ns: argparse.Namespace, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any] | int:
    """GET `path` (POST `body`) of the local daemon, as JSON; printed raw with --json.

    An exit code, its message printed, when there is no answer to show: EX_UNAVAILABLE when
    the daemon cannot be reached or does not answer JSON, EX_USAGE when it refused the request
    as bad (4xx), EX_FAILED when it failed (5xx).
    """
    import json
    import urllib.error
    import urllib.request

    url = _daemon_url(ns)
    if isinstance(url, int):
        return url
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    token = os.environ.get(TOKEN_ENV)
    if token:  # a node with [[tokens]] answers its clients only (an env var: argv is public)
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=DAEMON_TIMEOUT_S) as response:
            view: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            print(f"{url}{path}: {exc.code} {_error_message(exc.read())}", file=sys.stderr)
        return EX_USAGE if exc.code < 500 else EX_FAILED
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"cannot reach the daemon at {url}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    if ns.json:
        print(json.dumps(view, indent=2))
    return view


def _error_message(raw: bytes) -> str:
    """The message of a JSON error in either API style, else the body's start."""
    import json

    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def _print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


def cmd_members(ns: argparse.Namespace) -> int:
    """Ask the local daemon who it sees, and print it as a table (or JSON)."""
    view = _ask_daemon(ns, "/hubhop/v1/members")
    if isinstance(view, int):
        return view
    if not ns.json:
        _print_lines(cli_tables.members_lines(view))
    return EX_OK


def cmd_peers(ns: argparse.Namespace) -> int:
    """The local daemon's probe table: what it measured to each member, and its estimate."""
    view = _ask_daemon(ns, "/hubhop/v1/peers")
    if isinstance(view, int):
        return view
    if not ns.json:
        _print_lines(cli_tables.peers_lines(view))
    return EX_OK


def cmd_rtt(ns: argparse.Namespace) -> int:
    """The latency between this node and NODE (or between two nodes), with tier and confidence."""
    from urllib.parse import urlencode

    query = {"to": ns.nodes[-1]}
    if len(ns.nodes) == 2:
        query["from"] = ns.nodes[0]
    view = _ask_daemon(ns, f"/hubhop/v1/rtt?{urlencode(query)}")
    if isinstance(view, int):
        return view
    if not ns.json:
        print(cli_tables.rtt_line(view))
    return EX_OK if view.get("estimate") else EX_FAILED


# The route command's options, as the fields of the route endpoint's JSON body.
ROUTE_FIELDS = ("lane", "tier", "max_latency_ms", "chip", "budget", "deadline_ms", "spill")


def cmd_route(ns: argparse.Namespace) -> int:
    """Ask the local daemon where a request would go, and why; exit 1 when nowhere.

    Numbers and the chip go to the daemon as typed: its validator (the one request headers
    meet) judges them, and a bad one comes back as a 400 naming the field (exit 2)."""
    ask: dict[str, Any] = {"model": ns.model, "protocol": ns.protocol}
    ask.update({f: getattr(ns, f) for f in ROUTE_FIELDS if getattr(ns, f) is not None})
    if ns.explain:
        ask["explain"] = True
    decision = _ask_daemon(ns, "/hubhop/v1/route", ask)
    if isinstance(decision, int):
        return decision
    if not ns.json:
        _print_lines(cli_tables.route_lines(decision, ns.explain))
    return EX_OK if decision.get("chosen") else EX_FAILED


# The table command's filters: the query parameters of GET /hubhop/v1/table (named here, not
# imported from hubhop.scoring, so that a command line never loads numpy and numba).
TABLE_FILTERS = ("model", "chip", "node", "role", "tier", "state")


def cmd_table(ns: argparse.Namespace) -> int:
    """The capacity table as the local daemon sees it, one line per (node, backend)."""
    from urllib.parse import urlencode

    query = {p: getattr(ns, p) for p in TABLE_FILTERS if getattr(ns, p) is not None}
    view = _ask_daemon(ns, "/hubhop/v1/table" + (f"?{urlencode(query)}" if query else ""))
    if isinstance(view, int):
        return view
    if not ns.json:
        _print_lines(cli_tables.table_lines(view))
    return EX_OK


def cmd_demo_backend(ns: argparse.Namespace) -> int:
    from hubhop.io import demo_backend

    return demo_backend.run_from_cli(ns)


def cmd_demo(ns: argparse.Namespace) -> int:
    from hubhop.demo.command import run as run_demo

    return run_demo(ns)


def cmd_loadgen(ns: argparse.Namespace) -> int:
    from hubhop.loadgen.command import cmd_loadgen as run_loadgen

    return run_loadgen(ns)


def _daemon_arguments(
    p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]
) -> None:
    """How a command finds the local daemon, and --json; `func` runs the command."""
    p.add_argument("--config", metavar="FILE", help="the node's TOML config (its http.listen)")
    p.add_argument("--url", help="the daemon's endpoint (wins over --config)")
    p.add_argument("--json", action="store_true", help="print the daemon's raw JSON answer")
    p.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    from hubhop.demo.command import add_arguments as add_demo_arguments
    from hubhop.io import demo_backend
    from hubhop.loadgen.command import add_arguments as add_loadgen_arguments

    parser = argparse.ArgumentParser(
        prog="hubhop", description="Latency-aware routing daemon for computing-power networks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", required=True, metavar="FILE", help="the node's TOML config")
    p.add_argument(
        "--loop", choices=LOOP_KINDS, default="auto", help="event loop (auto: uvloop when present)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file (exit 78 on faults)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("members", help="list the members the local daemon sees")
    _daemon_arguments(p, cmd_members)

    p = sub.add_parser("peers", help="the local daemon's probe table (measured RTT per member)")
    _daemon_arguments(p, cmd_peers)

    p = sub.add_parser("rtt", help="latency to NODE (or between two nodes): measured or estimated")
    p.add_argument("nodes", nargs="+", metavar="NODE", help="NODE, or FROM TO")
    _daemon_arguments(p, cmd_rtt)

    p = sub.add_parser(
        "route", help="where the local daemon would send a request, and why (exit 1: nowhere)"
    )
    p.add_argument("--model", required=True, help="the model asked for")
    p.add_argument("--protocol", choices=PROTOCOLS, default="openai", help="the request's API")
    p.add_argument("--lane", choices=LANES, help="default: the daemon's [routing] lane")
    bound = p.add_mutually_exclusive_group()
    bound.add_argument("--tier", choices=TIERS, help="default: the daemon's [routing] tier")
    bound.add_argument("--max-latency-ms", metavar="MS", help="a one-way bound instead of a tier")
    p.add_argument("--chip", help="the chip type required, e.g. ascend-910b")
    p.add_argument("--budget", help="the highest price per unit of work")
    p.add_argument("--deadline-ms", metavar="MS", help="how long the request may wait for a slot")
    p.add_argument(
        "--spill", choices=SPILLS, help="when nothing fits the tier; default: the daemon's"
    )
    p.add_argument(
        "--explain", action="store_true", help="also the alternates and every rejected candidate"
    )
    _daemon_arguments(p, cmd_route)

    p = sub.add_parser("table", help="the capacity table the local daemon routes on")
    p.add_argument("--model", help="only backends serving this model")
    p.add_argument("--chip", help="only backends with this chip type")
    p.add_argument("--node", help="only this node's backends")
    p.add_argument("--role", choices=ROLES, help="only nodes of this role")
    p.add_argument("--tier", choices=TIERS, help="only nodes within this tier's one-way bound")
    p.add_argument(
        "--state", choices=tuple(MemberState), help="only nodes membership says are in this state"
    )
    _daemon_arguments(p, cmd_table)

    from hubhop.cli_admin import add_admin_commands  # here: it imports this module

    add_admin_commands(sub)  # status, keys: through the daemon's admin socket

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("demo-backend", help="run the built-in demo inference backend")
    demo_backend.add_arguments(p)
    p.set_defaults(func=cmd_demo_backend)

    p = sub.add_parser(
        "demo",
        help="the network on one machine: a topology's slice as real processes, hospital load, "
        "a report per lane and tier, plots; stops what it started",
    )
    add_demo_arguments(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "loadgen", help="open-loop load from a workload file; latency per lane and tier"
    )
    add_loadgen_arguments(p)
    p.set_defaults(func=cmd_loadgen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    result: int = ns.func(ns)
    return result


if __name__ == "__main__":
    sys.exit(main())
