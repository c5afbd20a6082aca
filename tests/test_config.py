"""The config validator: what an operator sees for a good file and for each kind of mistake."""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubhop.core.config import (
    CHIP_PATTERN,
    GIB,
    MIB,
    MODEL_PATTERN,
    NAME_PATTERN,
    BackendConfig,
    ConfigError,
    HttpSettings,
    LifecycleSettings,
    ListenAddress,
    LogSettings,
    NodeConfig,
    NodeIdentity,
    parse_config,
)
from hubhop.io.config_file import load_config

SRC = "edge.toml"

# ---------------------------------------------------------------------------------------------
# A tiny TOML writer, so fault cases are written as "the good document with one thing changed".
# Everything is emitted as top-level `key = inline value`, which TOML reads into the same nested
# tables and arrays of tables as `[section]` / `[[backends]]` headers.


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise TypeError(type(value))


def to_toml(document: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in document.items())


def minimal() -> dict[str, Any]:
    return {
        "node": {"name": "wuhan-union-hospital", "role": "edge"},
        "http": {"listen": "127.0.1.1:8080"},
        "backends": [
            {
                "name": "ascend0",
                "url": "http://127.0.2.1:9000",
                "protocol": "openai",
                "models": ["qwen2.5-7b-instruct"],
            }
        ],
    }


def changed(path: str, value: Any) -> dict[str, Any]:
    """minimal() with `path` ("http.listen", "backends.0.slots") set to `value`."""
    document = minimal()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    target[last] = value
    return document


def removed(path: str) -> dict[str, Any]:
    document = minimal()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[last]
    return document


def faults_of(text_or_doc: str | dict[str, Any], source: str = SRC) -> list[str]:
    text = text_or_doc if isinstance(text_or_doc, str) else to_toml(text_or_doc)
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    faults = info.value.faults
    assert faults, "a ConfigError must carry at least one fault"
    for fault in faults:
        assert "\n" not in fault, f"fault is not one line: {fault!r}"
        assert fault.startswith(f"{source}: "), f"fault does not name the source: {fault!r}"
    assert str(info.value) == "\n".join(faults)
    return faults


# ---------------------------------------------------------------------------------------------
# Good documents.

FULL = """
# A complete edge node: every key set.
[node]
name = "wuhan-union-hospital"
role = "edge"
region = "hubei"
city = "wuhan"

[http]
listen = "127.0.1.1:8080"
max_body_bytes = 1073741824
max_json_body_bytes = 8388608
backend_connect_timeout_s = 0.5
backend_timeout_s = 120
max_connections_per_backend = 64

[lifecycle]
drain_grace_s = 12.5

[log]
level = "debug"

[[backends]]
name = "ascend0"
url = "http://127.0.2.1:9000/"
protocol = ["openai", "kserve_v2", "openai"]
models = ["qwen2.5-7b-instruct", "ct-lung-nodule", "qwen2.5-7b-instruct"]
chip = "ascend-910b"
slots = 8
price = 1.25
green_share = 0.4

[[backends]]
name = "cpu0"
url = "http://127.0.2.2:9001"
protocol = "kserve_v2"
models = ["meta-llama/Llama-3.1-8B-Instruct"]
"""


