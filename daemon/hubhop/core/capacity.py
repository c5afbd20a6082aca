"""The capacity record: what one node tells the cluster about itself, and its wire form.

A record says who the node is (name, role, labels, addresses), what it fronts (backends with
their models, chip, slots, price, green share) and how loaded they are right now (busy slots,
waiting requests per lane, a service-time estimate), plus where it sits in the network (a
Vivaldi coordinate and the RTTs it measured to its neighbours). Records travel inside gossip as
opaque payloads; the table (`capacity_table`) decodes them, this module says what they look like.

Rules:
- The wire form is msgpack of a positional list (no field names: a record rides piggyback in
  1400-byte datagrams when it can). The first element is the layout version.
- Fields are APPENDED, NEVER REORDERED OR REMOVED, in the record list and in each backend list.
  A reader takes the fields it knows and ignores any extra trailing ones, so an older daemon
  reads a newer daemon's record. The layout version goes up with every appended field; a reader
  refuses only layouts older than MIN_LAYOUT (fields it needs would be missing).
- `decode_record` validates everything a peer could get wrong (types, ranges, lengths, names,
  addresses, duplicates) and raises RecordError, never anything else: bytes from the network must
  not be able to raise out of a receive path.
- `encode_record` runs the same validation on what it produced, so a node cannot publish a record
  its peers would refuse.
- Numbers that are whole are sent as msgpack integers (1 byte for 0..127 instead of 9 for a
  float64); the decoder turns them back into floats where the field is a float.
- Units: times in milliseconds; coordinates and heights in milliseconds of round trip, as the
  path map (`hubhop.scoring.path_map`) reads them; queues in waiting requests, lanes ordered as
  `hubhop.core.tiers.LANES` (emergency, standard, batch).

Pure: no clock, no I/O.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from hubhop.core.config import (
    CHIP_PATTERN,
    MODEL_PATTERN,
    NAME_PATTERN,
    PROTOCOLS,
    ROLES,
    NodeConfig,
)

# Layout of the positional list; see the header: fields are appended, never reordered.
# 2 appended the record's grpc_addr and each backend's later protocols.
LAYOUT_VERSION = 2
# The oldest layout this reader can fill every field of.
MIN_LAYOUT = 1
# Fields of a layout-1 record list (version included) and of a layout-1 backend list.
_RECORD_FIELDS = 12
_BACKEND_FIELDS = 11
# Layout 2's: grpc_addr, and per backend the protocols named after layout 1.
_RECORD_FIELDS_2 = 13
_BACKEND_FIELDS_2 = 12
# The protocols a layout-1 reader knows: a backend's first protocol list holds only these, so
# such a reader still takes the record; the protocols named later travel in the appended
# field, which it ignores. A reader skips a later protocol it does not know.
LAYOUT_1_PROTOCOLS = ("openai", "kserve_v2")

# Backends one node may front. A node is one host or one site's gateway; 64 is far above any
# site we model (a hub fronts a handful of clusters) and keeps the router's row count bounded.
MAX_BACKENDS = 64
# Neighbour RTTs one record may carry. Each node probes a bounded set of peers (its city, its
# hub, a few random ones); 64 keeps the record small while leaving room for a busy hub.
MAX_LINKS = 64
# Models one backend may serve. Far above what one inference server loads at once; bounds what
# one record can make the router index.
MAX_MODELS = 256
# Same ceiling as the config applies to `slots`: no real server takes a million requests at once.
MAX_SLOTS = 1_000_000
# Vivaldi coordinates as Serf/Consul use them: 8 dimensions plus a height (the path map reads
# exactly this many; see hubhop.scoring.path_map.COORDINATE_DIMENSIONS).
COORDINATE_DIMENSIONS = 8
# Largest encoded record. A typical record is a few hundred bytes; 64 KiB holds MAX_BACKENDS
# backends with dozens of models each, and is 1/512 of a push-pull stream (32 MiB), so one
# oversized member cannot crowd out the rest of the cluster's state.
MAX_RECORD_BYTES = 64 * 1024

# Default emergency reserve, used by `default_emergency_reserve`: one slot in eight (at least
# one) keeps an emergency request from waiting behind standard work at a cost of at most 12.5%
# of capacity; a one-slot backend reserves nothing, or standard traffic could never use it.
_RESERVE_DIVISOR = 8


class RecordError(ValueError):
    """A record is malformed or out of range. `reason` is a short category for counters."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class BackendState:
    """One backend a node fronts, with its live load."""

    name: str
    protocols: tuple[str, ...]
    models: tuple[str, ...]
    chip: str
    slots: int
    emergency_reserve: int  # slots kept free for the emergency lane, 0..slots
    busy: float  # slots in use now
    queue: tuple[float, float, float]  # waiting requests per lane: emergency, standard, batch
    service_ms: float  # estimated service time of one request; 0 means not known yet
    price: float
    green_share: float  # 0..1

    def __post_init__(self) -> None:
        # In PROTOCOLS' order, the one the wire form gives back (layout-1 protocols first).
        ordered = tuple(sorted(self.protocols, key=_protocol_rank))
        if ordered != self.protocols:
            object.__setattr__(self, "protocols", ordered)


