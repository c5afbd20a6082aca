"""A load generator's workload file: how long, how fast, and which streams of requests.

Format (TOML; an example ships as `hubhop/loadgen/workloads/hospital.toml`):

    [run]
    duration_s = 60          # optional; the defaults and their reasons are below
    seed = 0
    arrival = "poisson"      # fixed | poisson: each stream's default
    rate = 20.0              # optional: the total rate, shared by the streams' weights
    timeout_s = 60
    connect_timeout_s = 2
    drain_s = 10
    max_connections = 1000
    auth_token_env = "HUBHOP_TOKEN"   # optional: send `Authorization: Bearer $HUBHOP_TOKEN`

    [[streams]]
    name = "ct-read"                     # default: the model; unique
    entry = ["http://127.0.1.1:8080"]    # a URL or a list; requests take them in turn
    protocol = "kserve_v2_binary"        # openai_chat | openai_completion | kserve_v2_json
                                         # | kserve_v2_binary
    model = "ct-triage"
    rate = 2.0                           # requests/s; or `weight` when [run] rate is given
    arrival = "fixed"                    # overrides [run] arrival
    lane = "emergency"                   # routing hints, sent as x-hubhop-* headers; each
    tier = "city"                        #   optional (absent: the daemon's default).
    chip = "ascend-910b"                 #   `max_latency_ms` instead of `tier`.
    budget = 5.0
    deadline_ms = 10000                  # also the bound for "within deadline"
    spill = "none"
    body_bytes = 4194304                 # prompt bytes (OpenAI) or tensor bytes (KServe)
    stream = false                       # OpenAI only: ask for a streamed answer
    max_tokens = 16                      # OpenAI only

Rules:
- The whole file is checked and every fault collected, as the node config is: one line per
  fault naming the file and the key (`FILE: streams[1].tier: 'town' is not one of ...`).
  Unknown keys are faults; types are strict; an integer is accepted where a float is expected.
- Rates: either every stream gives `rate` (requests/s), or `[run] rate` gives the total and the
  streams share it by `weight` (default 1). Mixing the two is a fault, so a file never means
  something other than it reads.
- A stream asks a `tier` or a `max_latency_ms`, not both (the daemon refuses both too).
- Every default carries its reason. Pure: `parse_workload` takes text; reading the file is the
  command's job.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from hubhop.core.config import CHIP_PATTERN, MODEL_PATTERN, NAME_PATTERN, ConfigError
from hubhop.core.routing_config import SPILLS
from hubhop.core.routing_hints import MAX_DEADLINE_MS
from hubhop.core.tiers import LANES, TIERS, tier_of
from hubhop.core.toml_table import TomlTable, kind

PROTOCOLS = ("openai_chat", "openai_completion", "kserve_v2_json", "kserve_v2_binary")
OPENAI_PROTOCOLS = ("openai_chat", "openai_completion")
# Bodies a daemon parses whole (OpenAI JSON, KServe JSON tensors) stay under its default
# http.max_json_body_bytes (32 MiB), or every request would be a 413 and measure nothing.
JSON_PROTOCOLS = ("openai_chat", "openai_completion", "kserve_v2_json")
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024
# Binary tensors stream; 2 GiB is the daemon's default http.max_body_bytes.
MAX_BINARY_BODY_BYTES = 2 * 1024 * 1024 * 1024
ARRIVALS = ("fixed", "poisson")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

# A minute: at 20 requests/s that is 1,200 requests, enough for a p99 with a dozen samples
# beyond it; a p99.9 wants ten times as many, so a file that reports it runs longer.
DEFAULT_DURATION_S = 60.0
# A fixed seed: two runs of one file send the same schedule and the same bodies. A run that
# wants another sample of the same load changes the seed (or passes --seed).
DEFAULT_SEED = 0
# Clients of a network arrive independently of each other: Poisson. `fixed` is for
# calibration, where every gap should be the same.
DEFAULT_ARRIVAL = "poisson"
# A hospital's CT read answers in under 10 s; a minute bounds a stuck request without cutting
# a long streamed answer short.
DEFAULT_TIMEOUT_S = 60.0
# An entry point on the same site accepts a TCP connection in well under 1 ms; 2 s means it is
# down, as the daemon judges its own backends.
DEFAULT_CONNECT_TIMEOUT_S = 2.0
# Requests still in flight when the last one has been sent get this long to finish, then count
# as timeouts: long enough for a queue of ordinary requests to empty, short enough that a hung
# server does not hold the report back for a whole timeout.
DEFAULT_DRAIN_S = 10.0
# Open loop wants a connection per request in flight; 1,000 stays under the usual 1,024
# open-file soft limit. A request waiting for a connection counts that wait as latency.
DEFAULT_MAX_CONNECTIONS = 1000
# 1 KiB: a short chat turn, or a small tensor, so the latency measured is the server's and not
# the upload's. CT reads say their own size.
DEFAULT_BODY_BYTES = 1024
# The demo backend's default answer length: short answers keep a run about the routing.
DEFAULT_MAX_TOKENS = 16
# The API most apps speak.
DEFAULT_PROTOCOL = "openai_chat"
# Rates from a request a day to far beyond what one client process can send.
RATE_RANGE = (1e-5, 100_000.0)
DURATION_RANGE = (0.001, 7 * 24 * 3600.0)


class WorkloadError(ConfigError):
    """The workload file has one or more faults; `faults` holds one line per fault."""


@dataclass(frozen=True)
class Stream:
    """One kind of request, sent at its own rate to its entry points."""

    name: str
    entries: tuple[str, ...]
    protocol: str
    model: str
    rate: float  # requests/s, after any [run] rate was shared out by weight
    arrival: str
    lane: str | None = None  # None: not sent, the daemon's default applies
    tier: str | None = None
    max_latency_ms: float | None = None
    chip: str | None = None
    budget: float | None = None
    deadline_ms: float | None = None
    spill: str | None = None
    body_bytes: int = DEFAULT_BODY_BYTES
    stream: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS

    @property
    def asked_tier(self) -> str | None:
        """The tier the stream asks: named, or the tightest one holding its max latency."""
        if self.max_latency_ms is not None:
            return tier_of(self.max_latency_ms)
        return self.tier

    @property
    def group(self) -> tuple[str, str]:
        """The (lane, tier) row this stream's requests are reported in."""
        return (self.lane or "default", self.asked_tier or "default")


