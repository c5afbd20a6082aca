"""The composition root: builds one node from its config, starts it, reloads it and drains it.

Lifecycle rules:
- start: the config was validated whole before this point (`hubhop run` exits 78 otherwise);
  open the backend pool, bind the listener, compile or load the routing kernels, and only then
  say READY=1 to systemd and print the ready line, so "ready" always means "accepting requests
  without a first-request compile". `hubhop run` then freezes the start-up heap out of the
  garbage collector's walks (`freeze_start_up_heap`) before its ready line.
- watchdog: when systemd asks for one, WATCHDOG=1 is sent from a task on the event loop, so a
  loop that blocks stops the pings and systemd restarts the service.
- SIGHUP: read and validate the file again; swap it in whole, or keep the old one and log why.
  Settings bound at start (node name, listen address, connection pool size) need a restart, so
  a reload that changes them is refused rather than half-applied. The TLS files' contents
  are read again into the live contexts (certificate rotation, hubhop.io.peer_tls), their
  paths need a restart; files that do not load leave the running ones in place. RELOADING=1 with
  MONOTONIC_USEC= goes out first and READY=1 after, as systemd's Type=notify-reload expects.
- SIGTERM or SIGINT: STOPPING=1, readiness answers 503, new work is refused, the listener
  closes, in-flight requests get up to `lifecycle.drain_grace_s` to finish, then everything
  closes and the process exits 0. A second signal exits at once.
- The shutdown trigger is injectable (`stop` event) so tests and embedders need no signals.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from hubhop import __version__
from hubhop.core.admission import Admission
from hubhop.core.config import ConfigError, NodeConfig
from hubhop.core.outlier_detection import Rotation, RotationChange
from hubhop.io import loop as event_loop
from hubhop.io.admin_socket import AdminServer, AdminSocketError
from hubhop.io.admission_gate import AdmissionGate
from hubhop.io.backend_health import BackendHealth
from hubhop.io.backend_proxy import BackendPool
from hubhop.io.client_listener import ClientSite
from hubhop.io.config_file import load_config
from hubhop.io.decision_log import DecisionLog
from hubhop.io.gossip_admin import GossipAdmin
from hubhop.io.gossip_service import GossipService
from hubhop.io.grpc_server import GrpcServer
from hubhop.io.local_endpoint import EndpointState, build_endpoint_app, watched_view
from hubhop.io.node_metrics import NodeMetrics
from hubhop.io.peer_listener import PeerListener
from hubhop.io.peer_tls import PeerTls
from hubhop.io.recent_log import RecentLog
from hubhop.io.request_log import install_request_log
from hubhop.io.request_router import Cluster
from hubhop.io.sd_notify import SdNotifier, watchdog_loop
from hubhop.io.table_watch import TableWatch
from hubhop.scoring.scorer import Scorer

log = logging.getLogger("hubhop")

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald stamps the time itself


def restart_only_changes(old: NodeConfig, new: NodeConfig) -> list[str]:
    """Settings a running node cannot take without a restart, that differ between old and new."""
    changed = []
    if old.node.name != new.node.name:
        changed.append("node.name")
    if old.log.recent_decisions != new.log.recent_decisions:
        changed.append("log.recent_decisions")
    if old.http.listen != new.http.listen:
        changed.append("http.listen")
    if old.http.max_connections_per_backend != new.http.max_connections_per_backend:
        changed.append("http.max_connections_per_backend")
    if old.kernels != new.kernels:
        changed.append("kernels.cache_dir")
    if old.gossip != new.gossip:
        changed.append("gossip")
    if old.latency.tuning != new.latency.tuning:
        changed.append("latency (its probe tuning)")
    if old.wan != new.wan:
        changed.append("wan")
    if old.admin != new.admin:
        changed.append("admin.socket")
    if old.tls != new.tls:
        changed.append("tls (its paths, plaintext, peer_listen; the files' contents reload)")
    if old.grpc != new.grpc:
        changed.append("grpc")
    return changed


@dataclass
class Node:
    """One running hubhop node."""

    config: NodeConfig
    config_path: Path | None = None
    notifier: SdNotifier = field(default_factory=SdNotifier.from_environ)
    state: EndpointState = field(init=False)
    pool: BackendPool = field(init=False)
    metrics: NodeMetrics = field(init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    bound_port: int = field(default=0, init=False)
    gossip: GossipService | None = field(default=None, init=False)
    health: BackendHealth = field(init=False)
    # Mutual TLS between daemons ([tls] files): the contexts, and the listener peers call.
    peer_tls: PeerTls | None = field(default=None, init=False)
    peer_listener: PeerListener | None = field(default=None, init=False)
    # The gRPC API ([grpc] listen): hubhop.v1.Hubhop, registered services, health, reflection.
    grpc: GrpcServer | None = field(default=None, init=False)
    # The admin API ([admin] socket: hubhop status, hubhop keys) and what it reports from.
    admin: AdminServer | None = field(default=None, init=False)
    gossip_admin: GossipAdmin | None = field(default=None, init=False)
    recent_log: RecentLog = field(default_factory=RecentLog, init=False)
    phase: str = field(default="starting", init=False)  # starting, ready, draining
    started_at: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        self.state = EndpointState(self.config)
        self.state.gate = AdmissionGate(Admission.for_backends(self.config.backends))
        # Outlier detection: the request path reports to it through the gate.
        self.health = BackendHealth(self.config, self.state.gate)
        self.metrics = self.state.metrics = NodeMetrics()  # its own registry: GET /metrics
        # The recent decisions (Explain, /ui) and the live feed of table, members and decisions.
        keep = self.config.log.recent_decisions
        self.state.decisions = DecisionLog(keep) if keep else None
        self.state.watch = TableWatch(
            self.config.node.name, partial(watched_view, self.state), self.state.decisions
        )
        self.metrics.watch_node(
            lambda: self.config,
            lambda: None if self.state.gate is None else self.state.gate.admission,
            lambda: self.gossip,
        )
        if self.config.tls.mutual_tls:
            self.peer_tls = PeerTls(self.config.tls)
        self.pool = BackendPool(
            self.config.http, None if self.peer_tls is None else self.peer_tls.client
        )
        self.scorer = Scorer(self.config.node.name)

    def sample_load(self) -> dict[str, tuple[float, tuple[float, float, float], float]]:
        """Live load per backend for this node's record, as admission counts it: busy slots,
        waiting requests per lane, the measured service time."""
        assert self.state.gate is not None
        return self.state.gate.admission.load()

    @property
    def url(self) -> str:
        """Where this daemon's HTTP side is reached: the advertised address if the config
        gives one, else the listen address."""
        host = self.config.http.peer_host or self.config.http.listen.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.bound_port}"

    async def start(self) -> None:
        await self.start_admin()  # first: `hubhop status` says "starting" during the warm-up
        await self.pool.start()
        app = build_endpoint_app(self.state, self.pool)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.config.lifecycle.drain_grace_s,
            # A client that goes away cancels its request here, and so upstream: a dropped
            # hedge copy or a gone app frees its admission slot and its backend call at once.
            handler_cancellation=True,
        )
        await self._runner.setup()
        listen = self.config.http.listen
        # Apps' connections, held to [http]'s listener limits as they stand when each opens.
        site = ClientSite(self._runner, listen.host, listen.port, lambda: self.config.http.limits)
        await site.start()
        self.bound_port = self._runner.addresses[0][1]
        if self.config.grpc is not None:
            tls = self.config.tls if self.config.tls.mutual_tls else None
            self.grpc = GrpcServer(self.config.grpc, self.state, self.pool, tls)
            try:
                await self.grpc.start()
            except OSError:
                await self._runner.cleanup()
                self._runner = None
                raise
        self.warm_kernels()
        self.health.watch(self._rotation_changed)
        if self.config.gossip is not None:
            # This node's rows in the routing table take busy slots and queues from admission
            # as they change, not from the record last published (hubhop.scoring.candidates).
            assert self.state.gate is not None
            own_rows = partial(self.scorer.table.set_live_load, self.config.node.name)
            self.state.gate.watch_load(own_rows)
            http_addr = self.url.removeprefix("http://")
            if self.peer_tls is not None:  # records name the peer listener: peers call that
                self.peer_listener = PeerListener(self.state, self.pool, self.peer_tls.server)
                await self.peer_listener.start(self.config)
                http_addr = self.peer_listener.address(self.config)
            self.gossip = GossipService(
                self.config,
                http_addr,
                self.sample_load,
                self.scorer,
                self.health.in_rotation,
                grpc_addr="" if self.grpc is None else self.grpc.peer_address,
            )
            await self.gossip.start()
            self.gossip_admin = GossipAdmin(self.gossip)
            self.metrics.watch_gossip(self.gossip)
            self.state.members = self.gossip.members
            self.state.peers = self.gossip.peers
            self.state.probe_status = self.gossip.probe_status
            self.state.rtt = self.gossip.rtt_json
            gossip = self.gossip
            self.state.cluster = Cluster(
                self.scorer,
                gossip.peer_addr,
                gossip.is_member_host,
                lambda: gossip.wan,
                mutual_tls=self.peer_tls is not None,
                peer_grpc_addr=gossip.peer_grpc_addr,
                gossip_keys=gossip.keys,
            )
        interval = self.notifier.watchdog_interval_s()
        if interval is not None:
            self._spawn(watchdog_loop(self.notifier, interval))
        status = f"serving on {self.url}, {len(self.config.backends)} backend(s)"
        self.notifier.ready(status)
        if self.grpc is not None:
            await self.grpc.ready()
        self.phase = "ready"
        log.info("node %s (%s) %s", self.config.node.name, self.config.node.role, status)

    async def start_admin(self) -> None:
        """Serve the admin API when [admin] names a socket; AdminSocketError when it cannot."""
        path = self.config.admin.socket
        if path is None or self.admin is not None:
            return
        self.recent_log.install()
        admin = AdminServer(path, self.status, lambda: self.gossip_admin)
        try:
            await admin.start()
        except AdminSocketError:
            self.recent_log.uninstall()
            raise
        self.admin = admin

    async def stop_admin(self) -> None:
        if self.admin is not None:
            await self.admin.close()
            self.admin = None
            self.recent_log.uninstall()

    def status(self) -> dict[str, Any]:
        """What `hubhop status` shows: this node, its phase, its view of the cluster, and the
        last warnings it logged. Keys by fingerprint only."""
        config = self.config
        listening: dict[str, str | None] = {
            "http": self.url.removeprefix("http://") if self.bound_port else None,
            "gossip": None if config.gossip is None else str(config.gossip.bind),
            "admin": config.admin.socket,
        }
        if self.grpc is not None:
            listening["grpc"] = self.grpc.address if self.grpc.port else None
        if config.tls.peer_listen is not None:
            listening["peer_tls"] = "{}:{}".format(*config.tls.peer_listen)
        gossip = self.gossip_admin
        return {
            "node": config.node.name,
            "role": config.node.role,
            "region": config.node.region,
            "city": config.node.city,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "readiness": self.phase,
            "listening": listening,
            "members": None if gossip is None else gossip.members_status(),
            "table": None if gossip is None else gossip.table_status(),
            "keyring": None if gossip is None else gossip.keyring_status(),
            "recent_errors": self.recent_log.recent(),
        }

    def warm_kernels(self) -> None:
        """Compile or load the routing kernels now, so no request pays for it."""
        from hubhop.scoring import kernels

        if kernels.FALLBACK_REASON:
            log.warning("routing kernels: NumPy references, slower: %s", kernels.FALLBACK_REASON)
        seconds = kernels.warm_up()
        log.info("routing kernels ready (%s) in %.2f s", kernels.IMPLEMENTATION, seconds)

    def _rotation_changed(self, changes: list[RotationChange]) -> None:
        """A backend left rotation, came back or took a slow-start step: say so, and publish
        the record at once so other entries route by it (its slots changed)."""
        for change in changes:
            level = logging.WARNING if change.rotation is Rotation.EJECTED else logging.INFO
            log.log(level, "outlier detection: %s", change.detail)
        if self.gossip is not None and self.gossip.node is not None:
            self.gossip.publish()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reload(self) -> bool:
        """Validate the config file again and swap it in; keep the old one when it is bad."""
        if self.config_path is None:
            log.warning("reload asked for, but this node was not started from a file")
            return False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            changed = restart_only_changes(self.config, new)
            if changed:
                raise ConfigError(
                    [f"{self.config_path}: {key}: changes only with a restart" for key in changed]
                )
        except ConfigError as error:
            for fault in error.faults:
                log.error("reload refused, keeping the running config: %s", fault)
            self.notifier.ready("reload refused; running config kept (see log)")
            return False
        if new.backends != self.config.backends or new.outlier != self.config.outlier:
            # In place: holders and waiters are kept, so the load a record shows stays true;
            # a backend in slow start keeps the slots outlier detection allows it.
            self.health.reconfigure(new)
        self.config = new
        self.state.config = new
        if self.gossip is not None:
            self.gossip.reconfigure(new)
        logging.getLogger().setLevel(new.log.level.upper())
        tls_kept = self.peer_tls is not None and not self.peer_tls.reload()
        kept = "; TLS files refused, running certificates kept (see log)" if tls_kept else ""
        status = f"reloaded; serving on {self.url}, {len(new.backends)} backend(s){kept}"
        self.notifier.ready(status)
        log.info("reloaded %s", self.config_path)
        return not tls_kept

    async def drain_and_stop(self) -> None:
        grace = self.config.lifecycle.drain_grace_s
        self.notifier.stopping()
        self.phase = "draining"
        self.state.draining = True
        if self.grpc is not None:
            await self.grpc.draining()  # health NOT_SERVING before anything closes
        if self.state.gate is not None:
            self.state.gate.admission.set_draining(True)
        if self.state.watch is not None:
            self.state.watch.close()  # watchers' streams end; they reconnect to another node
        log.info("draining: in-flight requests get up to %.1f s", grace)
        if self.gossip is not None:
            await self.gossip.stop()  # peers learn at once that this node is leaving
        # Both listeners close at once, and their handlers share the one grace.
        stopping = [] if self.peer_listener is None else [self.peer_listener.stop()]
        if self.grpc is not None:
            stopping.append(self.grpc.stop(grace))
        if self._runner is not None:
            # closes the listener, waits for handlers up to grace
            stopping.append(self._runner.cleanup())
            self._runner = None
        await asyncio.gather(*stopping)
        await self.pool.close()
        self.health.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.stop_admin()  # last: `hubhop status` says "draining" until the end
        self.notifier.close()
        log.info("stopped")


async def serve(config: NodeConfig, config_path: Path | None, stop: asyncio.Event) -> int:
    """Run a node until `stop` is set, with SIGTERM/SIGINT/SIGHUP wired when on the main thread."""
    node = Node(config, config_path)
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_stop_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second %s: exiting at once", signal.Signals(signum).name)
            os._exit(128 + signum)
        stop.set()

    # Handlers go in before READY=1 can go out: a SIGTERM that follows readiness at once must
    # drain, not kill the process with the default action.
    handled: list[int] = []
    try:
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, on_stop_signal, stop_signal)
            handled.append(stop_signal)
        loop.add_signal_handler(signal.SIGHUP, node.reload)
        handled.append(signal.SIGHUP)
    except (NotImplementedError, RuntimeError):
        log.debug("signal handlers unavailable here; relying on the stop event")
    try:
        try:
            await node.start()
        except AdminSocketError as exc:
            log.error("cannot serve the admin API: %s", exc)
            return 1
        except OSError as exc:
            where = exc.filename or config.http.listen  # [grpc] names itself
            log.error("cannot listen on %s: %s", where, exc.strerror or exc)
            await node.stop_admin()
            await node.pool.close()
            return 1
        freeze_start_up_heap()
        grpc_at = "" if node.grpc is None else f" grpc={node.grpc.address}"
        print(f"hubhop ready {node.url} node={config.node.name}{grpc_at}", flush=True)
        await stop.wait()
        await node.drain_and_stop()
    finally:
        for handled_signal in handled:
            loop.remove_signal_handler(handled_signal)
    return 0


# The young generation's collection threshold (CPython's default is 700). Its count goes up with
# each new container object and down with each freed one, but never below zero, so a few dozen
# requests in flight pass 700 every few requests. Those collections found nothing: the
# per-request objects are freed by reference counting (measured under the proxy benchmark,
# 1,791 collections over 44,000 requests freed 0 objects and cost 9 µs a request). 10,000
# stays above what 32 connections hold at once; real cycles (a traceback held by an exception)
# are still collected, once that many new objects have piled up instead of 700.
YOUNG_GC_THRESHOLD = 10_000


def freeze_start_up_heap() -> None:
    """Keep the garbage collector off what start-up built, and out of the request path.

    Once the kernels are warm, the process holds about 129,000 objects that live as long as it
    does (numba, numpy, the compiled kernels, aiohttp, the config). A full collection walks all
    of them, about 54 ms on a 2-core EPYC, and every request in flight waits for it: it was
    the p99 at 32 connections. Frozen, they are left out of every collection; what the running
    node allocates is still collected. For the process owner (`hubhop run`), not for a Node
    embedded in a test or another program, whose heap is not ours to freeze.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


def configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=LOG_FORMAT, force=True)
    install_request_log(sys.stderr)  # [log] requests: JSON lines, whatever the level


def run_node(config: NodeConfig, config_path: str | Path | None, loop_kind: str = "auto") -> int:
    """Blocking entry point of `hubhop run`.

    `kernels.cache_dir` must already be in NUMBA_CACHE_DIR: importing this module imports numba,
    which reads it once (`hubhop run` sets it before importing the app).
    """
    configure_logging(config.log.level)
    path = Path(config_path) if config_path is not None else None

    async def main() -> int:
        return await serve(config, path, asyncio.Event())

    try:
        return event_loop.run(main(), loop_kind)
    except event_loop.LoopUnavailable as exc:
        log.error("%s", exc)
        return 1