def test_full_config_parses_to_the_values_written() -> None:
    config = parse_config(FULL, SRC)
    assert config.node == NodeIdentity("wuhan-union-hospital", "edge", "hubei", "wuhan")
    assert config.http == HttpSettings(
        listen=ListenAddress("127.0.1.1", 8080),
        max_body_bytes=GIB,
        max_json_body_bytes=8 * MIB,
        backend_connect_timeout_s=0.5,
        backend_timeout_s=120.0,
        max_connections_per_backend=64,
    )
    assert isinstance(config.http.backend_timeout_s, float)  # an integer is accepted as a float
    assert config.lifecycle == LifecycleSettings(drain_grace_s=12.5)
    assert config.log == LogSettings(level="debug")
    first, second = config.backends
    # Repeats are dropped (first one wins the order) and a trailing slash on the URL goes.
    assert first == BackendConfig(
        name="ascend0",
        url="http://127.0.2.1:9000",
        protocols=("openai", "kserve_v2"),
        models=("qwen2.5-7b-instruct", "ct-lung-nodule"),
        chip="ascend-910b",
        slots=8,
        price=1.25,
        green_share=0.4,
    )
    assert second.protocols == ("kserve_v2",)  # a single string is a one-protocol list
    assert second.models == ("meta-llama/Llama-3.1-8B-Instruct",)
    assert config.backends_for("openai", "ct-lung-nodule") == (first,)
    assert config.backends_for("kserve_v2", "meta-llama/Llama-3.1-8B-Instruct") == (second,)
    assert config.models_for("kserve_v2") == (
        "qwen2.5-7b-instruct",
        "ct-lung-nodule",
        "meta-llama/Llama-3.1-8B-Instruct",
    )


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(to_toml(minimal()), SRC)
    assert config.node == NodeIdentity("wuhan-union-hospital", "edge", "", "")
    assert config.http.listen == ListenAddress("127.0.1.1", 8080)
    assert config.http.max_body_bytes == 2 * 1024**3
    assert config.http.max_json_body_bytes == 32 * 1024**2
    assert config.http.backend_connect_timeout_s == 2.0
    assert config.http.backend_timeout_s == 600.0
    assert config.http.max_connections_per_backend == 256
    assert config.lifecycle.drain_grace_s == 30.0
    assert config.log.level == "info"
    (backend,) = config.backends
    assert (backend.chip, backend.slots, backend.price, backend.green_share) == ("cpu", 1, 0.0, 0.0)


def test_a_node_without_backends_is_valid() -> None:
    document = minimal()
    del document["backends"]
    assert parse_config(to_toml(document), SRC).backends == ()


def test_header_style_and_inline_style_documents_read_the_same() -> None:
    headers = """
[node]
name = "wuhan-union-hospital"
role = "edge"
[http]
listen = "127.0.1.1:8080"
[[backends]]
name = "ascend0"
url = "http://127.0.2.1:9000"
protocol = "openai"
models = ["qwen2.5-7b-instruct"]
"""
    assert parse_config(headers, SRC) == parse_config(to_toml(minimal()), SRC)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.1.1:8080", "127.0.1.1", 8080),
        ("[::1]:9443", "::1", 9443),
        ("0.0.0.0:0", "0.0.0.0", 0),
    ],
)
def test_listen_address_forms(listen: str, host: str, port: int) -> None:
    config = parse_config(to_toml(changed("http.listen", listen)), SRC)
    assert config.http.listen == ListenAddress(host, port)
    assert str(config.http.listen) == listen


# ---------------------------------------------------------------------------------------------
# One fault each: the exact line an operator reads.

