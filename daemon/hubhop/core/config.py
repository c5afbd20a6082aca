"""A node's configuration: one TOML document, validated whole before anything starts.

Rules:
- The whole document is checked and every fault is collected, so an operator fixes them all in
  one pass; nothing is half-applied. A fault names the source, the key and what is wrong.
- Unknown keys are faults (a typo such as `slot = 4` must not silently fall back to a default).
- Types are strict: TOML booleans are not numbers, strings are not numbers. An integer is
  accepted where a float is expected.
- Every default has its reason beside it.

This module is pure: it takes the document's text; reading the file is the caller's job
(`hubhop.io.config_file`).
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from hubhop.core.admin_config import AdminConfig, parse_admin
from hubhop.core.client_tokens import SHA256_HEX, TOKEN_NAME, ClientToken
from hubhop.core.grpc_config import GrpcConfig, parse_grpc
from hubhop.core.kserve_grpc_config import (
    GRPC_PROTOCOL,
    grpc_peer_faults,
    needs_http_url,
    parse_grpc_url,
)
from hubhop.core.listener_limits import ListenerLimits, parse_listener_limits
from hubhop.core.outlier_config import OutlierSettings, parse_outlier
from hubhop.core.routing_config import RoutingConfig, parse_client_policy, parse_routing
from hubhop.core.tls_config import CHOOSE_TLS, TlsConfig, peer_listen_faults, tls_faults
from hubhop.core.toml_table import TomlTable, kind

ROLES = ("edge", "city", "hub")
# Appended only: records carry these names (hubhop.core.capacity).
PROTOCOLS = ("openai", "kserve_v2", GRPC_PROTOCOL)
LOG_LEVELS = ("debug", "info", "warning", "error")

# Names travel in headers, logs and (later) gossip records: keep them to a DNS-label-like
# alphabet so they need no quoting anywhere.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Model names are chosen by model publishers ("meta-llama/Llama-3.1-8B-Instruct"), so allow
# the characters they use, but nothing that breaks a URL path segment or a header.
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
# Chip types are labels such as "nvidia-h100", "ascend-910b", "cpu".
# Listen hosts that mean "every address": no one address a peer can be told.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
CHIP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BASE64_PATTERN = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


class ConfigError(Exception):
    """The configuration has one or more faults; `faults` holds one line per fault."""

    def __init__(self, faults: list[str]) -> None:
        super().__init__("\n".join(faults))
        self.faults = faults


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    role: str
    region: str
    city: str


@dataclass(frozen=True)
class HttpSettings:
    listen: ListenAddress
    # A CT series runs to hundreds of MB; bodies are streamed, so a high cap costs no memory and
    # only stops a runaway client. 2 GiB keeps one upload below what a single study ever reaches.
    max_body_bytes: int = 2 * GIB
    # OpenAI-style bodies are JSON that must be parsed to learn the model, so they are read whole;
    # 32 MiB holds a chat turn with several inline base64 images, and bounds what one request can
    # pin in memory. Large payloads belong in KServe tensors, which stream.
    max_json_body_bytes: int = 32 * MIB
    # A backend on the same site answers a TCP connect in well under a millisecond; 2 s means it
    # is down or overloaded, and the client is better told at once.
    backend_connect_timeout_s: float = 2.0
    # Long generations and large image reads take minutes; 600 s bounds a stuck backend without
    # cutting off a legitimate long answer.
    backend_timeout_s: float = 600.0
    # Pooled keep-alive connections per backend: above any backend's slot count we ship, so the
    # pool never becomes the queue.
    max_connections_per_backend: int = 256
    # The address peers reach this daemon's HTTP side at, when `listen` cannot say it (a
    # wildcard). None: the listen address, which is the usual case of one address per node.
    advertise: str | None = None
    # Request head sizes, open connections, idle time (hubhop.core.listener_limits).
    limits: ListenerLimits = field(default_factory=ListenerLimits)

    @property
    def peer_host(self) -> str | None:
        """The address this daemon's records name, and its requests to peers leave from (None:
        left to the kernel, for a wildcard listen without `advertise`)."""
        if self.advertise is not None:
            return self.advertise
        return None if self.listen.host in WILDCARD_HOSTS else self.listen.host


@dataclass(frozen=True)
class LifecycleSettings:
    # In-flight requests get this long to finish after SIGTERM; 30 s covers a typical streamed
    # answer and stays below systemd's default 90 s stop timeout.
    drain_grace_s: float = 30.0


# Gossip timing a config may override, with the bounds it may set them within. The defaults and
# their reasons live with the protocol (hubhop.core.swim.GossipSettings).
GOSSIP_TUNABLES: dict[str, tuple[float, float]] = {
    "probe_interval_s": (0.05, 60.0),
    "probe_timeout_s": (0.01, 30.0),
    "gossip_interval_s": (0.01, 10.0),
    "push_pull_interval_s": (0.5, 3600.0),
    "suspicion_mult": (1.0, 20.0),
}
AES_KEY_LENGTHS = (16, 24, 32)


@dataclass(frozen=True)
class GossipConfig:
    bind: ListenAddress  # UDP and TCP, the same port, as memberlist does
    seeds: tuple[ListenAddress, ...] = ()
    # The keyring: base64 AES keys, the first one primary. Exactly one of `keys` (inline, for a
    # lab) or `keyring_file` (one key per line, for systemd's LoadCredential) is given: gossip is
    # never sent in the clear.
    keys: tuple[str, ...] = ()
    keyring_file: str = ""
    tuning: tuple[tuple[str, float], ...] = ()
    # Where the keyring is kept after a rotation (`hubhop keys`), an absolute path: written on
    # every change, and read in preference to keys/keyring_file at start when it exists (those
    # are then only the first seed). "" when not set: a rotation lasts until the next restart.
    keyring_state_file: str = ""


# Latency probing a config may override (hubhop.core.latency_monitor.ProbeSettings holds the
# defaults and their reasons), with the bounds it may set them within. Below 0.05 s a probe
# round would cost more than the gossip it rides beside; above an hour nothing is measured.
LATENCY_INTERVALS: dict[str, tuple[float, float]] = {
    "near_interval_s": (0.05, 3600.0),
    "random_interval_s": (0.05, 3600.0),
    "timeout_s": (0.01, 60.0),
    "hub_interval_s": (0.05, 3600.0),
}
# Counts: the nearest set and the links a record carries (capacity.MAX_LINKS is the ceiling).
LATENCY_COUNTS: dict[str, tuple[int, int]] = {"nearest_k": (0, 64), "max_links": (0, 64)}


@dataclass(frozen=True)
class LatencyConfig:
    # Nodes probed every near round whatever their distance: the national hubs a province
    # spills batch work to. Names of members; a hub not (yet) in the cluster is simply not
    # probed until it joins.
    hubs: tuple[str, ...] = ()
    tuning: tuple[tuple[str, float], ...] = ()
    # Least seconds between two records published for network changes alone (links measured,
    # coordinate moved). None: the republish policy's own (hubhop.core.republish, 30 s); a lab
    # or a test on one machine may want peers to see its links sooner.
    links_republish_s: float | None = None


@dataclass(frozen=True)
class WanConfig:
    """The emulated WAN (a lab and benchmark feature, off unless the section is present)."""

    # The topology file (format in topologies/README.md); an absolute path.
    topology: str
    # The site this node is; empty: the site whose host is this node's gossip bind address.
    site: str = ""
    # Seed of the jitter and loss draws, for a repeatable run; None: fresh randomness.
    seed: int | None = None


@dataclass(frozen=True)
class KernelSettings:
    # Where numba keeps compiled kernels between starts. Empty: numba's own choice (beside the
    # package, or a per-user cache when that is read-only). A system install under systemd sets
    # it to the unit's CacheDirectory so a warm start loads instead of compiling.
    cache_dir: str = ""


@dataclass(frozen=True)
class LogSettings:
    # "info" logs lifecycle events and faults, not every request.
    level: str = "info"
    # One JSON line per routed request (logger hubhop.requests, hubhop.io.request_log). Off:
    # a line per request at thousands a second floods journald past its rate limit and costs
    # CPU on every request, and who asked for which model when is itself metadata a site
    # chooses to keep. An operator who must answer "why did this go there" turns it on.
    requests: bool = False
    # Recent decisions kept for Explain and the live view (hubhop.io.decision_log): the last
    # minutes of a busy edge node, about 1 MB. 0 keeps none, for the last few microseconds a
    # request on a node nobody inspects. Read at start.
    recent_decisions: int = 1000


@dataclass(frozen=True)
class BackendConfig:
    name: str
    url: str
    protocols: tuple[str, ...]
    models: tuple[str, ...]
    # "cpu" when not said: the one chip every backend can honestly claim.
    chip: str = "cpu"
    # Concurrent requests the backend takes; 1 when not said, the safe floor for any server.
    slots: int = 1
    # Price per unit of work in the operator's currency; 0 when not said (free, e.g. own site).
    price: float = 0.0
    # Share of the backend's power that is green, 0..1; 0 when not said (claim nothing).
    green_share: float = 0.0
    # grpc://HOST:PORT of its KServe v2 gRPC side (protocol kserve_v2_grpc); "" when it has none.
    grpc_url: str = ""

    def speaks(self, protocol: str) -> bool:
        return protocol in self.protocols

    def serves(self, model: str) -> bool:
        return model in self.models


@dataclass(frozen=True)
class NodeConfig:
    node: NodeIdentity
    http: HttpSettings
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    log: LogSettings = field(default_factory=LogSettings)
    kernels: KernelSettings = field(default_factory=KernelSettings)
    # None: this node does not gossip (a single node serving its own backends).
    gossip: GossipConfig | None = None
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    # None: no emulated WAN (the default: a real network brings its own latency).
    wan: WanConfig | None = None
    # Defaults for requests that give no hints, and what this listener's clients may ask for.
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    # Clients known by bearer token, each with its own routing defaults and caps.
    tokens: tuple[ClientToken, ...] = ()
    backends: tuple[BackendConfig, ...] = ()
    # How requests travel between daemons: mutual TLS, or plain TCP for a lab (core.tls_config).
    tls: TlsConfig = field(default_factory=TlsConfig)
    # The admin socket (`hubhop status`, `hubhop keys`); none unless configured (admin_config).
    admin: AdminConfig = field(default_factory=AdminConfig)
    # When a failing or slow backend leaves rotation and how it returns (core.outlier_config).
    outlier: OutlierSettings = field(default_factory=OutlierSettings)
    # The gRPC API's listener; None: no gRPC server (core.grpc_config).
    grpc: GrpcConfig | None = None

    def backends_for(self, protocol: str, model: str) -> tuple[BackendConfig, ...]:
        return tuple(b for b in self.backends if b.speaks(protocol) and b.serves(model))

    def models_for(self, protocol: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for backend in self.backends:
            if backend.speaks(protocol):
                for model in backend.models:
                    seen.setdefault(model, None)
        return tuple(seen)


def parse_config(text: str, source: str) -> NodeConfig:
    """Parse and validate a whole config document; raise ConfigError listing every fault."""
    try:
        document = tomllib.loads(text)
    # TOMLDecodeError is a ValueError; tomllib also raises a bare ValueError for an integer of
    # over 4300 digits, and RecursionError for arrays nested about a thousand deep.
    except (ValueError, RecursionError) as exc:
        raise ConfigError([f"{source}: invalid TOML: {exc}"]) from None
    faults: list[str] = []
    config = _build(_Table(document, "", source, faults))
    if faults or config is None:
        raise ConfigError(faults or [f"{source}: invalid configuration"])
    return config


def _build(root: _Table) -> NodeConfig | None:
    node_t = root.table("node", required=True)
    identity = NodeIdentity(
        name=node_t.string("name", required=True, pattern=NAME_PATTERN),
        role=node_t.choice("role", ROLES, required=True),
        region=node_t.string("region", default="", pattern=NAME_PATTERN, allow_empty=True),
        city=node_t.string("city", default="", pattern=NAME_PATTERN, allow_empty=True),
    )
    node_t.finish()

    http_t = root.table("http", required=True)
    d = HttpSettings(listen=ListenAddress("127.0.0.1", 0))
    http = HttpSettings(
        listen=http_t.listen_address("listen", required=True),
        max_body_bytes=http_t.integer("max_body_bytes", d.max_body_bytes, lo=1, hi=64 * GIB),
        max_json_body_bytes=http_t.integer(
            "max_json_body_bytes", d.max_json_body_bytes, lo=1 * KIB, hi=1 * GIB
        ),
        backend_connect_timeout_s=http_t.number(
            "backend_connect_timeout_s", d.backend_connect_timeout_s, lo=0.001, hi=60.0
        ),
        backend_timeout_s=http_t.number(
            "backend_timeout_s", d.backend_timeout_s, lo=0.01, hi=86400.0
        ),
        max_connections_per_backend=http_t.integer(
            "max_connections_per_backend", d.max_connections_per_backend, lo=1, hi=65536
        ),
        advertise=_advertise(http_t) if http_t.has("advertise") else None,
        limits=parse_listener_limits(http_t),
    )
    http_t.finish()

    life_t = root.table("lifecycle")
    lifecycle = LifecycleSettings(
        drain_grace_s=life_t.number(
            "drain_grace_s", LifecycleSettings.drain_grace_s, lo=0.0, hi=3600.0
        )
    )
    life_t.finish()

    log_t = root.table("log")
    log = LogSettings(
        level=log_t.choice("level", LOG_LEVELS, default=LogSettings.level),
        requests=log_t.boolean("requests", LogSettings.requests),
        recent_decisions=log_t.integer(
            "recent_decisions", LogSettings.recent_decisions, lo=0, hi=1_000_000
        ),
    )
    log_t.finish()

    kernels_t = root.table("kernels")
    cache_dir = kernels_t.string("cache_dir", KernelSettings.cache_dir)
    if cache_dir and not cache_dir.startswith("/"):
        kernels_t.fault("cache_dir", f"{cache_dir!r} must be an absolute path")
    kernels = KernelSettings(cache_dir=cache_dir)
    kernels_t.finish()

    gossip = _gossip(root) if root.has("gossip") else None
    latency = _latency(root) if root.has("latency") else LatencyConfig()
    wan = _wan(root) if root.has("wan") else None
    routing = parse_routing(root.table("routing")) if root.has("routing") else RoutingConfig()
    tls = _tls(root) if root.has("tls") else TlsConfig()
    admin = parse_admin(root.table("admin")) if root.has("admin") else AdminConfig()
    outlier = parse_outlier(root.table("outlier")) if root.has("outlier") else OutlierSettings()
    grpc = parse_grpc(root.table("grpc")) if root.has("grpc") else None
    listen = (http.listen.host, http.listen.port)
    for key, message in peer_listen_faults(tls, listen, http.advertise, WILDCARD_HOSTS):
        root.fault(f"tls.{key}", message)
    if gossip is not None and not root.has("tls"):
        root.fault("tls", CHOOSE_TLS)
    peer_grpc = grpc is not None and grpc.peer_listen is not None
    for message in grpc_peer_faults(
        grpc is not None, gossip is not None, tls.mutual_tls, peer_grpc
    ):
        root.fault("grpc", message)
    if gossip is not None and http.peer_host is None:
        root.fault(
            "http.advertise",
            f"http.listen {http.listen.host} is a wildcard: peers need the address they reach"
            " this node at (set http.advertise)",
        )
    for section in ("latency", "wan"):
        if root.has(section) and gossip is None:
            root.fault(section, "needs a [gossip] section: it works over the gossip socket")

    tokens = tuple(_token(t, routing) for t in root.table_array("tokens"))
    for what, keys in (("name", [t.name for t in tokens]), ("sha256", [t.digest for t in tokens])):
        if len(set(keys)) != len(keys):
            root.fault("tokens", f"two tokens have the same {what}")
    backends = tuple(_backend(t) for t in root.table_array("backends"))
    names = [b.name for b in backends]
    for name in sorted({n for n in names if names.count(n) > 1}):
        root.fault("backends", f"backend name {name!r} is used more than once")
    root.finish()
    return NodeConfig(
        node=identity,
        http=http,
        lifecycle=lifecycle,
        log=log,
        kernels=kernels,
        gossip=gossip,
        latency=latency,
        wan=wan,
        routing=routing,
        tokens=tokens,
        backends=backends,
        tls=tls,
        admin=admin,
        outlier=outlier,
        grpc=grpc,
    )


def _tls(root: _Table) -> TlsConfig:
    t = root.table("tls")
    peer_listen = t.listen_address("peer_listen") if t.has("peer_listen") else None
    config = TlsConfig(
        plaintext=t.boolean("plaintext", default=False),
        ca_file=t.string("ca_file", ""),
        cert_file=t.string("cert_file", ""),
        key_file=t.string("key_file", ""),
        peer_listen=None if peer_listen is None else (peer_listen.host, peer_listen.port),
    )
    for key, message in tls_faults(config):
        t.fault(key, message)
    t.finish()
    return config


def _gossip(root: _Table) -> GossipConfig:
    t = root.table("gossip")
    bind = t.listen_address("bind", required=True)
    if bind.port == 0:
        t.fault("bind", "needs a fixed port: peers and seeds reach this node there")
    seeds = tuple(t.listen_address_list("seeds"))
    keys = t.string_list("keys", pattern=BASE64_PATTERN, required=False)
    for key in keys:
        try:
            length = len(base64.b64decode(key, validate=True))
        except ValueError:  # binascii.Error, or a key that is not ASCII
            t.fault("keys", "a key is not valid base64")
            continue
        if length not in AES_KEY_LENGTHS:
            t.fault("keys", f"a key decodes to {length} bytes; AES needs 16, 24 or 32")
    keyring_file = t.string("keyring_file")
    if keyring_file and not keyring_file.startswith("/"):
        t.fault("keyring_file", f"{keyring_file!r} must be an absolute path")
    keyring_state_file = t.string("keyring_state_file")
    if keyring_state_file and not keyring_state_file.startswith("/"):
        t.fault("keyring_state_file", f"{keyring_state_file!r} must be an absolute path")
    elif keyring_state_file and keyring_state_file == keyring_file:
        t.fault("keyring_state_file", "must differ from keyring_file, which is only the seed")
    if bool(keys) == bool(keyring_file):
        t.fault("keys", "give exactly one of keys or keyring_file: gossip is always encrypted")
    tuning = t.tuning(GOSSIP_TUNABLES)
    t.finish()
    return GossipConfig(bind, seeds, keys, keyring_file, tuning, keyring_state_file)


def _latency(root: _Table) -> LatencyConfig:
    t = root.table("latency")
    hubs = t.string_list("hubs", pattern=NAME_PATTERN, required=False)
    links_republish_s = None
    if t.has("links_republish_s"):
        links_republish_s = t.number("links_republish_s", 30.0, lo=1.0, hi=3600.0)
    tuning = t.tuning(LATENCY_INTERVALS, LATENCY_COUNTS)
    t.finish()
    return LatencyConfig(tuple(hubs), tuning, links_republish_s)


def _wan(root: _Table) -> WanConfig:
    t = root.table("wan")
    topology = t.string("topology", required=True)
    if topology and not topology.startswith("/"):
        t.fault("topology", f"{topology!r} must be an absolute path")
    site = t.string("site", pattern=NAME_PATTERN)
    seed: int | None = None
    if t.has("seed"):
        seed = t.integer("seed", 0, lo=0, hi=2**63 - 1)
    t.finish()
    return WanConfig(topology, site, seed)


def _advertise(t: _Table) -> str | None:
    host = t.string("advertise")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        t.fault("advertise", f"{host!r} is not an IP address")
        return None
    if address.is_unspecified:
        t.fault("advertise", f"{host} is a wildcard, not an address peers can reach")
        return None
    return host


def _token(t: _Table, listener: RoutingConfig) -> ClientToken:
    name = t.string("name", required=True, pattern=TOKEN_NAME)
    digest_hex = t.string("sha256", required=True, pattern=SHA256_HEX)
    routing = parse_client_policy(t, listener)
    if t.has("allowed_models"):
        models = t.string_list("allowed_models", pattern=MODEL_PATTERN)
        routing = replace(routing, allowed_models=models)
    t.finish()
    digest = bytes.fromhex(digest_hex) if SHA256_HEX.fullmatch(digest_hex) else b""
    return ClientToken(name=name, digest=digest, routing=routing)


def _backend(t: _Table) -> BackendConfig:
    d = BackendConfig
    protocols = t.choices("protocol", PROTOCOLS)
    backend = BackendConfig(
        name=t.string("name", required=True, pattern=NAME_PATTERN),
        # A gRPC-only backend has no REST side (hubhop.core.kserve_grpc_config).
        url=t.backend_url("url") if needs_http_url(protocols) or t.has("url") else "",
        protocols=protocols,
        models=t.string_list("models", pattern=MODEL_PATTERN),
        chip=t.string("chip", default=d.chip, pattern=CHIP_PATTERN),
        slots=t.integer("slots", d.slots, lo=1, hi=1_000_000),
        price=t.number("price", d.price, lo=0.0, hi=1e9),
        green_share=t.number("green_share", d.green_share, lo=0.0, hi=1.0),
        grpc_url=parse_grpc_url(t, protocols),
    )
    t.finish()
    return backend


class _Table(TomlTable):
    """The node config's getters beyond the generic ones: addresses, URLs, lists of names."""

    def tuning(
        self,
        numbers: dict[str, tuple[float, float]],
        counts: dict[str, tuple[int, int]] | None = None,
    ) -> tuple[tuple[str, float], ...]:
        """The overrides present among these tunable keys (number or integer, within bounds)."""
        found: list[tuple[str, float]] = []
        for name, (lo, hi) in numbers.items():
            if self.has(name):
                found.append((name, self.number(name, math.nan, lo=lo, hi=hi)))
        for name, (ilo, ihi) in (counts or {}).items():
            if self.has(name):
                found.append((name, self.integer(name, 0, lo=ilo, hi=ihi)))
        return tuple((name, value) for name, value in found if not math.isnan(value))

    def choices(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A required string or non-empty list of strings, each one of `allowed`."""
        value = self.get(key, True)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            self.fault(key, f"must be a string or a non-empty list of strings, got {kind(value)}")
            return ()
        for item in items:
            if item not in allowed:
                self.fault(key, f"{item!r} is not one of {', '.join(allowed)}")
        return tuple(dict.fromkeys(items))

    def listen_address_list(self, key: str) -> list[ListenAddress]:
        value = self.get(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fault(key, f"must be a list of IP:PORT strings, got {kind(value)}")
            return []
        # Each entry is checked by the one-address reader, on a table holding just that entry.
        out = []
        for i, text in enumerate(value):
            name = f"{key}[{i}]"
            entry = self._child({name: text}, self._path)
            out.append(entry.listen_address(name, required=True))
        return out

    def string_list(
        self, key: str, *, pattern: re.Pattern[str], required: bool = True
    ) -> tuple[str, ...]:
        value = self.get(key, required)
        if value is None:
            return ()
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.fault(key, f"must be a non-empty list of strings, got {kind(value)}")
            return ()
        for item in value:
            if not pattern.fullmatch(item):
                self.fault(key, f"{item!r} does not match {pattern.pattern}")
        return tuple(dict.fromkeys(value))

    def listen_address(self, key: str, *, required: bool = False) -> ListenAddress:
        text = self.string(key, required=required)
        fallback = ListenAddress("127.0.0.1", 0)
        if not text:
            return fallback
        host, sep, port_text = text.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            self.fault(key, f"{text!r} must be IP:PORT (e.g. 127.0.1.1:8080)")
            return fallback
        if not (sep and port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535):
            self.fault(key, f"{text!r} needs a port in 0..65535")
            return fallback
        return ListenAddress(host, int(port_text))

    def backend_url(self, key: str) -> str:
        url = self.string(key, required=True)
        if not url:
            return url
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError as exc:
            self.fault(key, f"{url!r} is not a valid URL: {exc}")
            return url
        if parts.scheme != "http" or not parts.hostname:
            self.fault(key, f"{url!r} must be an http:// URL with a host")
        elif parts.query or parts.fragment:
            self.fault(key, f"{url!r} must not carry a query or fragment")
        return url.rstrip("/")
