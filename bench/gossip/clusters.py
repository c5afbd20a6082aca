"""A cluster under test, whatever gossips in it: start, join, look, change, kill, stop.

The measurements (`measure.py`) see only this interface, so hubhop and Serf are measured by the
same code. This module holds the interface and the hubhop side; `serf.py` holds the Serf side.

Rules:
- Node `i` (0-based) of a system has its own loopback addresses; node 0 is the seed the others
  join. Addresses stay clear of the ones the repository's tests use (127.0.3/4.x), so a test
  run and a benchmark run on the same box do not collide.
- A view is what one node lists: every member's state, normalised to alive / suspect / dead /
  left (Serf's "failed" is "dead"), and the models its record (tags) carries.
- Every process is started here and stopped by its PID; `stop_all` stops them in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import _http, _launch

# One 32-byte key for both systems: AES-256-GCM on every datagram and stream, as Serf's
# `-encrypt` does with a key of this length. A fixed key: the run is a lab, not a deployment.
KEY = base64.b64encode(bytes(range(32))).decode()
GOSSIP_PORT = 7946  # memberlist's default port; each node has its own address, so all share it
BASE_MODEL = "chat-7b"
# An HTTP poll of a members view: a loaded 2-core box answers in milliseconds; 10 s is stuck.
VIEW_TIMEOUT_S = 10.0
# hubhop's shutdown drains in-flight requests; the benchmark sends none, so a short grace.
DRAIN_GRACE_S = 1.0

OnJoined = Callable[[int, float], None]


class BenchError(RuntimeError):
    """A cluster could not be started or driven; the run reports it and stops that system."""


@dataclass(frozen=True)
class Seen:
    """One member as one node lists it."""

    state: str  # alive | suspect | dead | left
    models: tuple[str, ...]
    incarnation: int | None = None
    version: int | None = None  # the record's version (hubhop); Serf has none


View = dict[str, Seen]


def node_name(i: int) -> str:
    return f"node-{i + 1:03d}"


class Cluster(ABC):
    """N nodes of one gossip system on loopback."""

    system: str = ""
    # The /24 the gossip sockets bind (node i is .i+1): what `traffic.py` counts per system.
    gossip_net: str = ""

    def __init__(self, workdir: Path, n: int) -> None:
        if not 2 <= n <= 250:
            raise ValueError(f"cluster size {n} out of 2..250 (one /24 of loopback addresses)")
        self.workdir = workdir
        self.n = n
        self.names = [node_name(i) for i in range(n)]
        self.procs: dict[int, _launch.Proc] = {}
        self.killed: set[int] = set()
        self.view_failures = 0  # polls that got no answer in time (counted, not retried)

    def gossip_addr(self, i: int) -> str:
        return f"{self.gossip_net}.{i + 1}:{GOSSIP_PORT}"

    def pid(self, i: int) -> int:
        return self.procs[i].pid

    def is_up(self, i: int) -> bool:
        return i in self.procs and i not in self.killed

    @abstractmethod
    def start_seed(self) -> None:
        """Start node 0 alone; return once it is ready."""

    @abstractmethod
    async def join_rest(self, on_joined: OnJoined, schedule: Sequence[float] | None) -> None:
        """Have nodes 1..N-1 join node 0; call `on_joined(i, t)` at each node's join moment.

        `schedule`: offsets (s) from the first join at which each node joins, to replay another
        system's join pace; None joins as fast as this system can.
        """

    @abstractmethod
    async def view(self, i: int, limit_s: float = VIEW_TIMEOUT_S) -> View | None:
        """Node i's members; None when it did not answer within `limit_s`."""

    @abstractmethod
    async def update(self, i: int, models: tuple[str, ...]) -> float:
        """Change node i's record to list `models`; returns the monotonic time of the change."""

    @abstractmethod
    async def close(self) -> None:
        """Close client connections (not the processes)."""

    def kill(self, i: int) -> float:
        """SIGKILL node i; returns the monotonic time of the signal."""
        proc = self.procs[i]
        t = time.monotonic()
        proc.process.send_signal(signal.SIGKILL)
        self.killed.add(i)
        proc.process.wait(10)
        return t

    def signal(self, i: int, signum: int) -> None:
        if self.procs[i].process.poll() is None:
            os.kill(self.pid(i), signum)

    def stop_all(self) -> None:
        procs = list(self.procs.values())
        if not procs:
            return
        with ThreadPoolExecutor(max_workers=len(procs)) as pool:  # all at once: each waits
            list(pool.map(lambda p: p.stop(), procs))

    @abstractmethod
    def dead_declarations(self) -> list[tuple[str, str]]:
        """(observer, subject) for every 'subject is dead/failed' its logs have said so far."""

    @abstractmethod
    def settings(self) -> dict[str, object]:
        """The timing this system runs with, for the JSON."""


