"""`hubhop` command line: a thin layer over the library.

Exit codes follow sysexits.h where one fits: 0 ok, 2 usage error (argparse), 78 EX_CONFIG for a
configuration fault (systemd units use RestartPreventExitStatus=78 so a broken file is not
restarted in a loop), 1 for anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from hubhop import __version__
from hubhop.core.config import ConfigError
from hubhop.io.config_file import check_referenced_files, load_config
from hubhop.io.loop import LOOP_KINDS

EX_OK = 0
EX_CONFIG = 78


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


def _ask_daemon(ns: argparse.Namespace, path: str) -> dict[str, Any] | int:
    """GET `path` from the local daemon as JSON; an exit code (message printed) on failure."""
    import json
    import urllib.error
    import urllib.request

    url = _daemon_url(ns)
    if isinstance(url, int):
        return url
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
            view: dict[str, Any] = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"cannot reach the daemon at {url}: {exc}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps(view, indent=2))
    return view


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def cmd_members(ns: argparse.Namespace) -> int:
    """Ask the local daemon who it sees, and print it as a table (or JSON)."""
    view = _ask_daemon(ns, "/hubhop/v1/members")
    if isinstance(view, int):
        return view
    if ns.json:
        return EX_OK
    rows = [("NAME", "STATE", "INC", "ADDR", "ROLE", "CITY", "VER", "MODELS")]
    for m in view["members"]:
        rows.append((
            m["name"], m["state"], str(m.get("incarnation", "")), m.get("addr", ""),
            m.get("role", ""), m.get("city", ""), str(m.get("record_version", "")),
            ",".join(m.get("models", [])),
        ))  # fmt: skip
    _print_table(rows)
    return EX_OK


def _ms(value: object) -> str:
    return "" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def cmd_peers(ns: argparse.Namespace) -> int:
    """The local daemon's probe table: what it measured to each member, and its estimate."""
    view = _ask_daemon(ns, "/hubhop/v1/peers")
    if isinstance(view, int):
        return view
    if ns.json:
        return EX_OK
    if not view.get("gossip", False):
        print(f"{view['node']} does not gossip: no peers to probe")
        return EX_OK
    rows = [
        ("NAME", "STATE", "SAMPLES", "MIN", "P50", "P99", "RTTVAR", "LOSS", "AGE_S", "ONE_WAY",
         "TIER", "SOURCE"),
    ]  # fmt: skip
    for p in view["peers"]:
        probe, est = p.get("probe") or {}, p.get("estimate") or {}
        rows.append((
            p["name"], p["state"], str(probe.get("samples", "")), _ms(probe.get("min_ms")),
            _ms(probe.get("p50_ms")), _ms(probe.get("p99_ms")), _ms(probe.get("rttvar_ms")),
            "" if "loss_rate" not in probe else f"{probe['loss_rate']:.1%}",
            "" if "last_sample_age_s" not in probe else f"{probe['last_sample_age_s']:.1f}",
            _ms(est.get("conservative_one_way_ms")), est.get("tier", ""), est.get("source", ""),
        ))  # fmt: skip
    _print_table(rows)
    me = view.get("self") or {}
    if me:
        coordinate, wan = me.get("coordinate") or {}, me.get("wan")
        print(
            f"{view['node']}: coordinate error {coordinate.get('error', 0.0):.1%} after "
            f"{coordinate.get('updates', 0)} updates; {me.get('probes_sent', 0)} probes sent; "
            + (f"emulated WAN on (site {wan['site']})" if wan else "no emulated WAN")
        )
    print("times in ms; RTT columns are round trips, ONE_WAY is the conservative one-way estimate")
    print("(half the round trip plus a jitter margin) that tiers are judged by")
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
    if ns.json:
        return EX_OK if view.get("estimate") else 1
    est = view.get("estimate")
    if not est:
        print(f"{view['from']} -> {view['to']}: unknown ({view.get('reason', '')})")
        return 1
    print(
        f"{view['from']} -> {view['to']}: rtt {est['rtt_ms']:.3f} ms, one-way "
        f"{est['one_way_ms']:.3f} ms (conservative {est['conservative_one_way_ms']:.3f} ms), "
        f"tier {est['tier']}; {est['source']}"
        + (f" from {est['samples']} samples" if est["source"] == "measured" else "")
        + f", uncertainty {est['uncertainty']:.1%}"
    )
    return EX_OK


def cmd_demo_backend(ns: argparse.Namespace) -> int:
    from hubhop.io import demo_backend

    return demo_backend.run_from_cli(ns)


def cmd_demo(ns: argparse.Namespace) -> int:
    from hubhop.demo import run_demo

    return run_demo(ns)


def build_parser() -> argparse.ArgumentParser:
    from hubhop.demo import add_demo_arguments
    from hubhop.io import demo_backend

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
    p.add_argument("--config", required=True, metavar="FILE", help="the node's TOML config")
    p.add_argument("--url", help="the daemon's endpoint, when the config cannot say it")
    p.add_argument("--json", action="store_true", help="print the raw JSON view")
    p.set_defaults(func=cmd_members)

    p = sub.add_parser("peers", help="the local daemon's probe table (measured RTT per member)")
    p.add_argument("--config", required=True, metavar="FILE", help="the node's TOML config")
    p.add_argument("--url", help="the daemon's endpoint, when the config cannot say it")
    p.add_argument("--json", action="store_true", help="print the raw JSON view")
    p.set_defaults(func=cmd_peers)

    p = sub.add_parser("rtt", help="latency to NODE (or between two nodes): measured or estimated")
    p.add_argument("nodes", nargs="+", metavar="NODE", help="NODE, or FROM TO")
    p.add_argument("--config", required=True, metavar="FILE", help="the node's TOML config")
    p.add_argument("--url", help="the daemon's endpoint, when the config cannot say it")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")
    p.set_defaults(func=cmd_rtt)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("demo-backend", help="run the built-in demo inference backend")
    demo_backend.add_arguments(p)
    p.set_defaults(func=cmd_demo_backend)

    p = sub.add_parser("demo", help="start a node and a demo backend, send real requests, stop")
    add_demo_arguments(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    result: int = ns.func(ns)
    return result


if __name__ == "__main__":
    sys.exit(main())
