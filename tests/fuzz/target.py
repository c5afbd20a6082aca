"""One fuzz target: a parser, the seeds it is fuzzed from, and what counts as a refusal.

Rules:
- `run(data)` hands one input to the parser, through the smallest entry point that is what the
  daemon really calls, and returns normally when the parser accepted the input or refused it
  the documented way (its error type). Anything else it raises is a crash; a parser that
  swallows its own errors into a counter (GossipNode's "internal_error") is checked by the
  target, which raises Crash.
- Seeds are valid inputs made by the project's own encoders, so mutations start from the shapes
  the parser really sees; `kind` says which mutations fit them (tests/fuzz/mutator.py).
- A target may hold state between inputs (a gossip node, an event loop); it bounds that state
  itself (a fresh node every so many inputs) and lets go of it in `close`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class Crash(Exception):
    """A fault a parser hid from its caller (counted instead of raised), made visible."""


@dataclass
class Target:
    name: str
    kind: str  # the seeds' kind: "bytes", "msgpack" or "text"
    seeds: tuple[bytes, ...]
    run: Callable[[bytes], None]
    close: Callable[[], None] = field(default=lambda: None)


def header_block(data: bytes) -> dict[str, str]:
    """`name: value` lines, decoded as aiohttp's server decodes a head (UTF-8, surrogate escapes),
    names lower-cased, surrounding whitespace of values stripped, the first of repeats kept. A
    line whose value holds a CR or a NUL is left out: llhttp refuses such a head (400)."""
    headers: dict[str, str] = {}
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip() and "\r" not in value and "\x00" not in value:
            headers.setdefault(name.strip().lower(), value.strip(" \t"))
    return headers


def lines(*pairs: tuple[str, str]) -> bytes:
    """A header block seed from (name, value) pairs."""
    return "\n".join(f"{n}: {v}" for n, v in pairs).encode("utf-8", "surrogateescape")
