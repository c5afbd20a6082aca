"""An emulated WAN's topology: its sites, the latency model's parameters and its partitions.

A topology is one TOML file (format in topologies/README.md). Each site has a name, a role
(edge | city | hub), a position (a place of the places file, or explicit lat/lon plus a city),
the loopback address its daemon binds (`host`, unique, in 127.0.0.0/8) and how many router hops
separate it from the backbone. Sites in the same city are intra-city pairs.

Rules:
- The whole file is checked and every fault is collected, as hubhop's node config does: a fault
  names the file, the key and what is wrong, and nothing is half-loaded. Unknown keys are
  faults; types are strict (a TOML boolean is not a number); an integer is accepted where a
  float is expected. Every default carries its reason.
- The places file is a small CSV (`name,kind,group,lat,lon`, `#` comments, no quoting). A name
  may appear twice with the same coordinates (Chongqing is a key city and a hub cluster): a hub
  site takes the hub row, any other site the other row.
- Pure: `parse_topology` and `parse_places` take text. `load_topology` is the one I/O: it reads
  the topology file and its places file once, at start-up, with the builtin `open`.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubhop.core.config import NAME_PATTERN, ROLES
from hubhop.core.toml_table import TomlTable, kind

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# The places file the project ships beside its topologies; a topology may name another.
DEFAULT_PLACES = "places.csv"
PLACES_HEADER = ("name", "kind", "group", "lat", "lon")

# Light in fibre travels at about c / 1.47, roughly 200,000 km/s: 5 us per km one way, the
# figure network planners use.
PROPAGATION_MS_PER_KM = 0.005
# Real routes run 1.3 to 2 times the great circle. 1.36 (with the hop costs below) is what
# reproduces the published one-way figures of the network this is built for (see
# topologies/README.md); a topology sets its own.
ROUTE_FACTOR = 1.36
# One router hop (lookup, serialisation, ordinary queueing on a carrier router) adds tens of
# microseconds; 0.1 ms is the conservative carrier figure and, with the route factor, reproduces
# the published figures.
PER_HOP_MS = 0.1
# Two sites of one city are 10-30 km of metro fibre (0.05-0.15 ms) and two or three metro hops
# apart: 0.2 ms one way, well inside the 1 ms city tier.
INTRA_CITY_MS = 0.2
# Queueing on a healthy backbone adds tens of microseconds per datagram.
JITTER_MEAN_MS = 0.02
# Jitter is cut here so that a pair more than this margin below a tier bound never crosses it
# on any single datagram: the same 0.1 ms margin the tier tests keep around every bound.
JITTER_MAX_MS = 0.1
# A healthy backbone loses well under 0.01% of packets: lossless unless a scenario says so.
LOSS = 0.0
# Router hops from a site to the backbone, by role: an edge site reaches its city core through
# an access router; a city data centre sits on the city core; a hub cluster reaches the backbone
# through its hub's own aggregation and provincial core.
DEFAULT_HOPS: dict[str, int] = {"edge": 2, "city": 1, "hub": 2}
# Far above any real path's hop count; bounds what a typo can do to the model.
MAX_HOPS = 30


class TopologyError(Exception):
    """The topology has one or more faults; `faults` holds one line per fault."""

    def __init__(self, faults: list[str]) -> None:
        super().__init__("\n".join(faults))
        self.faults = faults


@dataclass(frozen=True)
class Place:
    name: str
    kind: str  # city | key_city | hub, as the places file says
    group: str  # Hubei, Yangtze, or the national hub node a hub cluster belongs to
    lat: float
    lon: float


@dataclass(frozen=True)
class Site:
    name: str
    role: str  # edge | city | hub
    city: str  # sites of the same city are intra-city pairs
    region: str  # the place's group (Hubei, Yangtze, a hub node), or as given
    lat: float
    lon: float
    host: str  # the loopback address this site's daemon binds
    hops: int  # router hops from the site to the backbone


@dataclass(frozen=True)
class ModelParams:
    propagation_ms_per_km: float = PROPAGATION_MS_PER_KM
    route_factor: float = ROUTE_FACTOR
    per_hop_ms: float = PER_HOP_MS
    intra_city_ms: float = INTRA_CITY_MS
    jitter_mean_ms: float = JITTER_MEAN_MS
    jitter_max_ms: float = JITTER_MAX_MS
    loss: float = LOSS


@dataclass(frozen=True)
class PairOverride:
    """An explicit one-way latency between two sites, instead of the computed one."""

    a: str
    b: str
    one_way_ms: float


@dataclass(frozen=True)
class Partition:
    """A named set of site pairs that drop everything while the partition is active."""

    name: str
    pairs: frozenset[frozenset[str]]
    active: bool = False


@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    sites: tuple[Site, ...]
    params: ModelParams = field(default_factory=ModelParams)
    overrides: tuple[PairOverride, ...] = ()
    partitions: tuple[Partition, ...] = ()
    _by_name: dict[str, Site] = field(init=False, repr=False, compare=False)
    _by_host: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {s.name: s for s in self.sites})
        object.__setattr__(self, "_by_host", {s.host: s.name for s in self.sites})

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    def site(self, name: str) -> Site:
        """The site called `name`; KeyError if there is none."""
        return self._by_name[name]

    def site_of_host(self, host: str) -> str | None:
        """The site whose daemon binds `host`, or None for an address outside the topology."""
        return self._by_host.get(host)


class _PathLike(Protocol):
    def __fspath__(self) -> str: ...


ReadFile = Callable[[str], str]


def load_topology(path: str | _PathLike) -> Topology:
    """Read and validate a topology file and its places file; TopologyError lists every fault."""
    source = path if isinstance(path, str) else path.__fspath__()
    try:
        text = _read_text(source)
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([f"{source}: cannot read: {_why(exc)}"]) from None
    directory = source.rpartition("/")[0]

    def read_beside(name: str) -> str:
        return _read_text(name if name.startswith("/") or not directory else f"{directory}/{name}")

    return parse_topology(text, source, read_beside)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def parse_places(text: str, source: str) -> dict[str, tuple[Place, ...]]:
    """Parse a places file into name -> its rows; TopologyError lists every fault."""
    faults: list[str] = []
    places: dict[str, list[Place]] = {}
    header_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if not header_seen:
            header_seen = True
            if tuple(cells) != PLACES_HEADER:
                faults.append(f"{source}:{number}: the header must be {','.join(PLACES_HEADER)}")
            continue
        if len(cells) != len(PLACES_HEADER) or '"' in line:
            faults.append(f"{source}:{number}: needs 5 unquoted fields, got {line!r}")
            continue
        name, kind, group, lat_text, lon_text = cells
        lat, lon = _float_or_nan(lat_text), _float_or_nan(lon_text)
        if not (name and kind and group):
            faults.append(f"{source}:{number}: name, kind and group must not be empty")
        elif not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            faults.append(f"{source}:{number}: lat/lon {lat_text!r}, {lon_text!r} out of range")
        else:
            place = Place(name, kind, group, lat, lon)
            rows = places.setdefault(name, [])
            if any((p.lat, p.lon) != (lat, lon) for p in rows):
                faults.append(f"{source}:{number}: {name!r} listed again at other coordinates")
            rows.append(place)
    if not header_seen:
        faults.append(f"{source}: no header line ({','.join(PLACES_HEADER)})")
    if faults:
        raise TopologyError(faults)
    return {name: tuple(rows) for name, rows in places.items()}


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_topology(text: str, source: str, read_file: ReadFile | None = None) -> Topology:
    """Parse and validate a topology document; TopologyError lists every fault.

    `read_file(name)` returns the text of the places file the topology names (None: no places
    file can be read, so every site must give lat/lon).
    """
    try:
        document = tomllib.loads(text)
    # A bare ValueError for an integer of over 4300 digits, RecursionError for deep nesting.
    except (ValueError, RecursionError) as exc:
        raise TopologyError([f"{source}: invalid TOML: {exc}"]) from None
    faults: list[str] = []
    root = TomlTable(document, "", source, faults)

    head = root.table("topology", required=True)
    name = head.string("name", required=True, pattern=NAME_PATTERN)
    places_name = head.string("places", DEFAULT_PLACES)
    head.finish()

    params = _model_params(root.table("model"))
    hops_t = root.table("hops")
    default_hops = {
        role: hops_t.integer(role, DEFAULT_HOPS[role], lo=0, hi=MAX_HOPS) for role in ROLES
    }
    hops_t.finish()

    site_tables = root.table_array("sites", required=True)
    places = _places_for(site_tables, places_name, read_file, head)
    sites = [_site(t, places, default_hops) for t in site_tables]
    # Names and hosts as written, also of sites with other faults: a duplicate is reported
    # once, and a reference to a faulty site is not reported again as unknown.
    names = [t.raw_string("name") for t in site_tables]
    known = {n for n in names if n}
    _check_unique(root, "sites", names, "site name")
    _check_unique(root, "sites", [t.raw_string("host") for t in site_tables], "host")

    overrides = [_override(t, known) for t in root.table_array("overrides")]
    pairs = [frozenset((o.a, o.b)) for o in overrides if o is not None]
    for pair in {p for p in pairs if pairs.count(p) > 1}:
        root.fault("overrides", f"the pair {' / '.join(sorted(pair))} is given more than once")
    partitions = [_partition(t, known) for t in root.table_array("partitions")]
    _check_unique(root, "partitions", [p.name for p in partitions if p], "partition name")
    root.finish()
    if faults:
        raise TopologyError(faults)
    return Topology(
        name=name,
        source=source,
        sites=tuple(s for s in sites if s is not None),
        params=params,
        overrides=tuple(o for o in overrides if o is not None),
        partitions=tuple(p for p in partitions if p is not None),
    )


def _model_params(t: TomlTable) -> ModelParams:
    d = ModelParams()
    params = ModelParams(
        propagation_ms_per_km=t.number(
            "propagation_ms_per_km", d.propagation_ms_per_km, lo=0.001, hi=0.02
        ),
        route_factor=t.number("route_factor", d.route_factor, lo=1.0, hi=5.0),
        per_hop_ms=t.number("per_hop_ms", d.per_hop_ms, lo=0.0, hi=10.0),
        intra_city_ms=t.number("intra_city_ms", d.intra_city_ms, lo=0.0, hi=10.0),
        jitter_mean_ms=t.number("jitter_mean_ms", d.jitter_mean_ms, lo=0.0, hi=100.0),
        jitter_max_ms=t.number("jitter_max_ms", d.jitter_max_ms, lo=0.0, hi=1000.0),
        loss=t.number("loss", d.loss, lo=0.0, hi=1.0),
    )
    if params.jitter_max_ms < params.jitter_mean_ms:
        t.fault("jitter_max_ms", "must not be below jitter_mean_ms")
    t.finish()
    return params


def _places_for(
    sites: list[TomlTable], name: str, read_file: ReadFile | None, head: TomlTable
) -> dict[str, tuple[Place, ...]]:
    if not any(t.has("place") for t in sites):
        return {}
    if read_file is None:
        head.fault("places", "sites name places, but no places file can be read here")
        return {}
    try:
        text = read_file(name)
    except (OSError, UnicodeDecodeError) as exc:
        head.fault("places", f"cannot read {name!r}: {_why(exc)}")
        return {}
    try:
        return parse_places(text, name)
    except TopologyError as exc:
        for fault in exc.faults:
            head.fault("places", fault)
        return {}


def _site(
    t: TomlTable, places: dict[str, tuple[Place, ...]], default_hops: dict[str, int]
) -> Site | None:
    faults_before = t.fault_count
    name = t.string("name", required=True, pattern=NAME_PATTERN)
    role = t.choice("role", ROLES, required=True)
    host = t.string("host", required=True)
    if host:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            t.fault("host", f"{host!r} is not an IP address")
        else:
            if address not in LOOPBACK:
                t.fault("host", f"{host!r} is not in {LOOPBACK}: the emulation runs on loopback")
            elif str(address) != host:
                t.fault("host", f"{host!r} must be written as {address}")
    hops = t.integer("hops", default_hops.get(role, 0), lo=0, hi=MAX_HOPS)
    place_name = t.string("place")
    lat = t.number("lat", math.nan, lo=-90.0, hi=90.0)
    lon = t.number("lon", math.nan, lo=-180.0, hi=180.0)
    city = t.string("city")
    region = t.string("region")
    has_position = t.has("lat") or t.has("lon")
    if place_name and has_position:
        t.fault("place", "give either place or lat/lon, not both")
    elif place_name:
        rows = places.get(place_name, ())
        if not rows and places:
            t.fault("place", f"{place_name!r} is not in the places file")
        if rows:
            hubs = [p for p in rows if (p.kind == "hub") == (role == "hub")]
            place = (hubs or list(rows))[0]
            lat, lon = place.lat, place.lon
            city = city or place.name
            region = region or place.group
    elif not t.has("place"):
        if not (t.has("lat") and t.has("lon")):
            t.fault("place", "give a place from the places file, or lat and lon")
        if not city:
            t.fault("city", "is required with lat/lon (sites of one city are intra-city pairs)")
    t.finish()
    if t.fault_count > faults_before:
        return None
    return Site(name, role, city, region, lat, lon, host, hops)


def _override(t: TomlTable, known: set[str]) -> PairOverride | None:
    faults_before = t.fault_count
    pair = _site_pair(t, "sites", t.get("sites", required=True), known)
    one_way = t.number("one_way_ms", math.nan, lo=0.0, hi=10_000.0)
    rtt = t.number("rtt_ms", math.nan, lo=0.0, hi=20_000.0)
    if t.has("one_way_ms") == t.has("rtt_ms"):
        t.fault("one_way_ms", "give exactly one of one_way_ms or rtt_ms")
    t.finish()
    if pair is None or t.fault_count > faults_before:
        return None
    return PairOverride(pair[0], pair[1], one_way if t.has("one_way_ms") else rtt / 2.0)


def _partition(t: TomlTable, known: set[str]) -> Partition | None:
    faults_before = t.fault_count
    name = t.string("name", required=True, pattern=NAME_PATTERN)
    active = t.boolean("active", False)
    found: set[frozenset[str]] = set()
    listed = t.get("pairs")
    if listed is not None:
        if not isinstance(listed, list):
            t.fault("pairs", f"must be an array of [site, site] pairs, got {kind(listed)}")
        else:
            for i, item in enumerate(listed):
                pair = _site_pair(t, f"pairs[{i}]", item, known)
                if pair is not None:
                    found.add(frozenset(pair))
    sides = t.get("sides")
    if sides is not None:
        if not (isinstance(sides, list) and len(sides) == 2):
            t.fault("sides", f"must be two arrays of site names, got {kind(sides)}")
        else:
            left = _site_list(t, "sides[0]", sides[0], known)
            right = _site_list(t, "sides[1]", sides[1], known)
            for a in left:
                for b in right:
                    if a != b:
                        found.add(frozenset((a, b)))
    t.finish()
    if not found and t.fault_count == faults_before:
        t.fault("pairs", "a partition needs at least one pair (pairs or sides)")
    if t.fault_count > faults_before:
        return None
    return Partition(name, frozenset(found), active)


def _site_pair(t: TomlTable, key: str, value: Any, known: set[str]) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        t.fault(key, f"must be a pair of two site names, got {value!r}")
        return None
    names = _site_list(t, key, value, known)
    if len(names) != 2:
        return None
    if names[0] == names[1]:
        t.fault(key, f"names {names[0]!r} twice: a pair is two different sites")
        return None
    return names[0], names[1]


def _site_list(t: TomlTable, key: str, value: Any, known: set[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        t.fault(key, f"must be an array of site names, got {kind(value)}")
        return []
    for item in value:
        if item not in known:
            t.fault(key, f"{item!r} is not a site of this topology")
    return [v for v in value if v in known]


def _check_unique(root: TomlTable, key: str, values: Iterable[str], what: str) -> None:
    seen: dict[str, int] = {}
    for value in values:
        if value:
            seen[value] = seen.get(value, 0) + 1
    for value in sorted(v for v, n in seen.items() if n > 1):
        root.fault(key, f"{what} {value!r} is used more than once")
