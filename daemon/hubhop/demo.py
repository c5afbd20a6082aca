"""`hubhop demo`: one node and a demo backend as real processes, real requests, a clean stop.

What it shows: an OpenAI-style chat completion streamed token by token through the node, a
KServe v2 inference whose tensors come back intact, a binary-tensor upload (a stand-in for a CT
slice stack) streamed through and checked by CRC on the far side, and where each was served.
Every process it starts it stops by its PID, and it exits non-zero when anything did not work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hubhop.core.kserve_binary import binary_infer_header, binary_infer_headers
from hubhop.io import loop as event_loop

# Every step of the demo is bounded so a broken build fails fast instead of hanging `make demo`.
STEP_TIMEOUT_S = 30.0
DEMO_MODEL = "demo-llm"
CT_MODEL = "ct-triage"


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default="127.0.1.1",
        help="loopback address the node binds (default 127.0.1.1: its own, as a site would)",
    )
    p.add_argument("--chip", default="ascend-910b", help="chip label of the demo backend")
    p.add_argument("--tokens", type=int, default=24, help="tokens in the streamed chat answer")
    p.add_argument(
        "--upload-mb", type=int, default=64, help="size of the streamed binary tensor upload"
    )
    p.add_argument("--loop", choices=event_loop.LOOP_KINDS, default="auto")


@dataclass
class Started:
    process: asyncio.subprocess.Process
    url: str
    name: str


async def _start(name: str, args: list[str], ready_prefix: str, log_path: Path) -> Started:
    log_file = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubhop", *args, stdout=asyncio.subprocess.PIPE, stderr=log_file
    )
    log_file.close()
    assert process.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT_S)
            if not line:
                raise RuntimeError(f"{name} exited before it was ready; see {log_path}")
            text = line.decode().strip()
            if text.startswith(ready_prefix):
                return Started(process, text.split()[2], name)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


async def _stop(started: Started) -> int:
    if started.process.returncode is None:
        started.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(started.process.wait(), STEP_TIMEOUT_S)
    except TimeoutError:
        started.process.kill()
        return await started.process.wait()


def _where(response: aiohttp.ClientResponse) -> str:
    h = response.headers
    return (
        f"node={h.get('x-hubhop-node')} backend={h.get('x-hubhop-backend')} "
        f"chip={h.get('x-backend-chip')} request-id={h.get('x-request-id')}\n"
        f"    server-timing: {h.get('server-timing')}"
    )


async def _chat(session: aiohttp.ClientSession, url: str, tokens: int) -> None:
    print("\n1. OpenAI chat completion, streamed (POST /v1/chat/completions, stream=true)")
    body = {
        "model": DEMO_MODEL,
        "stream": True,
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": "Summarise the overnight ward report."}],
    }
    chunks: list[str] = []
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        print("    answer: ", end="", flush=True)
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            chunks.append(delta)
            print(delta, end="", flush=True)
        print(f"\n    {len(chunks)} chunks arrived one by one; served at {_where(response)}")
    if len(chunks) < 2:
        raise RuntimeError("the chat answer did not arrive as a stream")


async def _infer(session: aiohttp.ClientSession, url: str) -> None:
    print(f"\n2. KServe v2 inference (POST /v2/models/{CT_MODEL}/infer)")
    tensor = {"name": "pixels", "shape": [2, 3], "datatype": "FP32", "data": [0.5, 1, 2, 3, 4, 5]}
    body = {"id": "demo-1", "inputs": [tensor]}
    async with session.post(f"{url}/v2/models/{CT_MODEL}/infer", json=body) as response:
        response.raise_for_status()
        answer: dict[str, Any] = await response.json()
        print(f"    outputs: {json.dumps(answer.get('outputs'))}")
        print(f"    served at {_where(response)}")
    if answer["outputs"][0]["data"] != tensor["data"]:
        raise RuntimeError("the tensor did not round-trip")


async def _upload(session: aiohttp.ClientSession, url: str, megabytes: int) -> None:
    size = megabytes * 1024 * 1024
    print(f"\n3. {megabytes} MB binary tensor, streamed through (KServe binary tensor extension)")
    header = binary_infer_header("series", size)
    slab = os.urandom(1024 * 1024)
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(slab, crc)

    async def body() -> Any:
        yield header
        for _ in range(megabytes):
            yield slab

    started = time.perf_counter()
    async with session.post(
        f"{url}/v2/models/{CT_MODEL}/infer", data=body(), headers=binary_infer_headers(header)
    ) as response:
        response.raise_for_status()
        answer = await response.json()
    seconds = time.perf_counter() - started
    outputs = {o["name"]: o["data"][0] for o in answer["outputs"]}
    ok = outputs.get("series_nbytes") == size and outputs.get("series_crc32") == crc
    print(
        f"    backend counted {outputs.get('series_nbytes')} bytes, crc32 "
        f"{'matches' if ok else 'DIFFERS'}; {megabytes / seconds:.0f} MB/s through the node"
    )
    if not ok:
        raise RuntimeError("the streamed upload arrived damaged")


async def _demo(ns: argparse.Namespace, workdir: Path) -> int:
    backend = await _start(
        "demo backend",
        [
            "demo-backend",
            "--port", "0",
            "--chip", ns.chip,
            "--models", f"{DEMO_MODEL},{CT_MODEL}",
            "--service-ms", "lognormal:30,0.3",
            "--token-rate", "40",
            "--slots", "4",
        ],
        "demo-backend ready",
        workdir / "backend.log",
    )  # fmt: skip
    started = [backend]
    try:
        config = workdir / "node.toml"
        config.write_text(
            "[node]\n"
            'name = "wuhan-union-hospital"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
            f'[http]\nlisten = "{ns.address}:0"\n'
            "[lifecycle]\ndrain_grace_s = 5.0\n"
            f'[[backends]]\nname = "npu-0"\nurl = "{backend.url}"\n'
            f'protocol = ["openai", "kserve_v2"]\nmodels = ["{DEMO_MODEL}", "{CT_MODEL}"]\n'
            f'chip = "{ns.chip}"\nslots = 4\nprice = 1.0\ngreen_share = 0.6\n'
        )
        node = await _start(
            "hubhop node",
            ["run", "--config", str(config), "--loop", ns.loop],
            "hubhop ready",
            workdir / "node.log",
        )
        started.append(node)
        print(f"node wuhan-union-hospital listening on {node.url}")
        print(f"demo backend ({ns.chip}) on {backend.url}")
        timeout = aiohttp.ClientTimeout(total=STEP_TIMEOUT_S * 4)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{node.url}/v1/models") as response:
                models = [m["id"] for m in (await response.json())["data"]]
            print(f"models offered: {', '.join(models)}")
            await _chat(session, node.url, ns.tokens)
            await _infer(session, node.url)
            await _upload(session, node.url, ns.upload_mb)
    finally:
        print()
        for proc in reversed(started):
            code = await _stop(proc)
            print(f"stopped {proc.name} (pid {proc.process.pid}), exit code {code}")
    return 0


def run_demo(ns: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hubhop-demo-") as tmp:
        try:
            return event_loop.run(_demo(ns, Path(tmp)), ns.loop)
        except (RuntimeError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
            for log_name in ("node.log", "backend.log"):
                log_path = Path(tmp) / log_name
                if log_path.exists():
                    print(f"--- {log_name} ---\n{log_path.read_text()[-4000:]}", file=sys.stderr)
            return 1
