"""proxy: the data-path cost of a hubhop hop, next to direct, a minimal aiohttp proxy and HAProxy.

The question (issue 6): "what does putting hubhop in front of my inference server cost per
request, in latency, CPU and memory, compared with calling it directly, with the least a
Python proxy can do, and with the HAProxy I run today?"

What runs, all on loopback, each server on its own address of 127.0.20.0/24:
- ONE demo backend (127.0.20.1, `hubhop demo-backend --service-ms const:0`): zero service time
  and an effectively instant token, so what remains is HTTP and proxy cost, not inference.
- Variant `direct`: the client calls the backend.
- Variant `aiohttp-minimal`: the floor, `minimal_proxy.py` (about 60 lines of aiohttp on
  uvloop, one pooled session, streaming both ways) as its own process on 127.0.20.4.
- Variant `hubhop`: the client calls a `hubhop run` node (HTTP 127.0.20.2, one process) that
  gossips (bound to 127.0.20.2, alone in its cluster), so every request is decided by the
  routing kernels through the full route_request path, not the no-gossip shortcut; every
  answer must carry x-hubhop-path to prove it.
- Variant `haproxy`: the client calls HAProxy (127.0.20.3, HTTP mode, keep-alive both sides,
  one thread). Skipped, with a message, when HAProxy is not installed and `--install` was not
  given.
- Workloads: a small chat completion, a small KServe JSON infer, a KServe binary upload of
  200 MB (16 MB in the quick run) streamed from a generated chunk.

Rules of the measurement (details in `measure.py` and `summary.py`):
- One client process (this one) on persistent keep-alive connections; closed loop; one
  connection for latency, 32 (each its own closed loop) for throughput and latency under load.
- Variants are interleaved in rounds, with a rotated order, so noise hits all of them alike;
  warm-up is discarded; medians, p90 and p99 are reported with the spread across rounds.
- Every load is bounded in count and in time; traffic goes only to 127.0.0.0/8; every process
  is started here and stopped by its PID.
- Added latency is `variant percentile - direct percentile`; the ratio is `variant / direct`.
- CPU per request of each proxy process, per block; the median across rounds is the figure,
  and hubhop's over the minimal proxy's is judged against issue 6's 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench import _haproxy, _http, _launch
from bench._report import add_run_arguments, load_average, machine_info, write_json
from bench.proxy import measure, plot, summary, workloads
from bench.proxy.markdown import markdown_tables as markdown_tables  # the README regions
from bench.proxy.plan import FULL, QUICK, Plan

NAME = "proxy"
SUMMARY = "data-path cost of a hubhop hop: direct, minimal aiohttp proxy, hubhop, HAProxy"

# Each server on its own loopback address, as the design asks; 127.0.20.0/24 is this
# benchmark's alone (tests and the other benchmarks use other /24s).
BACKEND_HOST = "127.0.20.1"
HUBHOP_HOST = "127.0.20.2"  # HTTP and gossip (UDP and TCP on another port)
HAPROXY_HOST = "127.0.20.3"
MINIMAL_HOST = "127.0.20.4"
MINIMAL_PROXY = Path(__file__).with_name("minimal_proxy.py")
# A fixed benchmark key: gossip is never sent in the clear, and this node talks to nobody.
GOSSIP_KEY = "AAECAwQFBgcICQoLDA0ODw=="
# The demo backend's slots, and what hubhop is told it has: far above the 32 concurrent clients,
# so requests never queue inside the backend nor wait in hubhop's admission.
BACKEND_SLOTS = 64
# A node's own record reaches its routing table right after start; bound the wait anyway.
ROUTABLE_TIMEOUT_S = 30.0
# The default of `--seed`, the demo backend's: a fixed seed gives the same answers (and so the
# same bytes on the wire) on every run. Nothing else here draws random numbers.
DEFAULT_SEED = 1


def _backend_args(seed: int) -> tuple[str, ...]:
    return (
        "--host",
        BACKEND_HOST,
        "--models",
        ",".join(workloads.MODELS),
        # No service time: only the cost of the hop is left to measure.
        "--service-ms",
        "const:0",
        "--slots",
        str(BACKEND_SLOTS),
        # One token per chat answer; at a million tokens/s its decode wait is a microsecond.
        "--token-rate",
        "1000000",
        "--seed",
        str(seed),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser,
        NAME,
        "a smoke run (about 15 s, 16 MB upload) instead of the full one (about 2 min, 200 MB)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="apt-get install haproxy when it is missing (otherwise that variant is skipped)",
    )
    parser.add_argument(
        "--no-haproxy", action="store_true", help="skip the HAProxy variant even if installed"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"the demo backend's seed (its answers' content; default {DEFAULT_SEED})",
    )


def _hubhop_config(backend_url: str, gossip_port: int) -> str:
    models = ", ".join(f'"{m}"' for m in workloads.MODELS)
    return (
        '[node]\nname = "bench-hop"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "{HUBHOP_HOST}:0"\n'
        # Warnings only: a benchmark must not measure the cost of writing its own log.
        '[log]\nlevel = "warning"\n'
        "[lifecycle]\ndrain_grace_s = 5.0\n"
        # Gossip on: the node decides every call with the kernels (hubhop.io.request_router).
        f'[gossip]\nbind = "{HUBHOP_HOST}:{gossip_port}"\nkeys = ["{GOSSIP_KEY}"]\n'
        "[tls]\nplaintext = true\n"  # one node, on loopback: no peer is ever called
        f'[[backends]]\nname = "demo"\nurl = "{backend_url}"\n'
        f'protocol = ["openai", "kserve_v2"]\nmodels = [{models}]\nslots = {BACKEND_SLOTS}\n'
    )


def _start_hubhop(workdir: Path, backend_url: str) -> _launch.Proc:
    """The gossiping node, once its routing table routes every model to its backend."""
    config = _hubhop_config(backend_url, _launch.free_port(HUBHOP_HOST))
    hop = _launch.start_hubhop_node(workdir, config)
    deadline = time.monotonic() + ROUTABLE_TIMEOUT_S
    asks = [
        {"model": workloads.CHAT_MODEL},
        {"model": workloads.KSERVE_MODEL, "protocol": "kserve_v2"},
    ]
    while not all(_routable(hop.url, ask) for ask in asks):
        if time.monotonic() > deadline:
            hop.stop()
            raise _launch.LaunchError(f"hubhop routed nothing within {ROUTABLE_TIMEOUT_S} s")
        time.sleep(0.1)
    return hop


def _routable(url: str, ask: dict[str, str]) -> bool:
    request = urllib.request.Request(
        url + "/hubhop/v1/route", data=json.dumps(ask).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer).get("chosen") is not None
    except (OSError, ValueError):
        return False


def _start_minimal(workdir: Path, backend_url: str) -> _launch.Proc:
    argv = [sys.executable, str(MINIMAL_PROXY), "--host", MINIMAL_HOST, "--upstream", backend_url]
    proc = _launch.popen(summary.MINIMAL, argv, workdir / "aiohttp-minimal.log")
    return _launch.wait_ready_line(proc, "minimal-proxy ready")


def _start_haproxy(binary: str, workdir: Path, backend_url: str) -> _launch.Proc:
    backend_host, backend_port = backend_url.removeprefix("http://").rsplit(":", 1)
    port = _launch.free_port(HAPROXY_HOST)
    config = _haproxy.write_config(
        workdir, _haproxy.haproxy_config(HAPROXY_HOST, port, backend_host, int(backend_port))
    )
    return _launch.start_listening_process(
        "haproxy", _haproxy.haproxy_argv(binary, config), workdir, HAPROXY_HOST, port
    )


def _client_loop() -> tuple[Any, str]:
    """uvloop for the client when installed: less client cost per request, equal for all."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def _say(line: str) -> None:
    print(line, flush=True)


