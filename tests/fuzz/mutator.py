"""The seeded mutator: turns a valid seed into a hostile variant, the same one for the same seed.

Rules:
- All randomness comes from the `random.Random` given to `Mutator`: a run is replayed exactly by
  its seed, and a crash by its input (the runner reports it in hex).
- Three families of mutation, picked by what the seed is: byte-level (bit and byte flips,
  insert, delete, duplicate, splice with another seed, truncate, interesting integers written
  over the bytes), msgpack-aware (unpack, change one value deep inside, pack again; or write a
  container header that claims far more items than follow), and text-aware for header blocks
  and TOML (a value replaced by a tricky token, a line duplicated or dropped, nesting piled up).
- An output is at most MAX_INPUT_BYTES: a fuzz input is about shapes, not sizes (size bounds
  have their own tests), and huge inputs would only slow the run down.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

# Big enough for a push-pull body with a few records and for a full example config (~4 KiB),
# small enough that one input costs microseconds, not milliseconds.
MAX_INPUT_BYTES = 16 * 1024
# Mutations stacked on one input: most finds need one or two; a few more reach odd corners.
MAX_STACKED = 4

# Integers at the edges of every width a wire or a parser uses (signed and unsigned).
INTERESTING_INTS: tuple[int, ...] = (
    0, 1, -1, 2, 7, 8, 15, 16, 31, 32, 127, 128, 255, 256, 1023, 1024, 4095, 4096,
    65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1,
    -128, -129, -32768, -(2**31), -(2**63),
)  # fmt: skip
INTERESTING_FLOATS: tuple[float, ...] = (
    0.0, -0.0, 1e-320, 5e-324, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), 0.5,
)  # fmt: skip
# Values a msgpack field may be swapped for: every type, and the edges of each.
INTERESTING_VALUES: tuple[object, ...] = (
    *INTERESTING_INTS,
    *INTERESTING_FLOATS,
    None, True, False, "", "a", "x" * 129, "x" * 300, "\x00", "é", "a" * 70_000,
    b"", b"\x00", b"\xff" * 64, [], {}, [[]], {"": 0}, {1: 1}, [None] * 20,
)  # fmt: skip
# Raw msgpack headers that claim a length the data does not hold (array32, map32, bin32, str32,
# ext32): a parser must not allocate for the claim before it has the bytes.
LYING_HEADERS: tuple[bytes, ...] = (
    b"\xdd\x7f\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\x7f\xff\xff\xff",
    b"\xc6\x7f\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc9\x7f\xff\xff\xff\x01",
    b"\xdc\xff\xff",
    b"\xc1",  # never used by msgpack
    b"\xd4\xff\x00",  # a timestamp-typed ext of the wrong size
    b"\xd6\xff\x00\x00\x00\x00",  # ext -1 (timestamp), 32 bits
)
# Tokens a header value or a TOML value may be replaced by: number forms that float() takes but
# a strict parser must not, digits that are not ASCII, separators, controls, the very long.
TRICKY_TEXT: tuple[str, ...] = (
    "", " ", "\t", "0", "-0", "+1", "1e400", "-1e400", "1e-400", "nan", "NaN", "inf", "-inf",
    "Infinity", "1_000", "0x10", "1.2.3", ".", "..", "5.", ".5", "²", "١٢", "٣", "𝟘", "1 2",
    "9" * 40, "9" * 5000, ",", ",,", "a,", ",a", "a,,b", "/", "//", "a/b/c", "\x00", "\x7f",
    "\udc80", "\udcff", "é", "\u200b", "true", "false", "yes", "null", "[]", "{}", "\"", "'",
    "x" * 129, "x" * 600, "Bearer", "Bearer ", "bearer x", "Basic abc", "=", "==", ";", "dur=",
    "backend;dur=1.2.3", "backend;dur=.", "route;dur=9" + "9" * 400, "emergency", "batch",
    "[[x]]", "[x]", "x = 1", "\"\"\"", "'''", "\\", "\\u0000", "1979-05-27T07:32:00Z",
)  # fmt: skip


class Mutator:
    """Seeded mutations of one kind of seed: "bytes", "msgpack" or "text"."""

    def __init__(self, rng: random.Random, seeds: Sequence[bytes], kind: str) -> None:
        if not seeds:
            raise ValueError("a mutator needs at least one seed")
        if kind not in ("bytes", "msgpack", "text"):
            raise ValueError(f"unknown seed kind {kind!r}")
        self.rng = rng
        self.seeds = tuple(seeds)
        self.kind = kind
        byte_ops: list[Callable[[bytes], bytes]] = [
            self.flip_bit,
            self.set_byte,
            self.insert_bytes,
            self.delete_bytes,
            self.duplicate_bytes,
            self.splice,
            self.truncate,
            self.write_integer,
        ]
        structured: list[Callable[[bytes], bytes]] = []
        if kind == "msgpack":
            structured = [self.msgpack_value, self.msgpack_value, self.msgpack_lying_header]
        elif kind == "text":
            structured = [self.text_value, self.text_value, self.text_lines, self.deep_nesting]
        self._ops = byte_ops + structured * 2  # structure-aware ones weigh as much as all bytes

    def next_input(self) -> bytes:
        """A seed, mutated 0 to MAX_STACKED times (0 now and then: the valid path is fuzzed too,
        and stateful targets see valid traffic between hostile inputs)."""
        data = self.rng.choice(self.seeds)
        for _ in range(self.rng.choice((0, 1, 1, 1, 2, 2, 3, MAX_STACKED))):
            data = self.rng.choice(self._ops)(data)
        return data[:MAX_INPUT_BYTES]

    # ---- byte level ---------------------------------------------------------------------------

    def _pos(self, data: bytes, end: bool = False) -> int:
        return self.rng.randint(0, len(data)) if end or not data else self.rng.randrange(len(data))

    def flip_bit(self, data: bytes) -> bytes:
        if not data:
            return bytes((1 << self.rng.randrange(8),))
        i = self._pos(data)
        return data[:i] + bytes((data[i] ^ (1 << self.rng.randrange(8)),)) + data[i + 1 :]

    def set_byte(self, data: bytes) -> bytes:
        if not data:
            return bytes((self.rng.randrange(256),))
        i = self._pos(data)
        value = self.rng.choice((0, 0xFF, 0x7F, 0x80, self.rng.randrange(256)))
        return data[:i] + bytes((value,)) + data[i + 1 :]

    def insert_bytes(self, data: bytes) -> bytes:
        i = self._pos(data, end=True)
        return data[:i] + self.rng.randbytes(self.rng.randint(1, 8)) + data[i:]

    def delete_bytes(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._pos(data)
        return data[:i] + data[i + self.rng.randint(1, 16) :]

    def duplicate_bytes(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self._pos(data)
        j = min(len(data), i + self.rng.randint(1, 64))
        return data[:j] + data[i:j] * self.rng.randint(1, 4) + data[j:]

    def splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.seeds)
        return data[: self._pos(data, end=True)] + other[self._pos(other, end=True) :]

    def truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data, end=True)]

    def write_integer(self, data: bytes) -> bytes:
        value = self.rng.choice(INTERESTING_INTS)
        width, fmt = self.rng.choice(((1, "b"), (2, "h"), (4, "i"), (8, "q")))
        order = self.rng.choice("<>")
        bound = 1 << (8 * width)
        packed = struct.pack(order + fmt.upper(), value % bound)
        i = self._pos(data, end=True)
        return data[:i] + packed + data[i + width :]

    # ---- msgpack-aware ------------------------------------------------------------------------

    def msgpack_value(self, data: bytes) -> bytes:
        """One value deep inside the decoded seed replaced, removed or repeated; packed again."""
        try:
            tree = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
        except Exception:
            return self.flip_bit(data)
        holders = _containers(tree)
        if not holders:
            tree = self._value(tree)
            return _packed(tree, data)
        holder = self.rng.choice(holders)
        keys: list[Any] = list(range(len(holder))) if isinstance(holder, list) else list(holder)
        if not keys:
            holder_add(holder, self._value(None))
        else:
            key = self.rng.choice(keys)
            action = self.rng.randrange(6)
            if action == 0:
                del holder[key]
            elif action == 1 and isinstance(holder, list):
                holder.insert(key, holder[key])
            elif action == 2 and isinstance(holder, list):
                holder.append(self._value(holder[key]))
            else:
                holder[key] = self._value(holder[key])
        return _packed(tree, data)

    def _value(self, old: object) -> object:
        """A replacement for `old`: an interesting value, or `old` nudged within its type."""
        if self.rng.random() < 0.7:
            return self.rng.choice(INTERESTING_VALUES)
        if isinstance(old, bool):
            return not old
        if isinstance(old, int):
            return old + self.rng.choice((-1, 1, -(2**32), 2**32))
        if isinstance(old, float):
            return old * self.rng.choice((-1.0, 2.0, 1e300, 0.0))
        if isinstance(old, str):
            return old + self.rng.choice(("x", "é", "\x00", old))
        if isinstance(old, bytes):
            return old[: len(old) // 2] if old else b"\x00"
        if isinstance(old, list):
            return [old] * self.rng.randint(1, 3)
        return old

    def msgpack_lying_header(self, data: bytes) -> bytes:
        i = self._pos(data, end=True)
        return data[:i] + self.rng.choice(LYING_HEADERS) + data[i:]

    # ---- text-aware (header blocks, TOML, JSON) -----------------------------------------------

    def text_value(self, data: bytes) -> bytes:
        """The value of one line (after its first ':' or '=') replaced by a tricky token."""
        lines = data.split(b"\n")
        i = self.rng.randrange(len(lines))
        line = lines[i]
        cut = max(line.find(b":"), line.find(b"="))
        token = self.rng.choice(TRICKY_TEXT).encode("utf-8", "surrogateescape")
        if cut < 0:
            lines[i] = line + token
        else:
            sep = line[cut : cut + 1]
            quoted = self.rng.random() < 0.5 and sep == b"="
            value = b' "' + token + b'"' if quoted else b" " + token
            lines[i] = line[:cut] + sep + value
        return b"\n".join(lines)

    def text_lines(self, data: bytes) -> bytes:
        lines = data.split(b"\n")
        i = self.rng.randrange(len(lines))
        action = self.rng.randrange(3)
        if action == 0:
            del lines[i]
        elif action == 1:
            lines.insert(i, lines[i])
        else:
            other = self.rng.choice(self.seeds).split(b"\n")
            lines.insert(i, self.rng.choice(other))
        return b"\n".join(lines)

    def deep_nesting(self, data: bytes) -> bytes:
        """Brackets or braces piled up: recursive parsers must refuse, not overflow."""
        opener = self.rng.choice((b"[", b"{", b'{"a":', b"[{"))
        # Around the parsers' limits (JSON's is near the recursion limit, 1000) and far beyond.
        depth = self.rng.choice((100, 900, 960, 990, 1_000, 3_000, 20_000 // len(opener)))
        i = self._pos(data, end=True)
        return data[:i] + opener * depth + data[i:]


def _packed(tree: object, fallback: bytes) -> bytes:
    """`tree` packed; `fallback` when msgpack cannot carry it (an integer beyond 64 bits)."""
    try:
        return bytes(msgpack.packb(tree, use_bin_type=True))
    except (OverflowError, ValueError, TypeError):
        return fallback


def _containers(tree: object) -> list[Any]:
    """Every list and dict in `tree`, outermost first."""
    out: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            out.append(node)
            stack.extend(node)
        elif isinstance(node, dict):
            out.append(node)
            stack.extend(node.values())
    return out


def holder_add(holder: list[Any] | dict[Any, Any], value: object) -> None:
    if isinstance(holder, list):
        holder.append(value)
    else:
        holder["x"] = value
