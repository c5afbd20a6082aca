"""Serf as the comparison: finding (or installing) it, its RPC, and a cluster of agents.

Rules:
- Serf is installed only when the operator asks (`--install`: apt-get, Debian package `serf`);
  without it the Serf side is skipped with a message.
- Agents run in the foreground, one process each, LAN profile, encrypted with the same 32-byte
  key as hubhop, each on its own loopback address (127.0.5.N, gossip 7946, RPC 7373).
- The benchmark talks to the agents over Serf's own RPC protocol (msgpack over TCP, the one
  `serf members` / `serf tags` / `serf join` use), on one persistent connection per agent, so
  polling costs a request rather than a Go process start per look.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

from bench import _launch
from bench.gossip.clusters import (
    BASE_MODEL,
    GOSSIP_PORT,
    KEY,
    VIEW_TIMEOUT_S,
    BenchError,
    Cluster,
    OnJoined,
    Seen,
    View,
)

RPC_PORT = 7373
# apt-get over a slow mirror can take a while; bound it so a bench never hangs on it.
INSTALL_TIMEOUT_S = 300.0
STATES = {"alive": "alive", "failed": "dead", "left": "left", "leaving": "alive"}
# What memberlist's DefaultLANConfig and Serf's DefaultConfig set (serf 0.9 / memberlist 0.2+);
# reported beside hubhop's settings. Serf has no knob for these beyond the profile.
LAN_PROFILE = {
    "source": "serf -profile=lan (memberlist DefaultLANConfig)",
    "probe_interval_s": 1.0,
    "probe_timeout_s": 0.5,
    "indirect_checks": 3,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "retransmit_mult": 4,
    "gossip_interval_s": 0.2,
    "gossip_fanout": 3,
    "push_pull_interval_s": 30.0,
    "gossip_to_dead_s": 30.0,
    "awareness_max_multiplier": 8,
}


def find_serf() -> str | None:
    return shutil.which("serf") or next(
        (p for p in ("/usr/bin/serf", "/usr/local/bin/serf") if os.access(p, os.X_OK)), None
    )


def install_serf() -> tuple[str | None, str]:
    """`apt-get update && apt-get install -y serf`; returns (path, message)."""
    if shutil.which("apt-get") is None:
        return None, "apt-get is not available here"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "serf"],
    ):
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(argv)}` took over {INSTALL_TIMEOUT_S:.0f} s"
        if done.returncode != 0:
            tail = (done.stdout[-300:] + done.stderr[-300:]).strip()
            return None, f"`{' '.join(argv)}` failed ({done.returncode}): {tail}"
    path = find_serf()
    return path, "installed" if path else "installed, but no serf binary was found"


def serf_version(binary: str) -> str:
    """The package version (dpkg) and what the binary says (Debian's build says 0.8.2-dev)."""
    parts = []
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "serf"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if done.returncode == 0:
            parts.append(f"package {done.stdout.strip()}")
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10)
        parts.append(f"binary says {' / '.join(done.stdout.split(chr(10))[:2])}")
    return "; ".join(parts) or "unknown"


class RpcError(RuntimeError):
    pass