ONE_FAULT_CASES: list[tuple[str, dict[str, Any], str]] = [
    # unknown keys
    ("unknown top-level key", changed("nodes", {"x": 1}), "nodes: unknown key"),
    ("unknown key in [node]", changed("node.nmae", "x"), "node.nmae: unknown key"),
    ("typo in [[backends]]", changed("backends.0.slot", 4), "backends[0].slot: unknown key"),
    ("unknown key in [http]", changed("http.port", 8080), "http.port: unknown key"),
    ("unknown key in [log]", changed("log.file", "/var/log/x"), "log.file: unknown key"),
    # wrong types
    (
        "string for int",
        changed("backends.0.slots", "4"),
        "backends[0].slots: must be an integer, got string",
    ),
    (
        "bool for int",
        changed("backends.0.slots", True),
        "backends[0].slots: must be an integer, got boolean",
    ),
    (
        "float for int",
        changed("http.max_body_bytes", 1.5),
        "http.max_body_bytes: must be an integer, got float",
    ),
    (
        "bool for float",
        changed("backends.0.price", False),
        "backends[0].price: must be a number, got boolean",
    ),
    (
        "string for float",
        changed("lifecycle.drain_grace_s", "30s"),
        "lifecycle.drain_grace_s: must be a number, got string",
    ),
    (
        "date for float",
        changed("backends.0.price", datetime.date(2024, 5, 1)),
        "backends[0].price: must be a number, got date",
    ),
    ("int for string", changed("node.name", 7), "node.name: must be a string, got integer"),
    ("int for listen", changed("http.listen", 8080), "http.listen: must be a string, got integer"),
    ("array for table", changed("lifecycle", [30]), "lifecycle: must be a table, got array"),
    ("string for table", changed("log", "debug"), "log: must be a table, got string"),
    (
        "table for array of tables",
        changed("backends", {"name": "x"}),
        "backends: must be an array of tables ([[backends]]), got table",
    ),
    (
        "array of non-tables",
        changed("backends", ["ascend0"]),
        "backends: must be an array of tables ([[backends]]), got array",
    ),
    (
        "empty models",
        changed("backends.0.models", []),
        "backends[0].models: must be a non-empty list of strings, got array",
    ),
    (
        "models as a string",
        changed("backends.0.models", "qwen"),
        "backends[0].models: must be a non-empty list of strings, got string",
    ),
    (
        "empty protocol list",
        changed("backends.0.protocol", []),
        "backends[0].protocol: must be a string or a non-empty list of strings, got array",
    ),
    # out of range
    (
        "slots = 0",
        changed("backends.0.slots", 0),
        "backends[0].slots: 0 is out of range [1, 1000000]",
    ),
    (
        "green_share = 1.5",
        changed("backends.0.green_share", 1.5),
        "backends[0].green_share: 1.5 is out of range [0.0, 1.0]",
    ),
    (
        "negative price",
        changed("backends.0.price", -0.01),
        "backends[0].price: -0.01 is out of range [0.0, 1000000000.0]",
    ),
    (
        "nan price",
        changed("backends.0.price", math.nan),
        "backends[0].price: nan is out of range [0.0, 1000000000.0]",
    ),
    (
        "infinite timeout",
        changed("http.backend_timeout_s", math.inf),
        "http.backend_timeout_s: inf is out of range [0.01, 86400.0]",
    ),
    (
        "port 70000",
        changed("http.listen", "127.0.1.1:70000"),
        "http.listen: '127.0.1.1:70000' needs a port in 0..65535",
    ),
    (
        "negative grace",
        changed("lifecycle.drain_grace_s", -1),
        "lifecycle.drain_grace_s: -1 is out of range [0.0, 3600.0]",
    ),
    # empty strings: a typo, never a choice (they used to pass as 127.0.0.1:0 and url "")
    ("empty http.listen", changed("http.listen", ""), "http.listen: must not be empty"),
    ("empty backend url", changed("backends.0.url", ""), "backends[0].url: must not be empty"),
    ("empty node.name", changed("node.name", ""), "node.name: must not be empty"),
    # missing required keys
    ("missing node.name", removed("node.name"), "node.name: is required"),
    ("missing http.listen", removed("http.listen"), "http.listen: is required"),
    ("missing backend url", removed("backends.0.url"), "backends[0].url: is required"),
    ("missing backend models", removed("backends.0.models"), "backends[0].models: is required"),
    (
        "missing backend protocol",
        removed("backends.0.protocol"),
        "backends[0].protocol: is required",
    ),
    # bad enums
    ("bad role", changed("node.role", "core"), "node.role: 'core' is not one of edge, city, hub"),
    (
        "bad protocol",
        changed("backends.0.protocol", "grpc"),
        "backends[0].protocol: 'grpc' is not one of openai, kserve_v2, kserve_v2_grpc",
    ),
    (
        "bad protocol in a list",
        changed("backends.0.protocol", ["openai", "OpenAI"]),
        "backends[0].protocol: 'OpenAI' is not one of openai, kserve_v2, kserve_v2_grpc",
    ),
    (
        "bad log level",
        changed("log.level", "verbose"),
        "log.level: 'verbose' is not one of debug, info, warning, error",
    ),
    # bad listen addresses
    (
        "host name instead of IP",
        changed("http.listen", "localhost:8080"),
        "http.listen: 'localhost:8080' must be IP:PORT (e.g. 127.0.1.1:8080)",
    ),
    (
        "no port",
        changed("http.listen", "127.0.1.1"),
        "http.listen: '127.0.1.1' must be IP:PORT (e.g. 127.0.1.1:8080)",
    ),
    (
        "empty port",
        changed("http.listen", "127.0.1.1:"),
        "http.listen: '127.0.1.1:' needs a port in 0..65535",
    ),
    (
        "bad IPv4",
        changed("http.listen", "127.0.1.300:80"),
        "http.listen: '127.0.1.300:80' must be IP:PORT (e.g. 127.0.1.1:8080)",
    ),
    # bad URLs
    (
        "https backend",
        changed("backends.0.url", "https://127.0.2.1:9000"),
        "backends[0].url: 'https://127.0.2.1:9000' must be an http:// URL with a host",
    ),
    (
        "URL without host",
        changed("backends.0.url", "http://"),
        "backends[0].url: 'http://' must be an http:// URL with a host",
    ),
    (
        "not a URL",
        changed("backends.0.url", "127.0.2.1:9000"),
        "backends[0].url: '127.0.2.1:9000' must be an http:// URL with a host",
    ),
    (
        "URL with a bad port",
        changed("backends.0.url", "http://127.0.2.1:99999"),
        "backends[0].url: 'http://127.0.2.1:99999' is not a valid URL: Port out of range 0-65535",
    ),
    (
        "URL with a query",
        changed("backends.0.url", "http://127.0.2.1:9000/v1?key=1"),
        "backends[0].url: 'http://127.0.2.1:9000/v1?key=1' must not carry a query or fragment",
    ),
    # names
    (
        "upper-case node name",
        changed("node.name", "Wuhan"),
        f"node.name: 'Wuhan' does not match {NAME_PATTERN.pattern}",
    ),
    (
        "space in chip",
        changed("backends.0.chip", "nvidia h100"),
        f"backends[0].chip: 'nvidia h100' does not match {CHIP_PATTERN.pattern}",
    ),
    (
        "bad model name",
        changed("backends.0.models", ["qwen 7b"]),
        f"backends[0].models: 'qwen 7b' does not match {MODEL_PATTERN.pattern}",
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"),
    [pytest.param(doc, exp, id=name) for name, doc, exp in ONE_FAULT_CASES],
)
def test_each_fault_gives_exactly_one_line_naming_source_and_key(
    document: dict[str, Any], expected: str
) -> None:
    assert faults_of(document) == [f"{SRC}: {expected}"]


def test_missing_role_is_reported_once() -> None:
    # One missing key, one line: "is required", not also "'' is not one of ...".
    assert faults_of(removed("node.role")) == [f"{SRC}: node.role: is required"]


def test_empty_log_level_is_rejected() -> None:
    # An empty string is not a log level; it must not slip through as LogSettings(level="").
    assert faults_of(changed("log.level", "")) == [
        f"{SRC}: log.level: '' is not one of debug, info, warning, error"
    ]


@pytest.mark.parametrize(
    "path", ["node.name", "node.region", "backends.0.name", "backends.0.chip", "backends.0.models"]
)
def test_trailing_newline_does_not_sneak_past_a_name_pattern(path: str) -> None:
    # Names end up in HTTP headers and log lines; "edge\n" must be refused like any bad name.
    value: Any = ["qwen\n"] if path.endswith("models") else "edge\n"
    faults = faults_of(changed(path, value))
    assert len(faults) == 1
    assert "does not match" in faults[0]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("http.listen", "127.0.1.1:²"),  # str.isdigit() says yes, int() says no
        ("http.listen", "127.0.1.1:٨٠"),  # Arabic-Indic digits are not a port
        ("backends.0.url", "http://[::1"),  # urlsplit raises on an unclosed bracket
        ("backends.0.url", "http://[wuhan]:9000"),  # and on a bracketed non-IPv6 host
    ],
)
def test_odd_addresses_are_faults_not_crashes(path: str, value: str) -> None:
    faults = faults_of(changed(path, value))
    assert len(faults) == 1
    assert faults[0].startswith(f"{SRC}: {path.replace('.0.', '[0].')}: {value!r}")