async def _measure(plan: Plan, targets: list[measure.Target], backend: _launch.Proc) -> Any:
    runner = measure.Runner(plan, targets, backend)
    await runner.open()
    try:
        await runner.warm_up(_say)
        return await runner.run(_say)
    finally:
        await runner.close()


def run(ns: argparse.Namespace) -> int:
    plan = QUICK if ns.quick else FULL
    out_dir: Path = ns.out
    started = time.monotonic()
    machine = machine_info()
    haproxy_binary, haproxy_note = _haproxy.find_or_install(skip=ns.no_haproxy, install=ns.install)
    if haproxy_note:
        print(f"HAProxy variant {haproxy_note}")
    loop_factory, loop_name = _client_loop()

    procs: list[_launch.Proc] = []
    with tempfile.TemporaryDirectory(prefix="hubhop-bench-") as tmp:
        workdir = Path(tmp)
        try:
            backend = _launch.start_demo_backend(workdir, *_backend_args(ns.seed))
            procs.append(backend)
            minimal = _start_minimal(workdir, backend.url)
            procs.append(minimal)
            hop = _start_hubhop(workdir, backend.url)
            procs.append(hop)
            targets = [
                measure.Target(summary.DIRECT, backend.url),
                measure.Target(summary.MINIMAL, minimal.url, minimal),
                measure.Target(summary.HUBHOP, hop.url, hop, must_answer_with="x-hubhop-path"),
            ]
            if haproxy_binary is not None:
                haproxy = _start_haproxy(haproxy_binary, workdir, backend.url)
                procs.append(haproxy)
                targets.append(measure.Target(summary.HAPROXY, haproxy.url, haproxy))
            print(
                "measuring "
                + ", ".join(f"{t.name} ({t.url})" for t in targets)
                + f"; {'quick' if ns.quick else 'full'} plan, client loop {loop_name}",
                flush=True,
            )
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                outcome = runner.run(_measure(plan, targets, backend))
        except (_launch.LaunchError, workloads.BadAnswer, _http.HttpError, TimeoutError) as exc:
            print(f"{NAME}: {exc}", file=sys.stderr)
            for proc in procs:
                print(f"--- {proc.name} log (tail) ---\n{proc.log_tail()}", file=sys.stderr)
            return 1
        finally:
            for proc in reversed(procs):
                proc.stop()

    results = summary.summarize(outcome, plan.upload_bytes)
    cpu = summary.cpu_summary(outcome)
    document = {
        "benchmark": NAME,
        "question": SUMMARY,
        "quick": bool(ns.quick),
        "machine": machine,
        "parameters": {
            "plan": "quick" if ns.quick else "full",
            **plan.as_dict(),
            "seed": ns.seed,
            "backend_args": list(_backend_args(ns.seed)),
            "client": f"bench._http keep-alive HTTP/1.1 on {loop_name}",
            "hubhop_config": _hubhop_config("http://BACKEND", 0),
            "minimal_proxy": "bench/proxy/minimal_proxy.py",
            "addresses": {
                "backend": BACKEND_HOST,
                "hubhop": HUBHOP_HOST,
                "haproxy": HAPROXY_HOST,
                "aiohttp-minimal": MINIMAL_HOST,
            },
            "haproxy_version": (
                _haproxy.haproxy_version(haproxy_binary) if haproxy_binary else None
            ),
            "workloads": {w.name: w.title for w in workloads.WORKLOADS},
        },
        "variants": {t.name: t.url for t in targets},
        "skipped": {"haproxy": haproxy_note} if haproxy_note else {},
        "run": {
            "rounds_done": outcome.rounds_done,
            "upload_rounds_done": outcome.upload_rounds_done,
            "stopped_by_budget": outcome.stopped_by_budget,
            "measuring_s": round(outcome.seconds, 1),
            "total_s": round(time.monotonic() - started, 1),
            "reconnects": outcome.reconnects,
            "load_average_at_end": load_average(),
            "idle_cpu_percent": {k: round(v, 2) for k, v in outcome.idle_cpu_percent.items()},
        },
        "results": results,
        "cpu_per_request": cpu,
    }
    json_path = out_dir / f"{NAME}.json"
    write_json(json_path, document)
    # The raw concurrency-1 timings (ns), for anyone who wants to redo the statistics.
    raw: dict[str, Any] = {
        f"{w}__{v}__c1_ns": np.concatenate(s.c1_rounds)
        for w, by_variant in outcome.samples.items()
        for v, s in by_variant.items()
        if s.c1_rounds
    }
    np.savez_compressed(out_dir / f"{NAME}_samples.npz", **raw)
    title = (
        f"{NAME}: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['date']}, commit {(machine['git_commit'] or 'none')[:10]}"
    )
    skipped_plot = plot.plot(results, cpu, plan.concurrency, title, out_dir / f"{NAME}.png")

    print()
    print(summary.tables(results, cpu, plan.concurrency))
    print()
    idle = ", ".join(f"{k} {v:.2f}%" for k, v in outcome.idle_cpu_percent.items())
    print(f"idle CPU of each proxy before round 1 (counted in its CPU per request): {idle}")
    if plan.upload_bytes != FULL.upload_bytes:
        print(f"note: this plan uploads {plan.upload_bytes / 1e6:.0f} MB, not the full 200 MB")
    if outcome.stopped_by_budget:
        print(f"note: the {plan.budget_s:.0f} s budget ran out after {outcome.rounds_done} rounds")
    truncated = sum(e["truncated_blocks"] for by_v in results.values() for e in by_v.values())
    if truncated:
        print(f"note: {truncated} block(s) hit the per-block time cap and were cut short")
    if haproxy_note:
        print(f"note: HAProxy variant {haproxy_note}")
    print(f"wrote {json_path}")
    if skipped_plot:
        print(f"plot skipped: {skipped_plot}")
    else:
        print(f"wrote {out_dir / f'{NAME}.png'}")
    print(f"total {time.monotonic() - started:.1f} s")
    return 0