def _protocol_rank(protocol: str) -> int:
    return PROTOCOLS.index(protocol) if protocol in PROTOCOLS else len(PROTOCOLS)


@dataclass(frozen=True)
class CapacityRecord:
    """What one node says about itself in the gossip table."""

    node: str
    role: str
    region: str  # "" when not labelled
    city: str  # "" when not labelled
    http_addr: str  # "IP:PORT" ("[IPv6]:PORT"), where apps and relaying daemons reach it
    gossip_addr: str  # "IP:PORT" of its gossip socket
    backends: tuple[BackendState, ...]
    coordinate: tuple[float, ...] | None  # Vivaldi vector (ms), None until it has one
    coordinate_error: float  # Vivaldi's own error estimate, >= 0
    height: float  # Vivaldi height (ms), >= 0
    links: tuple[tuple[str, float], ...]  # (peer, measured rtt_ms), at most MAX_LINKS
    # "IP:PORT" of its gRPC server (KServe v2 inference from peers), "" when it serves none.
    grpc_addr: str = ""


# --------------------------------------------------------------------------------------------
# Building this node's own record


LoadSample = tuple[float, tuple[float, float, float], float]  # busy, queue per lane, service_ms


def default_emergency_reserve(slots: int) -> int:
    """0 for a one-slot backend, else an eighth of the slots, at least one (see above)."""
    return 0 if slots <= 1 else max(1, slots // _RESERVE_DIVISOR)


def record_from_config(
    config: NodeConfig,
    gossip_addr: str,
    http_addr: str | None = None,
    loads: Mapping[str, LoadSample] | None = None,
    *,
    coordinate: tuple[float, ...] | None = None,
    coordinate_error: float = 0.0,
    height: float = 0.0,
    links: tuple[tuple[str, float], ...] = (),
    grpc_addr: str = "",
) -> CapacityRecord:
    """This node's record: what its config says it fronts, with the live load it measured.

    `http_addr` is the address peers should use ("IP:PORT"); None takes the configured listen
    address, which is only right when its port is not 0. `loads` maps backend name to (busy,
    queue per lane, service_ms); a backend missing from it is published idle (busy 0, empty
    queues) with service_ms 0, meaning "not measured yet": the router then falls back to its
    own default instead of trusting a made-up figure. Names in `loads` that the config does not
    list are ignored (a sample taken just before a reload). Raises RecordError when the result
    would not pass `decode_record` (peers would refuse it).
    """
    loads = loads or {}
    backends = []
    for b in config.backends:
        busy, queue, service_ms = loads.get(b.name, (0.0, (0.0, 0.0, 0.0), 0.0))
        backends.append(
            BackendState(
                name=b.name,
                protocols=tuple(b.protocols),
                models=tuple(b.models),
                chip=b.chip,
                slots=b.slots,
                emergency_reserve=default_emergency_reserve(b.slots),
                busy=float(busy),
                queue=(float(queue[0]), float(queue[1]), float(queue[2])),
                service_ms=float(service_ms),
                price=float(b.price),
                green_share=float(b.green_share),
            )
        )
    record = CapacityRecord(
        node=config.node.name,
        role=config.node.role,
        region=config.node.region,
        city=config.node.city,
        http_addr=http_addr if http_addr is not None else str(config.http.listen),
        gossip_addr=gossip_addr,
        backends=tuple(backends),
        coordinate=coordinate,
        coordinate_error=float(coordinate_error),
        height=float(height),
        links=links,
        grpc_addr=grpc_addr,
    )
    encode_record(record)  # validates; the bytes are cheap to make again when published
    return record


# --------------------------------------------------------------------------------------------
# Wire form


def _compact(value: float) -> float | int:
    """A whole float as an int (smaller in msgpack); anything else as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"expected a number, got {type(value).__name__}")
    number = float(value)
    if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _layout(r: CapacityRecord) -> list[Any]:
    backends = [
        [
            b.name,
            [p for p in b.protocols if p in LAYOUT_1_PROTOCOLS],
            list(b.models),
            b.chip,
            b.slots,
            b.emergency_reserve,
            _compact(b.busy),
            [_compact(q) for q in b.queue],
            _compact(b.service_ms),
            _compact(b.price),
            _compact(b.green_share),
            [p for p in b.protocols if p not in LAYOUT_1_PROTOCOLS],
        ]
        for b in r.backends
    ]
    return [
        LAYOUT_VERSION,
        r.node,
        r.role,
        r.region,
        r.city,
        r.http_addr,
        r.gossip_addr,
        backends,
        None if r.coordinate is None else [_compact(c) for c in r.coordinate],
        _compact(r.coordinate_error),
        _compact(r.height),
        [[peer, _compact(rtt)] for peer, rtt in r.links],
        r.grpc_addr,
    ]


def encode_record(r: CapacityRecord) -> bytes:
    """The record's wire form; RecordError if it would not pass `decode_record`."""
    try:
        data = msgpack.packb(_layout(r), use_bin_type=True)
    except RecordError:
        raise
    except Exception as exc:  # a field of a type msgpack cannot carry
        raise RecordError(f"cannot encode record: {exc}") from None
    if not isinstance(data, bytes):  # pragma: no cover - packb returns bytes
        raise RecordError("cannot encode record")
    decode_record(data)
    return data


def decode_record(data: bytes) -> CapacityRecord:
    """Parse and validate a record from the wire; RecordError (and only that) on any fault."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RecordError(f"payload must be bytes, got {type(data).__name__}", "malformed")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(
            f"record is {len(data)} bytes, above MAX_RECORD_BYTES ({MAX_RECORD_BYTES})", "oversize"
        )
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # every msgpack fault: truncated, extra data, bad utf-8, depth
        raise RecordError(
            f"not a msgpack record: {type(exc).__name__}: {exc}", "malformed"
        ) from None
    try:
        return _record(obj)
    except RecordError:
        raise
    except Exception as exc:  # pragma: no cover - the checks above leave nothing to raise
        raise RecordError(f"invalid record: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Validation of the decoded layout


def _record(obj: object) -> CapacityRecord:
    if not isinstance(obj, list) or not obj:
        raise RecordError("record must be a non-empty msgpack array", "layout")
    version = obj[0]
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordError("record layout version must be an integer", "layout")
    if version < MIN_LAYOUT:
        raise RecordError(f"record layout {version} is older than {MIN_LAYOUT}", "layout")
    needed = _RECORD_FIELDS if version < 2 else _RECORD_FIELDS_2
    if len(obj) < needed:
        raise RecordError(
            f"record has {len(obj)} fields, layout {version} needs at least {needed}",
            "layout",
        )
    node = _name(obj[1], "node", NAME_PATTERN)
    role = _string(obj[2], "role")
    if role not in ROLES:
        raise RecordError(f"role {role!r} is not one of {', '.join(ROLES)}")
    region = _label(obj[3], "region")
    city = _label(obj[4], "city")
    http_addr = _address(obj[5], "http_addr")
    gossip_addr = _address(obj[6], "gossip_addr")
    raw_backends = _array(obj[7], "backends", MAX_BACKENDS)
    backends = tuple(_backend(b, i, version) for i, b in enumerate(raw_backends))
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        raise RecordError("backends: a backend name is used more than once")
    coordinate = _coordinate(obj[8])
    coordinate_error = _non_negative(obj[9], "coordinate_error")
    height = _non_negative(obj[10], "height")
    links = _links(obj[11], node)
    grpc_addr = "" if version < 2 or obj[12] == "" else _address(obj[12], "grpc_addr")
    return CapacityRecord(
        node=node,
        role=role,
        region=region,
        city=city,
        http_addr=http_addr,
        gossip_addr=gossip_addr,
        backends=backends,
        coordinate=coordinate,
        coordinate_error=coordinate_error,
        height=height,
        links=links,
        grpc_addr=grpc_addr,
    )


def _backend(obj: object, index: int, version: int) -> BackendState:
    where = f"backends[{index}]"
    needed = _BACKEND_FIELDS if version < 2 else _BACKEND_FIELDS_2
    if not isinstance(obj, list) or len(obj) < needed:
        raise RecordError(f"{where} must be an array of at least {needed} fields")
    name = _name(obj[0], f"{where}.name", NAME_PATTERN)
    protocols = _protocols(obj[1], obj[11] if version >= 2 else [], where)
    models = _distinct_strings(obj[2], f"{where}.models", MAX_MODELS)
    for model in models:
        _name(model, f"{where}.models", MODEL_PATTERN)
    chip = _name(obj[3], f"{where}.chip", CHIP_PATTERN)
    slots = _integer(obj[4], f"{where}.slots", 1, MAX_SLOTS)
    reserve = _integer(obj[5], f"{where}.emergency_reserve", 0, slots)
    busy = _non_negative(obj[6], f"{where}.busy")
    queue_list = obj[7]
    if not isinstance(queue_list, list) or len(queue_list) != 3:
        raise RecordError(
            f"{where}.queue must be an array of 3 numbers (emergency, standard, batch)"
        )
    queue = (
        _non_negative(queue_list[0], f"{where}.queue[0]"),
        _non_negative(queue_list[1], f"{where}.queue[1]"),
        _non_negative(queue_list[2], f"{where}.queue[2]"),
    )
    service_ms = _non_negative(obj[8], f"{where}.service_ms")
    price = _non_negative(obj[9], f"{where}.price")
    green_share = _non_negative(obj[10], f"{where}.green_share")
    if green_share > 1.0:
        raise RecordError(f"{where}.green_share {green_share} is above 1")
    return BackendState(
        name=name,
        protocols=protocols,
        models=models,
        chip=chip,
        slots=slots,
        emergency_reserve=reserve,
        busy=busy,
        queue=queue,
        service_ms=service_ms,
        price=price,
        green_share=green_share,
    )


def _protocols(first: object, later: object, where: str) -> tuple[str, ...]:
    """A backend's protocols: the layout-1 list, then the later ones this reader knows."""
    known = list(_array(first, f"{where}.protocols", len(LAYOUT_1_PROTOCOLS)))
    for protocol in known:
        if _string(protocol, f"{where}.protocols") not in LAYOUT_1_PROTOCOLS:
            raise RecordError(
                f"{where}.protocols: {protocol!r} is not one of {', '.join(LAYOUT_1_PROTOCOLS)}"
            )
    # Bounded like any list a peer sends; a name from a newer daemon is skipped, not refused.
    for protocol in _array(later, f"{where}.later_protocols", MAX_LATER_PROTOCOLS):
        if _string(protocol, f"{where}.later_protocols") in PROTOCOLS:
            known.append(protocol)
    if not known:
        raise RecordError(f"{where}.protocols must not be empty")
    if len(set(known)) != len(known):
        raise RecordError(f"{where}.protocols: an entry is listed more than once")
    return tuple(known)


# Protocols named after layout 1 that one backend may list: far above the one there is.
MAX_LATER_PROTOCOLS = 16


def _coordinate(obj: object) -> tuple[float, ...] | None:
    if obj is None:
        return None
    if not isinstance(obj, list) or len(obj) != COORDINATE_DIMENSIONS:
        raise RecordError(f"coordinate must be nil or an array of {COORDINATE_DIMENSIONS} numbers")
    return tuple(_finite(c, f"coordinate[{i}]") for i, c in enumerate(obj))


def _links(obj: object, node: str) -> tuple[tuple[str, float], ...]:
    raw = _array(obj, "links", MAX_LINKS)
    links = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 2:
            raise RecordError(f"links[{i}] must be an array [peer, rtt_ms]")
        peer = _name(item[0], f"links[{i}].peer", NAME_PATTERN)
        if peer == node:
            raise RecordError(f"links[{i}]: a node has no link to itself")
        if peer in seen:
            raise RecordError(f"links[{i}]: peer {peer!r} is listed more than once")
        seen.add(peer)
        links.append((peer, _non_negative(item[1], f"links[{i}].rtt_ms")))
    return tuple(links)


def _array(obj: object, where: str, limit: int) -> list[Any]:
    if not isinstance(obj, list):
        raise RecordError(f"{where} must be an array, got {_kind(obj)}")
    if len(obj) > limit:
        raise RecordError(f"{where} has {len(obj)} entries, at most {limit} allowed")
    return obj


def _distinct_strings(obj: object, where: str, limit: int) -> tuple[str, ...]:
    items = _array(obj, where, limit)
    if not items:
        raise RecordError(f"{where} must not be empty")
    for item in items:
        _string(item, where)
    if len(set(items)) != len(items):
        raise RecordError(f"{where}: an entry is listed more than once")
    return tuple(items)


def _string(obj: object, where: str) -> str:
    if not isinstance(obj, str):
        raise RecordError(f"{where} must be a string, got {_kind(obj)}")
    return obj


def _name(obj: object, where: str, pattern: re.Pattern[str]) -> str:
    text = _string(obj, where)
    if not pattern.fullmatch(text):
        raise RecordError(f"{where}: {text[:80]!r} does not match {pattern.pattern}")
    return text


def _label(obj: object, where: str) -> str:
    text = _string(obj, where)
    return text if text == "" else _name(text, where, NAME_PATTERN)


def _address(obj: object, where: str) -> str:
    """An "IP:PORT" or "[IPv6]:PORT" string with a port a peer can connect to (1..65535)."""
    text = _string(obj, where)
    host, sep, port = text.rpartition(":")
    fault = f"{where}: {text[:80]!r} must be IP:PORT (IPv6 in brackets) with a port 1..65535"
    canonical = port.isascii() and port.isdigit() and len(port) <= 5 and port == str(int(port))
    if not sep or not canonical or not 1 <= int(port) <= 65535:
        raise RecordError(fault)
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        raise RecordError(fault) from None
    if (ip.version == 6) != bracketed:
        raise RecordError(fault)
    return text


def host_of(addr: str) -> str:
    """The IP of an "IP:PORT" or "[IPv6]:PORT" address (as records carry them)."""
    return addr.rpartition(":")[0].strip("[]")


def _integer(obj: object, where: str, lo: int, hi: int) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise RecordError(f"{where} must be an integer, got {_kind(obj)}")
    if not lo <= obj <= hi:
        raise RecordError(f"{where} {obj} is out of range [{lo}, {hi}]")
    return obj


def _finite(obj: object, where: str) -> float:
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        raise RecordError(f"{where} must be a number, got {_kind(obj)}")
    number = float(obj)
    if not math.isfinite(number):
        raise RecordError(f"{where} must be finite, got {number}")
    return number


def _non_negative(obj: object, where: str) -> float:
    number = _finite(obj, where)
    if number < 0:
        raise RecordError(f"{where} must not be negative, got {number}")
    return number + 0.0  # -0.0 becomes 0.0


def _kind(obj: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    if obj is None:
        return "nil"
    return names.get(type(obj), type(obj).__name__)