class HubhopCluster(Cluster):
    system = "hubhop"
    gossip_net = "127.0.7"
    http_net = "127.0.6"
    # A backend URL that need not exist: the benchmark routes no requests.
    backend_net = "127.0.2"

    def __init__(self, workdir: Path, n: int, launch_parallel: int = 6) -> None:
        super().__init__(workdir, n)
        self.launch_parallel = launch_parallel
        self.connections: dict[int, _http.Connection] = {}
        self.requests: dict[int, _http.Request] = {}

    def config_text(self, i: int, models: tuple[str, ...]) -> str:
        model_list = ", ".join(f'"{m}"' for m in models)
        return (
            f'[node]\nname = "{self.names[i]}"\nrole = "{"city" if i == 0 else "edge"}"\n'
            'region = "hubei"\ncity = "wuhan"\n'
            f'[http]\nlisten = "{self.http_net}.{i + 1}:0"\n'
            # Info: the member events (MemberDead) the starvation run counts are logged there.
            '[log]\nlevel = "info"\n'
            f"[lifecycle]\ndrain_grace_s = {DRAIN_GRACE_S}\n"
            f'[gossip]\nbind = "{self.gossip_addr(i)}"\nseeds = ["{self.gossip_addr(0)}"]\n'
            f'keys = ["{KEY}"]\n'
            "[tls]\nplaintext = true\n"  # every daemon of the benchmark is on this one machine
            f'[[backends]]\nname = "npu-0"\nurl = "http://{self.backend_net}.{i + 1}:9000"\n'
            f'protocol = "openai"\nmodels = [{model_list}]\nchip = "ascend-910b"\nslots = 8\n'
        )

    def _config_path(self, i: int) -> Path:
        return self.workdir / f"{self.system}-{self.names[i]}.toml"

    def _launch(self, i: int) -> float:
        path = self._config_path(i)
        path.write_text(self.config_text(i, (BASE_MODEL,)))
        proc = _launch.run_hubhop_node(path)
        # The daemon joins (sends its push-pull to the seed) just before it prints ready.
        t = time.monotonic()
        self.procs[i] = proc
        self.connections[i] = _http.Connection(proc.url)
        self.requests[i] = _http.build_request(proc.url, "GET", "/hubhop/v1/members", b"", {})
        return t

    def start_seed(self) -> None:
        try:
            self._launch(0)
        except _launch.LaunchError as exc:
            raise BenchError(str(exc)) from None

    async def join_rest(self, on_joined: OnJoined, schedule: Sequence[float] | None) -> None:
        # Python daemons start slowly (imports, kernel warm-up); a few at a time, as fast as
        # the box allows. `schedule` is ignored: hubhop's pace is the one others replay.
        gate = asyncio.Semaphore(self.launch_parallel)

        async def one(i: int) -> None:
            async with gate:
                t = await asyncio.to_thread(self._launch, i)
            on_joined(i, t)

        try:
            await asyncio.gather(*(one(i) for i in range(1, self.n)))
        except _launch.LaunchError as exc:
            raise BenchError(str(exc)) from None

    async def view(self, i: int, limit_s: float = VIEW_TIMEOUT_S) -> View | None:
        connection = self.connections.get(i)
        if connection is None or i in self.killed:
            return None
        try:
            async with asyncio.timeout(limit_s):
                response = await connection.send(self.requests[i])
            document = json.loads(response.body)
        except (OSError, TimeoutError, _http.HttpError, ValueError):
            self.view_failures += 1
            await connection.close()  # an answer may still be on its way: never reuse it
            return None
        if response.status != 200:
            return None
        return {
            m["name"]: Seen(
                m["state"],
                tuple(m.get("models", ())),
                m.get("incarnation"),
                m.get("record_version"),
            )
            for m in document.get("members", ())
        }

    async def update(self, i: int, models: tuple[str, ...]) -> float:
        self._config_path(i).write_text(self.config_text(i, models))
        t = time.monotonic()
        self.signal(i, signal.SIGHUP)  # the daemon reloads and republishes its record at once
        return t

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()

    def dead_declarations(self) -> list[tuple[str, str]]:
        found = []
        for i, proc in self.procs.items():
            try:
                text = proc.log_path.read_text(errors="replace")
            except OSError:
                continue
            # app.py logs "member NAME: MemberDead" for every member this node declares dead.
            for line in text.splitlines():
                if line.endswith(": MemberDead") and " member " in line:
                    subject = line.rsplit(" member ", 1)[1].split(":", 1)[0]
                    found.append((self.names[i], subject))
        return found

    def settings(self) -> dict[str, object]:
        try:
            from hubhop.core.swim import GossipSettings
        except ImportError:
            return {"note": "hubhop.core.swim not importable"}
        defaults = GossipSettings()
        return {
            "source": "hubhop.core.swim.GossipSettings defaults (no tuning keys in [gossip])",
            **{
                name: getattr(defaults, name)
                for name in defaults.__dataclass_fields__
                if isinstance(getattr(defaults, name), int | float)
            },
        }
