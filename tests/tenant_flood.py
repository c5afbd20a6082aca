"""One tenant's flood for the overload fault test (tests/test_tenant_overload.py), in a process of
its own, so that its sending costs the client that measures the other tenants nothing.

    python -m tests.tenant_flood TOKEN RATE WINDOW_S WINDOWS

Rules:
- It says `ready` once it can send, then reads one line on stdin: the URL to send to and the
  time.monotonic() origin of the run (CLOCK_MONOTONIC, the same in every process of a Linux
  machine), separated by a space.
- It floods only the loaded windows, the odd ones: [origin + k * WINDOW_S, + WINDOW_S) for odd
  k < WINDOWS, open loop at RATE requests a second (each sent at its planned time whatever the
  answers do).
- At the end it prints one JSON line: how many it sent, the count of each status, and the
  Retry-After of every 429 (null where there was none).
- Every request goes to the one loopback URL it was given.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

# Each request's whole life is bounded: a hang shows as a status of 0, never as a stuck run.
REQUEST_TIMEOUT_S = 10.0
BODY = json.dumps(
    {"model": "demo-llm", "max_tokens": 1, "messages": [{"role": "user", "content": "flood"}]}
).encode()


async def flood(token: str, rate: float, window_s: float, windows: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    retry_after: list[str | None] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            async with session.post(url, data=BODY, headers=headers) as answer:
                await answer.read()
                statuses[answer.status] += 1
                if answer.status == 429:
                    retry_after.append(answer.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError):
            statuses[0] += 1

    async with aiohttp.ClientSession(timeout=timeout) as session:
        print("ready", flush=True)
        url, origin_text = (await asyncio.to_thread(sys.stdin.readline)).split()
        origin = float(origin_text)
        tasks = []
        for k in range(1, windows, 2):
            start = origin + k * window_s
            for i in range(int(rate * window_s)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks)
    return {"sent": len(tasks), "statuses": dict(statuses), "retry_after": retry_after}


def main() -> None:
    token, rate, window_s, windows = sys.argv[1:5]
    result = asyncio.run(flood(token, float(rate), float(window_s), int(windows)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