class SerfRpc:
    """One connection to one agent's RPC: a header map, then a body map when the command has
    one. Requests on a connection run one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._unpacker = msgpack.Unpacker(raw=False)
        self._seq = 0
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._unpacker = msgpack.Unpacker(raw=False)
        self._seq = 0
        await self._call("handshake", {"Version": 1}, reply_body=False)

    async def _next(self) -> Any:
        assert self._reader is not None
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionError("serf agent closed the RPC connection") from None
                self._unpacker.feed(data)

    async def _call(self, command: str, body: dict[str, Any] | None, reply_body: bool) -> Any:
        assert self._writer is not None
        seq = self._seq
        self._seq += 1
        out = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            out += msgpack.packb(body)
        self._writer.write(out)
        header = await self._next()
        if header.get("Seq") != seq:
            raise RpcError(f"{command}: reply for seq {header.get('Seq')}, wanted {seq}")
        reply = await self._next() if reply_body else None
        if header.get("Error"):
            raise RpcError(f"{command}: {header['Error']}")
        return reply

    async def call(
        self,
        command: str,
        body: dict[str, Any] | None = None,
        reply_body: bool = True,
        limit_s: float = VIEW_TIMEOUT_S,
    ) -> Any:
        async with self._lock, asyncio.timeout(limit_s):
            try:
                if self._writer is None:
                    await self._connect()
                return await self._call(command, body, reply_body)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


class SerfCluster(Cluster):
    system = "serf"
    gossip_net = "127.0.5"

    def __init__(self, workdir: Path, n: int, binary: str) -> None:
        super().__init__(workdir, n)
        self.binary = binary
        self.rpcs: dict[int, SerfRpc] = {}
        self.lines: dict[int, list[str]] = {}

    def rpc_host(self, i: int) -> str:
        return f"{self.gossip_net}.{i + 1}"

    def argv(self, i: int) -> list[str]:
        return [
            self.binary,
            "agent",
            f"-node={self.names[i]}",
            f"-bind={self.gossip_addr(i)}",
            f"-rpc-addr={self.rpc_host(i)}:{RPC_PORT}",
            "-profile=lan",
            f"-encrypt={KEY}",
            "-log-level=info",
            "-tag",
            f"models={BASE_MODEL}",
        ]

    def _start(self, i: int) -> None:
        proc = _launch.start_listening_process(
            f"serf-{self.names[i]}", self.argv(i), self.workdir, self.rpc_host(i), RPC_PORT
        )
        self.procs[i] = proc
        self.lines[i] = []
        self.rpcs[i] = SerfRpc(self.rpc_host(i), RPC_PORT)

    def start_seed(self) -> None:
        try:
            self._start(0)
        except _launch.LaunchError as exc:
            raise BenchError(str(exc)) from None

    async def join_rest(self, on_joined: OnJoined, schedule: Sequence[float] | None) -> None:
        # Agents start in milliseconds: start them all unjoined first, then issue the joins
        # (the RPC `serf join` uses) at the schedule's offsets, or all at once.
        try:
            await asyncio.gather(*(asyncio.to_thread(self._start, i) for i in range(1, self.n)))
        except _launch.LaunchError as exc:
            raise BenchError(str(exc)) from None
        offsets = list(schedule) if schedule is not None else [0.0] * (self.n - 1)
        offsets = (offsets + [offsets[-1] if offsets else 0.0] * self.n)[: self.n - 1]
        start = time.monotonic()

        async def one(i: int, offset: float) -> None:
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            t = time.monotonic()
            reply = await self.rpcs[i].call(
                "join", {"Existing": [self.gossip_addr(0)], "Replay": False}
            )
            if not reply or reply.get("Num", 0) < 1:
                raise BenchError(f"serf {self.names[i]} could not join: {reply}")
            on_joined(i, t)

        await asyncio.gather(
            *(one(i, off) for i, off in zip(range(1, self.n), offsets, strict=True))
        )

    async def view(self, i: int, limit_s: float = VIEW_TIMEOUT_S) -> View | None:
        rpc = self.rpcs.get(i)
        if rpc is None or i in self.killed:
            return None
        try:
            reply = await rpc.call("members", limit_s=limit_s)
        except (OSError, TimeoutError, RpcError, ValueError, msgpack.UnpackException):
            self.view_failures += 1  # call() closed the connection: the next one reconnects
            return None
        return {
            m["Name"]: Seen(
                STATES.get(m["Status"], m["Status"]),
                tuple(m.get("Tags", {}).get("models", "").split(",")),
            )
            for m in reply.get("Members", ())
        }

    async def update(self, i: int, models: tuple[str, ...]) -> float:
        t = time.monotonic()
        await self.rpcs[i].call(
            "tags", {"Tags": {"models": ",".join(models)}, "DeleteTags": []}, reply_body=False
        )
        return t

    async def close(self) -> None:
        for rpc in self.rpcs.values():
            await rpc.close()

    def _drain(self) -> None:
        """Move what the agents printed (Serf logs to stdout) into `lines` and their log file."""
        for i, proc in self.procs.items():
            got = []
            while True:
                try:
                    got.append(proc.lines.get_nowait())
                except queue.Empty:
                    break
            if got:
                self.lines[i].extend(got)
                with proc.log_path.open("a") as log:
                    log.write("\n".join(got) + "\n")

    def dead_declarations(self) -> list[tuple[str, str]]:
        self._drain()
        found = []
        for i, lines in self.lines.items():
            for line in lines:
                # "[INFO] serf: EventMemberFailed: node-003 127.0.5.3"
                if "EventMemberFailed: " in line:
                    subject = line.split("EventMemberFailed: ", 1)[1].split()[0]
                    found.append((self.names[i], subject))
        return found

    def stop_all(self) -> None:
        super().stop_all()
        self._drain()

    def settings(self) -> dict[str, object]:
        return dict(LAN_PROFILE)


__all__ = ["GOSSIP_PORT", "SerfCluster", "find_serf", "install_serf", "serf_version"]
