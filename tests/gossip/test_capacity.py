"""The capacity record: round trip, every validation rule, fuzzing, and building a node's own."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubhop.core.capacity import (
    COORDINATE_DIMENSIONS,
    LAYOUT_VERSION,
    MAX_BACKENDS,
    MAX_LINKS,
    MAX_MODELS,
    MAX_RECORD_BYTES,
    BackendState,
    CapacityRecord,
    RecordError,
    decode_record,
    default_emergency_reserve,
    encode_record,
    record_from_config,
)
from hubhop.core.config import PROTOCOLS, ROLES, parse_config

# ---------------------------------------------------------------------------------------------
# Samples


def backend(**overrides: Any) -> BackendState:
    fields: dict[str, Any] = dict(
        name="gpu0",
        protocols=("openai", "kserve_v2"),
        models=("meta-llama/Llama-3.1-8B-Instruct", "ct-triage"),
        chip="nvidia-h100",
        slots=8,
        emergency_reserve=1,
        busy=3.0,
        queue=(0.0, 2.0, 5.0),
        service_ms=42.5,
        price=0.8,
        green_share=0.35,
    )
    fields.update(overrides)
    return BackendState(**fields)


def record(**overrides: Any) -> CapacityRecord:
    fields: dict[str, Any] = dict(
        node="wuhan-edge-1",
        role="edge",
        region="hubei",
        city="wuhan",
        http_addr="127.0.1.1:8080",
        gossip_addr="127.0.1.1:7946",
        backends=(backend(), backend(name="npu0", chip="ascend-910b", models=("ct-triage",))),
        coordinate=(0.5, -1.25, 0.0, 3.0, 0.0, 0.0, 0.125, 2.0),
        coordinate_error=0.4,
        height=0.05,
        links=(("wuhan-city", 0.3), ("hub-1", 12.5)),
    )
    fields.update(overrides)
    return CapacityRecord(**fields)


def layout_of(r: CapacityRecord) -> list[Any]:
    decoded = msgpack.unpackb(encode_record(r), raw=False)
    assert isinstance(decoded, list)
    return decoded


def pack(obj: Any) -> bytes:
    data = msgpack.packb(obj, use_bin_type=True)
    assert isinstance(data, bytes)
    return data


# ---------------------------------------------------------------------------------------------
# Round trip and wire form


def test_round_trip_gives_the_same_record() -> None:
    r = record()
    assert decode_record(encode_record(r)) == r


def test_round_trip_without_coordinate_backends_or_links() -> None:
    r = record(coordinate=None, backends=(), links=(), region="", city="")
    assert decode_record(encode_record(r)) == r


def test_the_layout_version_comes_first_and_fields_are_positional() -> None:
    layout = layout_of(record())
    assert layout[0] == LAYOUT_VERSION
    assert layout[1] == "wuhan-edge-1"
    assert isinstance(layout[7], list) and isinstance(layout[7][0], list)


def test_whole_numbers_travel_as_integers_and_come_back_as_floats() -> None:
    r = record(backends=(backend(busy=0.0, queue=(0.0, 0.0, 0.0), service_ms=0.0, price=0.0),))
    layout = layout_of(r)
    assert layout[7][0][6] == 0 and type(layout[7][0][6]) is int
    decoded = decode_record(encode_record(r))
    assert type(decoded.backends[0].busy) is float
    assert all(type(q) is float for q in decoded.backends[0].queue)


def test_a_typical_record_fits_a_gossip_datagram() -> None:
    # Two backends, eight-dimensional coordinate, two links: well under the 1400-byte datagram.
    assert len(encode_record(record())) < 600


def test_extra_trailing_fields_from_a_newer_layout_are_ignored() -> None:
    layout = layout_of(record())
    layout[0] = LAYOUT_VERSION + 1
    layout.append({"new": "field"})
    layout[7][0].append(["a", "future", "backend", "field"])
    assert decode_record(pack(layout)) == record()


def test_a_record_with_fewer_fields_than_its_layout_is_refused() -> None:
    layout = layout_of(record())[:-1]
    with pytest.raises(RecordError, match="fields") as info:
        decode_record(pack(layout))
    assert info.value.reason == "layout"


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0, None])
def test_a_bad_layout_version_is_refused(version: Any) -> None:
    layout = layout_of(record())
    layout[0] = version
    with pytest.raises(RecordError) as info:
        decode_record(pack(layout))
    assert info.value.reason == "layout"


def test_minus_zero_decodes_as_zero() -> None:
    layout = layout_of(record())
    layout[9] = -0.0
    assert math.copysign(1.0, decode_record(pack(layout)).coordinate_error) == 1.0


# ---------------------------------------------------------------------------------------------
# Validation, one rule at a time: (path into the layout, bad value, words in the message)

BAD_FIELDS: list[tuple[tuple[int, ...], Any, str]] = [
    ((1,), "Bad Name", "node"),
    ((1,), 7, "node must be a string"),
    ((2,), "satellite", "role"),
    ((3,), "Hubei!", "region"),
    ((4,), None, "city must be a string"),
    ((5,), "localhost:8080", "http_addr"),
    ((5,), "127.0.0.1", "http_addr"),
    ((5,), "127.0.0.1:0", "http_addr"),
    ((5,), "127.0.0.1:65536", "http_addr"),
    ((5,), "127.0.0.1:080", "http_addr"),
    ((5,), "127.0.0.1:+80", "http_addr"),
    ((6,), "::1:7946", "gossip_addr"),
    ((6,), "[127.0.0.1]:7946", "gossip_addr"),
    ((6,), b"127.0.0.1:7946", "gossip_addr must be a string"),
    ((7,), {"a": 1}, "backends must be an array"),
    ((7, 0), "gpu0", "backends[0] must be an array"),
    ((7, 0, 0), "GPU 0", "backends[0].name"),
    ((7, 0, 1), [], "protocols must not be empty"),
    ((7, 0, 1), ["grpc"], "protocols"),
    ((7, 0, 1), ["openai", "openai"], "more than once"),
    ((7, 0, 2), [], "models must not be empty"),
    ((7, 0, 2), ["bad model"], "models"),
    ((7, 0, 2), ["m", "m"], "more than once"),
    ((7, 0, 2), [1], "models must be a string"),
    ((7, 0, 3), "NVIDIA", "chip"),
    ((7, 0, 4), 0, "slots"),
    ((7, 0, 4), 2.0, "slots must be an integer"),
    ((7, 0, 4), True, "slots must be an integer"),
    ((7, 0, 4), 10**7, "slots"),
    ((7, 0, 5), 9, "emergency_reserve"),
    ((7, 0, 5), -1, "emergency_reserve"),
    ((7, 0, 6), -0.5, "busy must not be negative"),
    ((7, 0, 6), math.nan, "busy must be finite"),
    ((7, 0, 6), "3", "busy must be a number"),
    ((7, 0, 6), False, "busy must be a number"),
    ((7, 0, 7), [0, 1], "queue"),
    ((7, 0, 7), [0, 1, 2, 3], "queue"),
    ((7, 0, 7, 1), math.inf, "queue[1] must be finite"),
    ((7, 0, 7, 2), -1, "queue[2] must not be negative"),
    ((7, 0, 8), -math.inf, "service_ms must be finite"),
    ((7, 0, 9), -0.01, "price"),
    ((7, 0, 10), 1.01, "green_share"),
    ((8,), [0.0] * (COORDINATE_DIMENSIONS - 1), "coordinate"),
    ((8,), [0.0] * (COORDINATE_DIMENSIONS + 1), "coordinate"),
    ((8,), "here", "coordinate"),
    ((8, 3), math.nan, "coordinate[3] must be finite"),
    ((9,), -1.0, "coordinate_error"),
    ((10,), math.inf, "height"),
    ((11,), [["hub-1"]], "links[0]"),
    ((11,), [["hub-1", -1.0]], "rtt_ms must not be negative"),
    ((11,), [["hub-1", math.nan]], "rtt_ms must be finite"),
    ((11,), [["Hub 1", 1.0]], "peer"),
    ((11,), [["wuhan-edge-1", 1.0]], "itself"),
    ((11,), [["hub-1", 1.0], ["hub-1", 2.0]], "more than once"),
]


def _replace_at(layout: list[Any], path: tuple[int, ...], value: Any) -> None:
    target = layout
    for index in path[:-1]:
        target = target[index]
    target[path[-1]] = value


@pytest.mark.parametrize(("path", "value", "words"), BAD_FIELDS)
def test_each_bad_field_is_refused_with_a_clear_message(
    path: tuple[int, ...], value: Any, words: str
) -> None:
    layout = layout_of(record())
    _replace_at(layout, path, value)
    with pytest.raises(RecordError) as info:
        decode_record(pack(layout))
    assert words in str(info.value)


def test_a_coordinate_may_be_negative_and_error_zero() -> None:
    r = record(coordinate=(-5.0,) * COORDINATE_DIMENSIONS, coordinate_error=0.0, height=0.0)
    assert decode_record(encode_record(r)) == r


def test_ipv6_addresses_in_brackets_are_accepted() -> None:
    r = record(http_addr="[::1]:8080", gossip_addr="[fd00::7]:7946")
    assert decode_record(encode_record(r)) == r


def test_reserve_equal_to_slots_is_accepted() -> None:
    r = record(backends=(backend(slots=2, emergency_reserve=2),))
    assert decode_record(encode_record(r)) == r


def test_duplicate_backend_names_are_refused() -> None:
    with pytest.raises(RecordError, match="more than once"):
        encode_record(record(backends=(backend(), backend())))


@pytest.mark.parametrize(
    ("field", "count", "limit"),
    [("backends", MAX_BACKENDS + 1, MAX_BACKENDS), ("links", MAX_LINKS + 1, MAX_LINKS)],
)
def test_lists_are_bounded(field: str, count: int, limit: int) -> None:
    layout = layout_of(record())
    if field == "backends":
        template = layout[7][0]
        layout[7] = [[f"b{i}", *template[1:]] for i in range(count)]
    else:
        layout[11] = [[f"peer-{i}", 1.0] for i in range(count)]
    with pytest.raises(RecordError, match=f"at most {limit}"):
        decode_record(pack(layout))


def test_the_bounds_themselves_are_accepted() -> None:
    backends = tuple(backend(name=f"b{i}") for i in range(MAX_BACKENDS))
    links = tuple((f"peer-{i}", 1.0) for i in range(MAX_LINKS))
    r = record(backends=backends, links=links)
    assert decode_record(encode_record(r)) == r


def test_models_per_backend_are_bounded() -> None:
    models = tuple(f"model-{i}" for i in range(MAX_MODELS + 1))
    with pytest.raises(RecordError, match=f"at most {MAX_MODELS}"):
        encode_record(record(backends=(backend(models=models),)))


def test_an_oversized_payload_is_refused_before_decoding() -> None:
    with pytest.raises(RecordError, match="MAX_RECORD_BYTES") as info:
        decode_record(b"\x00" * (MAX_RECORD_BYTES + 1))
    assert info.value.reason == "oversize"


def test_an_oversized_record_cannot_be_encoded() -> None:
    long_models = tuple(f"org/model-{'x' * 180}-{i}" for i in range(MAX_MODELS))
    backends = tuple(backend(name=f"b{i}", models=long_models) for i in range(4))
    with pytest.raises(RecordError, match="MAX_RECORD_BYTES"):
        encode_record(record(backends=backends))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", pack(1), pack({"node": "x"}), pack([]), pack([1, 2]) + b"\x00"],
)
def test_non_records_are_refused(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_record(data)


def test_invalid_utf8_is_refused() -> None:
    layout_bytes = bytearray(encode_record(record()))
    at = layout_bytes.index(b"wuhan-edge-1")
    layout_bytes[at] = 0xFF
    with pytest.raises(RecordError) as info:
        decode_record(bytes(layout_bytes))
    assert info.value.reason == "malformed"


def test_encode_refuses_what_peers_would_refuse() -> None:
    with pytest.raises(RecordError, match="green_share"):
        encode_record(record(backends=(backend(green_share=2.0),)))
    with pytest.raises(RecordError, match="number"):
        encode_record(record(coordinate_error="big"))
    with pytest.raises(RecordError):
        encode_record(record(links=(("hub-1", object()),)))


def test_a_record_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError) as info:
        decode_record(b"")
    assert isinstance(info.value, RecordError)
    assert info.value.reason == "malformed"


# ---------------------------------------------------------------------------------------------
# Fuzzing: nothing but RecordError ever comes out of decode_record

names = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
numbers = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def backends_st(draw: st.DrawFn) -> BackendState:
    slots = draw(st.integers(1, 1000))
    return BackendState(
        name=draw(names),
        protocols=tuple(draw(st.lists(st.sampled_from(PROTOCOLS), min_size=1, unique=True))),
        models=tuple(
            draw(
                st.lists(
                    st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,30}\Z"),
                    min_size=1,
                    max_size=5,
                    unique=True,
                )
            )
        ),
        chip=draw(names),
        slots=slots,
        emergency_reserve=draw(st.integers(0, slots)),
        busy=draw(numbers),
        queue=(draw(numbers), draw(numbers), draw(numbers)),
        service_ms=draw(numbers),
        price=draw(numbers),
        green_share=draw(st.floats(0.0, 1.0)),
    )


@st.composite
def records_st(draw: st.DrawFn) -> CapacityRecord:
    node = draw(names)
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    coordinate = draw(
        st.none() | st.tuples(*[finite] * COORDINATE_DIMENSIONS).map(lambda t: tuple(t))
    )
    ip = draw(st.ip_addresses())
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    port = draw(st.integers(1, 65535))
    peers = draw(st.lists(names.filter(lambda n: n != node), max_size=6, unique=True))
    return CapacityRecord(
        node=node,
        role=draw(st.sampled_from(ROLES)),
        region=draw(st.just("") | names),
        city=draw(st.just("") | names),
        http_addr=f"{host}:{port}",
        gossip_addr=f"{host}:{port}",
        backends=tuple(draw(st.lists(backends_st(), max_size=4, unique_by=lambda b: b.name))),
        coordinate=coordinate,
        coordinate_error=draw(numbers),
        height=draw(numbers),
        links=tuple((p, draw(numbers)) for p in peers),
    )


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(records_st())
def test_any_valid_record_round_trips(r: CapacityRecord) -> None:
    assert decode_record(encode_record(r)) == r


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_record_error(data: bytes) -> None:
    with contextlib.suppress(RecordError):
        decode_record(data)


@FUZZ
@given(records_st(), st.data())
def test_mutated_encodings_raise_only_record_error(r: CapacityRecord, data: st.DataObject) -> None:
    raw = bytearray(encode_record(r))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif raw:
            del raw[at]
    try:
        decoded = decode_record(bytes(raw))
    except RecordError:
        return
    # Whatever survived is a valid record: it encodes and decodes to itself.
    assert decode_record(encode_record(decoded)) == decoded


leaves = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children)
    ),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            out += _paths(item, (*prefix, i))
    return out


@FUZZ
@given(records_st(), st.data())
def test_structurally_mutated_layouts_raise_only_record_error(
    r: CapacityRecord, data: st.DataObject
) -> None:
    layout = layout_of(r)
    path = data.draw(st.sampled_from(_paths(layout)))
    _replace_at(layout, path, data.draw(leaves))
    try:
        decoded = decode_record(pack(layout))
    except RecordError:
        return
    assert decode_record(encode_record(decoded)) == decoded


# ---------------------------------------------------------------------------------------------
# This node's own record

CONFIG = """
[node]
name = "wuhan-edge-1"
role = "edge"
region = "hubei"
city = "wuhan"
[http]
listen = "127.0.1.1:8080"
[[backends]]
name = "gpu0"
url = "http://127.0.0.1:9000"
protocol = ["openai", "kserve_v2"]
models = ["demo-llm", "ct-triage"]
chip = "nvidia-h100"
slots = 16
price = 1.5
green_share = 0.4
[[backends]]
name = "cpu0"
url = "http://127.0.0.1:9001"
protocol = "openai"
models = ["demo-llm"]
"""


def test_record_from_config_publishes_what_the_node_fronts() -> None:
    config = parse_config(CONFIG, "test.toml")
    r = record_from_config(config, "127.0.1.1:7946")
    assert (r.node, r.role, r.region, r.city) == ("wuhan-edge-1", "edge", "hubei", "wuhan")
    assert r.http_addr == "127.0.1.1:8080" and r.gossip_addr == "127.0.1.1:7946"
    gpu, cpu = r.backends
    assert gpu == BackendState(
        name="gpu0",
        protocols=("openai", "kserve_v2"),
        models=("demo-llm", "ct-triage"),
        chip="nvidia-h100",
        slots=16,
        emergency_reserve=2,
        busy=0.0,
        queue=(0.0, 0.0, 0.0),
        service_ms=0.0,
        price=1.5,
        green_share=0.4,
    )
    assert (cpu.protocols, cpu.chip, cpu.slots, cpu.emergency_reserve) == (
        ("openai",),
        "cpu",
        1,
        0,
    )
    assert r.coordinate is None and r.links == ()
    assert decode_record(encode_record(r)) == r


def test_record_from_config_takes_live_load_and_the_bound_http_address() -> None:
    config = parse_config(CONFIG, "test.toml")
    loads = {"gpu0": (5.0, (1.0, 3.0, 7.0), 38.0), "gone": (1.0, (0.0, 0.0, 0.0), 1.0)}
    r = record_from_config(
        config,
        "127.0.1.1:7946",
        "127.0.1.1:43123",
        loads,
        coordinate=(1.0,) * COORDINATE_DIMENSIONS,
        height=0.1,
        links=(("wuhan-city", 0.4),),
    )
    gpu, cpu = r.backends
    assert (gpu.busy, gpu.queue, gpu.service_ms) == (5.0, (1.0, 3.0, 7.0), 38.0)
    assert (cpu.busy, cpu.queue, cpu.service_ms) == (0.0, (0.0, 0.0, 0.0), 0.0)
    assert r.http_addr == "127.0.1.1:43123"
    assert r.links == (("wuhan-city", 0.4),) and r.height == 0.1


def test_record_from_config_refuses_an_unreachable_address() -> None:
    config = parse_config(CONFIG.replace(":8080", ":0"), "test.toml")
    with pytest.raises(RecordError, match="http_addr"):
        record_from_config(config, "127.0.1.1:7946")
    with pytest.raises(RecordError, match="busy"):
        record_from_config(
            parse_config(CONFIG, "t"), "127.0.1.1:7946", loads={"gpu0": (-1.0, (0, 0, 0), 0)}
        )


@pytest.mark.parametrize(("slots", "reserve"), [(1, 0), (2, 1), (7, 1), (8, 1), (16, 2), (100, 12)])
def test_default_emergency_reserve(slots: int, reserve: int) -> None:
    assert default_emergency_reserve(slots) == reserve


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        record().node = "other"  # type: ignore[misc]