@dataclass(frozen=True)
class Workload:
    source: str
    streams: tuple[Stream, ...]
    duration_s: float = DEFAULT_DURATION_S
    seed: int = DEFAULT_SEED
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    drain_s: float = DEFAULT_DRAIN_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    auth_token_env: str | None = None

    @property
    def rate(self) -> float:
        """Requests per second planned, all streams together."""
        return sum(s.rate for s in self.streams)

    def adjusted(
        self,
        *,
        duration_s: float | None = None,
        rate_scale: float = 1.0,
        seed: int | None = None,
        entries: tuple[str, ...] = (),
    ) -> Workload:
        """This workload with the command line's overrides: every rate scaled, and `entries`
        (when given) in place of every stream's entry points."""
        streams = tuple(
            replace(s, rate=s.rate * rate_scale, entries=entries or s.entries) for s in self.streams
        )
        return replace(
            self,
            streams=streams,
            duration_s=self.duration_s if duration_s is None else duration_s,
            seed=self.seed if seed is None else seed,
        )

    def as_json(self) -> dict[str, Any]:
        """The workload as run, for the result file."""
        run = {k: v for k, v in vars(self).items() if k != "streams"}
        return {**run, "rate": self.rate, "streams": [dict(vars(s)) for s in self.streams]}


def entry_url_fault(url: str) -> str | None:
    """Why `url` cannot be an entry point (an http(s) URL with a host, no query), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{url!r} is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return f"{url!r}: an entry point has no query or fragment"
    if port == 0:
        return f"{url!r}: port 0 is not a port to send to"
    return None


def parse_workload(text: str, source: str) -> Workload:
    """Parse and validate a whole workload document; WorkloadError lists every fault."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError([f"{source}: invalid TOML: {exc}"]) from None
    faults: list[str] = []
    root = TomlTable(document, "", source, faults)
    workload = _build(root, source)
    if faults:
        raise WorkloadError(faults)
    return workload