def test_duplicate_backend_names() -> None:
    document = minimal()
    twin = dict(document["backends"][0], url="http://127.0.2.2:9000")
    document["backends"].append(twin)
    assert faults_of(document) == [
        f"{SRC}: backends: backend name 'ascend0' is used more than once"
    ]


def test_missing_node_table_is_reported() -> None:
    document = minimal()
    del document["node"]
    faults = faults_of(document)
    assert faults[0] == f"{SRC}: node: is required"
    assert all(f.startswith(f"{SRC}: node") for f in faults)


def test_required_table_of_the_wrong_shape_says_so_first() -> None:
    faults = faults_of(changed("http", ["127.0.1.1:8080"]))
    assert faults[0] == f"{SRC}: http: must be a table, got array"
    assert all(f.startswith(f"{SRC}: http") for f in faults)


def test_empty_document_names_every_required_section() -> None:
    faults = faults_of("")
    assert f"{SRC}: node: is required" in faults
    assert f"{SRC}: http: is required" in faults


def test_all_faults_are_reported_at_once() -> None:
    document = minimal()
    document["node"]["role"] = "router"
    document["node"]["colour"] = "blue"
    document["http"]["listen"] = "localhost"
    document["log"] = {"level": 3}
    document["backends"][0]["slots"] = 0
    document["backends"][0]["green_share"] = "all"
    document["backends"].append({"name": "b", "url": "ftp://x", "protocol": "openai"})
    document["extra"] = True
    assert sorted(faults_of(document)) == sorted(
        f"{SRC}: {line}"
        for line in [
            "node.role: 'router' is not one of edge, city, hub",
            "node.colour: unknown key",
            "http.listen: 'localhost' must be IP:PORT (e.g. 127.0.1.1:8080)",
            "log.level: must be a string, got integer",
            "backends[0].slots: 0 is out of range [1, 1000000]",
            "backends[0].green_share: must be a number, got string",
            "backends[1].url: 'ftp://x' must be an http:// URL with a host",
            "backends[1].models: is required",
            "extra: unknown key",
        ]
    )


