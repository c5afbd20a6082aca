"""Choosing and running the event loop.

uvloop is the default on Linux: it roughly halves per-request overhead of the proxy path
against the stock loop. Plain asyncio is used when uvloop is not installed or when the operator
asks for it (`--loop asyncio`), e.g. to rule uvloop out while debugging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

LoopKind = Literal["auto", "uvloop", "asyncio"]
LOOP_KINDS: tuple[str, ...] = ("auto", "uvloop", "asyncio")

T = TypeVar("T")


class LoopUnavailable(RuntimeError):
    """The operator asked for uvloop explicitly and it is not installed."""


def loop_factory(kind: str) -> Any:
    """Return a loop factory for asyncio.Runner, or None for the stock loop."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if kind == "uvloop":
            raise LoopUnavailable(
                "--loop uvloop was asked for but uvloop is not installed"
            ) from exc
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run `main` to completion on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