def _build(root: TomlTable, root_source: str) -> Workload:
    run = root.table("run")
    total_rate = None
    if run.has("rate"):
        total_rate = run.number("rate", 1.0, lo=RATE_RANGE[0], hi=RATE_RANGE[1])
    default_arrival = run.choice("arrival", ARRIVALS, DEFAULT_ARRIVAL)
    token_env = run.string("auth_token_env", pattern=ENV_NAME) or None
    duration_s = run.number(
        "duration_s", DEFAULT_DURATION_S, lo=DURATION_RANGE[0], hi=DURATION_RANGE[1]
    )
    seed = run.integer("seed", DEFAULT_SEED, lo=0, hi=2**63 - 1)
    timeout_s = run.number("timeout_s", DEFAULT_TIMEOUT_S, lo=0.001, hi=86400.0)
    connect_timeout_s = run.number(
        "connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S, lo=0.001, hi=600.0
    )
    drain_s = run.number("drain_s", DEFAULT_DRAIN_S, lo=0.0, hi=86400.0)
    max_connections = run.integer("max_connections", DEFAULT_MAX_CONNECTIONS, lo=1, hi=1_000_000)
    run.finish()

    tables = root.table_array("streams", required=True)
    streams: list[Stream] = []
    weights: list[float] = []
    names: dict[str, int] = {}
    for index, table in enumerate(tables):
        stream, weight = _stream(table, default_arrival, total_rate is not None)
        if stream.name in names:
            table.fault("name", f"{stream.name!r} is already streams[{names[stream.name]}]'s")
        names.setdefault(stream.name, index)
        streams.append(stream)
        weights.append(weight)
    root.finish()
    if total_rate is not None and weights:
        share = total_rate / sum(weights)
        streams = [replace(s, rate=share * w) for s, w in zip(streams, weights, strict=True)]
    return Workload(
        source=root_source,
        streams=tuple(streams),
        duration_s=duration_s,
        seed=seed,
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
        drain_s=drain_s,
        max_connections=max_connections,
        auth_token_env=token_env,
    )


def _stream(table: TomlTable, default_arrival: str, shared_rate: bool) -> tuple[Stream, float]:
    """One [[streams]] table, and its weight (1 unless it shares a [run] rate)."""
    model = table.string("model", required=True, pattern=MODEL_PATTERN)
    name = table.string("name", model, pattern=NAME_PATTERN)
    entries = _entries(table)
    protocol = table.choice("protocol", PROTOCOLS, DEFAULT_PROTOCOL)
    weight = 1.0
    rate = 0.0
    if shared_rate:
        if table.has("rate"):
            table.fault("rate", "[run] rate is given: streams share it by weight, not by rate")
        weight = table.number("weight", 1.0, lo=1e-9, hi=1e9)
    else:
        if table.has("weight"):
            table.fault("weight", "a weight shares [run] rate, which is not given")
        rate = table.number("rate", 0.0, lo=RATE_RANGE[0], hi=RATE_RANGE[1])
        if not table.has("rate"):
            table.fault("rate", "is required (or give [run] rate and weights)")
    tier = table.choice("tier", TIERS) or None
    max_latency = _optional_number(table, "max_latency_ms", 0.0, MAX_DEADLINE_MS)
    if tier is not None and max_latency is not None:
        table.fault("max_latency_ms", "give either tier or max_latency_ms, not both")
    openai = protocol in OPENAI_PROTOCOLS
    for key in ("stream", "max_tokens"):
        if table.has(key) and not openai and protocol in PROTOCOLS:
            table.fault(key, f"means nothing for {protocol} (OpenAI protocols only)")
    body_cap = MAX_JSON_BODY_BYTES if protocol in JSON_PROTOCOLS else MAX_BINARY_BODY_BYTES
    stream = Stream(
        name=name,
        entries=entries,
        protocol=protocol,
        model=model,
        rate=rate,
        arrival=table.choice("arrival", ARRIVALS, default_arrival),
        lane=table.choice("lane", LANES) or None,
        tier=tier,
        max_latency_ms=max_latency,
        chip=table.string("chip", pattern=CHIP_PATTERN) or None,
        budget=_optional_number(table, "budget", 0.0, 1e12),
        deadline_ms=_optional_number(table, "deadline_ms", 1e-3, MAX_DEADLINE_MS),
        spill=table.choice("spill", SPILLS) or None,
        body_bytes=table.integer("body_bytes", DEFAULT_BODY_BYTES, lo=1, hi=body_cap),
        stream=table.boolean("stream", False),
        max_tokens=table.integer("max_tokens", DEFAULT_MAX_TOKENS, lo=1, hi=1_000_000),
    )
    table.finish()
    return stream, weight


def _optional_number(table: TomlTable, key: str, lo: float, hi: float) -> float | None:
    if not table.has(key):
        return None
    value = table.number(key, math.nan, lo=lo, hi=hi)
    return None if math.isnan(value) else value


def _entries(table: TomlTable) -> tuple[str, ...]:
    """`entry`: one URL or a non-empty list of them, each an http(s) URL with a host."""
    value = table.get("entry", required=True)
    if value is None:
        return ()
    urls = value if isinstance(value, list) else [value]
    if not urls or not all(isinstance(u, str) for u in urls):
        table.fault("entry", f"must be a URL or a non-empty list of URLs, got {kind(value)}")
        return ()
    for url in urls:
        why = entry_url_fault(url)
        if why:
            table.fault("entry", why)
    return tuple(u.rstrip("/") for u in urls)