def test_invalid_toml_names_the_source_and_the_line() -> None:
    faults = faults_of('[node]\nname = "wuhan"\nrole = edge\n', source="/etc/hubhop/edge.toml")
    assert len(faults) == 1
    assert faults[0].startswith("/etc/hubhop/edge.toml: invalid TOML: ")
    assert "line 3" in faults[0]


def test_duplicate_toml_key_is_invalid_toml() -> None:
    (fault,) = faults_of('[node]\nname = "a"\nname = "b"\n')
    assert fault.startswith(f"{SRC}: invalid TOML: ")


# ---------------------------------------------------------------------------------------------
# Reading the file.


def test_load_config_reads_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(FULL, encoding="utf-8")
    assert load_config(path) == parse_config(FULL, str(path))
    assert load_config(str(path)).node.name == "wuhan-union-hospital"


def test_load_config_names_the_file_in_faults(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(to_toml(changed("backends.0.slots", 0)), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.faults == [f"{path}: backends[0].slots: 0 is out of range [1, 1000000]"]


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.faults == [f"{path}: cannot read: No such file or directory"]


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.faults == [f"{tmp_path}: cannot read: Is a directory"]


def test_load_config_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes('[node]\nname = "武汉"\n'.encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.faults == [f"{path}: not UTF-8 text (byte 15)"]


# ---------------------------------------------------------------------------------------------
# Properties.

names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)
labels = st.one_of(st.just(""), names)
models = st.from_regex(MODEL_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)
chips = st.from_regex(CHIP_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)
ports = st.integers(0, 65535)


@st.composite
def listen_addresses(draw: st.DrawFn) -> tuple[str, ListenAddress]:
    ip = draw(st.ip_addresses())
    port = draw(ports)
    host = str(ip)
    text = f"[{host}]:{port}" if isinstance(ip, ipaddress.IPv6Address) else f"{host}:{port}"
    return text, ListenAddress(host, port)


@st.composite
def backend_urls(draw: st.DrawFn) -> str:
    host = draw(st.one_of(st.ip_addresses(v=4).map(str), names))
    port = draw(st.one_of(st.just(""), ports.map(lambda p: f":{p}")))
    path = draw(st.sampled_from(["", "/v1", "/v2/models"]))
    return f"http://{host}{port}{path}"


def floats_in(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def backends(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], BackendConfig]:
    protocols = draw(
        st.lists(st.sampled_from(["openai", "kserve_v2"]), min_size=1, max_size=2, unique=True)
    )
    model_list = draw(st.lists(models, min_size=1, max_size=4, unique=True))
    expected = BackendConfig(
        name=name,
        url=draw(backend_urls()),
        protocols=tuple(protocols),
        models=tuple(model_list),
        chip=draw(chips),
        slots=draw(st.integers(1, 1_000_000)),
        price=draw(floats_in(0.0, 1e9)),
        green_share=draw(floats_in(0.0, 1.0)),
    )
    table: dict[str, Any] = {
        "name": name,
        "url": expected.url,
        "protocol": protocols[0] if len(protocols) == 1 else protocols,
        "models": model_list,
    }
    # Optional keys: written or left to their defaults, and both must come out the same.
    for key, default in (
        ("chip", "cpu"),
        ("slots", 1),
        ("price", 0.0),
        ("green_share", 0.0),
    ):
        value = getattr(expected, key)
        if value != default or draw(st.booleans()):
            table[key] = value
    return table, expected


@st.composite
def valid_configs(draw: st.DrawFn) -> tuple[str, NodeConfig]:
    listen_text, listen = draw(listen_addresses())
    identity = NodeIdentity(
        name=draw(names),
        role=draw(st.sampled_from(["edge", "city", "hub"])),
        region=draw(labels),
        city=draw(labels),
    )
    http = HttpSettings(
        listen=listen,
        max_body_bytes=draw(st.integers(1, 64 * GIB)),
        max_json_body_bytes=draw(st.integers(1024, GIB)),
        backend_connect_timeout_s=draw(floats_in(0.001, 60.0)),
        backend_timeout_s=draw(floats_in(0.01, 86400.0)),
        max_connections_per_backend=draw(st.integers(1, 65536)),
    )
    write_lifecycle = draw(st.booleans())
    lifecycle = (
        LifecycleSettings(drain_grace_s=draw(floats_in(0.0, 3600.0)))
        if write_lifecycle
        else LifecycleSettings()
    )
    log = LogSettings(level=draw(st.sampled_from(["debug", "info", "warning", "error"])))
    backend_names = draw(st.lists(names, max_size=3, unique=True))
    pairs = [draw(backends(name)) for name in backend_names]
    expected = NodeConfig(
        node=identity,
        http=http,
        lifecycle=lifecycle,
        log=log,
        backends=tuple(b for _, b in pairs),
    )
    document: dict[str, Any] = {
        "node": {"name": identity.name, "role": identity.role},
        "http": {"listen": listen_text},
    }
    if identity.region or draw(st.booleans()):
        document["node"]["region"] = identity.region
    if identity.city or draw(st.booleans()):
        document["node"]["city"] = identity.city
    for key in (
        "max_body_bytes",
        "max_json_body_bytes",
        "backend_connect_timeout_s",
        "backend_timeout_s",
        "max_connections_per_backend",
    ):
        document["http"][key] = getattr(http, key)
    if write_lifecycle:
        document["lifecycle"] = {"drain_grace_s": lifecycle.drain_grace_s}
    document["log"] = {"level": log.level}
    if pairs:
        document["backends"] = [table for table, _ in pairs]
    return to_toml(document), expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs())
def test_any_valid_config_round_trips(case: tuple[str, NodeConfig]) -> None:
    text, expected = case
    assert parse_config(text, SRC) == expected


# Values a fuzzer's dictionary would hold for this schema: edge cases of each check.
tricky_strings = st.sampled_from(
    [
        "",
        "edge",
        "city",
        "hub",
        "openai",
        "kserve_v2",
        "info",
        "127.0.1.1:8080",
        "127.0.1.1:²",
        "127.0.1.1:٨٠",
        "[::1]:80",
        "[::1",
        "::1:80",
        "[fe80::1%eth0]:80",
        "127.0.1.1:",
        ":80",
        "http://127.0.2.1:9000",
        "http://[::1",
        "http://[wuhan]:9000",
        "http://[::1]:99999",
        "http://x:y",
        "http://",
        "http://h/?q#f",
        "edge\n",
        "\x00",
        "ａｂｃ",
    ]
)
any_strings = st.one_of(tricky_strings, st.text(max_size=30))
scalars = st.one_of(
    any_strings,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.times(),
    st.datetimes(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(any_strings, inner, max_size=4),
    ),
    max_leaves=12,
)
SCHEMA_KEYS = {
    "node": ["name", "role", "region", "city"],
    "http": [
        "listen",
        "max_body_bytes",
        "max_json_body_bytes",
        "backend_connect_timeout_s",
        "backend_timeout_s",
        "max_connections_per_backend",
    ],
    "lifecycle": ["drain_grace_s"],
    "log": ["level"],
    "backends": ["name", "url", "protocol", "models", "chip", "slots", "price", "green_share"],
}


@st.composite
def schema_shaped_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents with the schema's sections and keys, holding arbitrary values."""
    document: dict[str, Any] = {}
    for section, keys in SCHEMA_KEYS.items():
        if not draw(st.integers(0, 4)):
            continue  # sometimes leave a section out
        if section == "backends" and draw(st.booleans()):
            tables = []
            for _ in range(draw(st.integers(0, 3))):
                chosen = draw(st.lists(st.sampled_from(keys), unique=True))
                tables.append({k: draw(st.one_of(toml_values, tricky_strings)) for k in chosen})
            document[section] = tables
        elif draw(st.integers(0, 9)):
            chosen = draw(st.lists(st.sampled_from(keys), unique=True))
            document[section] = {k: draw(st.one_of(toml_values, tricky_strings)) for k in chosen}
        else:
            document[section] = draw(toml_values)  # the wrong shape altogether
    if draw(st.integers(0, 4)) == 0:
        document[draw(any_strings)] = draw(toml_values)
    return document


def parse_outcome(text: str) -> NodeConfig | ConfigError:
    try:
        return parse_config(text, SRC)
    except ConfigError as error:
        for fault in error.faults:
            assert fault.startswith(f"{SRC}: ")
        return error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_shaped_documents())
def test_schema_shaped_documents_only_parse_or_raise_config_error(document: dict[str, Any]) -> None:
    outcome = parse_outcome(to_toml(document))
    assert isinstance(outcome, NodeConfig | ConfigError)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_parses_or_raises_config_error(text: str) -> None:
    assert isinstance(parse_outcome(text), NodeConfig | ConfigError)


@settings(max_examples=200, deadline=None)
@given(valid_configs(), st.data())
def test_mutating_one_value_of_a_valid_config_never_crashes(
    case: tuple[str, NodeConfig], data: st.DataObject
) -> None:
    document = tomllib.loads(case[0])
    section = data.draw(st.sampled_from(sorted(document)))
    holder = document[section]
    if isinstance(holder, list):
        holder = holder[data.draw(st.integers(0, len(holder) - 1))]
    holder[data.draw(st.sampled_from(SCHEMA_KEYS[section]))] = data.draw(
        st.one_of(tricky_strings, toml_values)
    )
    assert isinstance(parse_outcome(to_toml(document)), NodeConfig | ConfigError)


def test_toml_writer_round_trips_through_tomllib() -> None:
    # The property tests lean on this writer; prove it writes what tomllib reads back.
    document = {
        "a b": 'x"y\\z\n\x7f',
        "n": [1, -2.5, True, math.inf],
        "t": {"d": datetime.date(2024, 1, 2), "k": [{"q": "r"}]},
    }
    assert tomllib.loads(to_toml(document)) == document
    assert json.dumps(tomllib.loads(to_toml(minimal()))) == json.dumps(minimal())
