"""The topology file: the shipped one loads as documented, and a broken one says every fault."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hubhop.wan.topology import (
    DEFAULT_HOPS,
    ModelParams,
    Topology,
    TopologyError,
    load_topology,
    parse_places,
    parse_topology,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "topologies" / "hubei.toml"
PLACES = REPO / "topologies" / "places.csv"
# The range the shipped topology's daemons bind; nothing else in the repository uses it.
SHIPPED_RANGE = ipaddress.ip_network("127.0.40.0/24")

PLACES_TEXT = """\
# a comment
name,kind,group,lat,lon
Wuhan,city,Hubei,30.59,114.31
Chongqing,key_city,Yangtze,29.56,106.55
Chongqing,hub,Chengdu-Chongqing,29.56,106.55
"""


def read_places(name: str) -> str:
    assert name == "places.csv"
    return PLACES_TEXT


def parse(text: str) -> Topology:
    return parse_topology(text, "t.toml", read_places)


def faults_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse(text)
    assert str(caught.value) == "\n".join(caught.value.faults)
    return caught.value.faults


def test_the_shipped_topology_loads_with_the_sites_the_issue_asks_for() -> None:
    topology = load_topology(SHIPPED)
    assert topology.name == "hubei"
    assert topology.source == str(SHIPPED)
    assert len(topology.sites) >= 24
    names = topology.site_names
    assert len(set(names)) == len(names)
    hosts = [s.host for s in topology.sites]
    assert len(set(hosts)) == len(hosts)
    assert all(ipaddress.ip_address(h) in SHIPPED_RANGE for h in hosts)
    wuhan = [s for s in topology.sites if s.city == "Wuhan"]
    assert len(wuhan) >= 3, "several Wuhan sites, so there are intra-city pairs"
    hubei_cities = {s.city for s in topology.sites if s.region == "Hubei"} - {"Wuhan"}
    assert len(hubei_cities) >= 12
    key_cities = {s.city for s in topology.sites if s.region == "Yangtze"}
    assert {"Shanghai", "Nanjing", "Hangzhou", "Hefei", "Chengdu", "Chongqing"} <= key_cities
    hubs = [s for s in topology.sites if s.role == "hub"]
    assert len(hubs) == 10, "the ten data-centre clusters of the eight hub nodes"
    assert len({s.region for s in hubs}) == 8
    assert all(p.active is False for p in topology.partitions)


def test_site_of_host_maps_each_bound_address_back_to_its_site() -> None:
    topology = load_topology(str(SHIPPED))
    for site in topology.sites:
        assert topology.site_of_host(site.host) == site.name
    assert topology.site_of_host("127.0.0.1") is None
    assert topology.site_of_host("127.0.41.1") is None


def test_the_shipped_places_file_is_the_reference_list() -> None:
    places = parse_places(PLACES.read_text(encoding="utf-8"), str(PLACES))
    assert len(places) == 34  # 35 rows: Chongqing is a key city and a hub cluster
    assert [p.kind for p in places["Chongqing"]] == ["key_city", "hub"]
    assert places["Gui'an"][0].group == "Guizhou"


MINIMAL = """
[topology]
name = "mini"
[[sites]]
name = "a"
role = "city"
place = "Wuhan"
host = "127.0.41.1"
[[sites]]
name = "b"
role = "edge"
lat = 30.0
lon = 114
city = "Other"
host = "127.0.41.2"
"""


def test_a_minimal_topology_takes_every_default() -> None:
    topology = parse(MINIMAL)
    assert topology.params == ModelParams()
    a, b = topology.sites
    assert (a.city, a.region, a.lat, a.lon, a.hops) == ("Wuhan", "Hubei", 30.59, 114.31, 1)
    assert (b.city, b.region, b.lat, b.lon, b.hops) == ("Other", "", 30.0, 114.0, 2)
    assert DEFAULT_HOPS == {"edge": 2, "city": 1, "hub": 2}


def test_a_place_listed_twice_resolves_by_the_sites_role() -> None:
    topology = parse(
        '[topology]\nname = "cq"\n'
        '[[sites]]\nname = "key"\nrole = "city"\nplace = "Chongqing"\nhost = "127.0.41.1"\n'
        '[[sites]]\nname = "hub"\nrole = "hub"\nplace = "Chongqing"\nhost = "127.0.41.2"\n'
    )
    key, hub = topology.sites
    assert (key.region, hub.region) == ("Yangtze", "Chengdu-Chongqing")
    assert key.city == hub.city == "Chongqing"


def test_overrides_and_partitions_are_read() -> None:
    topology = parse(
        MINIMAL
        + '[[overrides]]\nsites = ["a", "b"]\nrtt_ms = 3.0\n'
        + '[[partitions]]\nname = "cut"\nactive = true\nsides = [["a"], ["b"]]\n'
        + '[[partitions]]\nname = "listed"\npairs = [["b", "a"]]\n'
    )
    (override,) = topology.overrides
    assert (override.a, override.b, override.one_way_ms) == ("a", "b", 1.5)
    cut, listed = topology.partitions
    assert (cut.name, cut.active, cut.pairs) == ("cut", True, frozenset({frozenset({"a", "b"})}))
    assert (listed.active, listed.pairs) == (False, frozenset({frozenset({"a", "b"})}))


def test_every_fault_is_listed_with_file_and_key() -> None:
    text = """
[topology]
name = "Bad Name"
colour = "blue"
[model]
route_factor = 0.5
loss = true
jitter_mean_ms = 2.0
jitter_max_ms = 1.0
[hops]
hub = -1
[[sites]]
name = "a"
role = "router"
place = "Atlantis"
host = "10.0.0.1"
[[sites]]
name = "a"
role = "city"
place = "Wuhan"
lat = 30.0
host = "127.0.41.2"
[[sites]]
name = "c"
role = "edge"
lat = 95.0
lon = 114.0
host = "127.0.41.2"
[[overrides]]
sites = ["a", "nowhere"]
one_way_ms = 1.0
rtt_ms = 2.0
[[partitions]]
name = "p"
pairs = [["a", "a"], ["c"]]
"""
    assert faults_of(text) == [
        "t.toml: topology.name: 'Bad Name' does not match ^[a-z0-9][a-z0-9._-]{0,62}$",
        "t.toml: topology.colour: unknown key",
        "t.toml: model.route_factor: 0.5 is out of range [1.0, 5.0]",
        "t.toml: model.loss: must be a number, got boolean",
        "t.toml: model.jitter_max_ms: must not be below jitter_mean_ms",
        "t.toml: hops.hub: -1 is out of range [0, 30]",
        "t.toml: sites[0].role: 'router' is not one of edge, city, hub",
        "t.toml: sites[0].host: '10.0.0.1' is not in 127.0.0.0/8: the emulation runs on loopback",
        "t.toml: sites[0].place: 'Atlantis' is not in the places file",
        "t.toml: sites[1].place: give either place or lat/lon, not both",
        "t.toml: sites[2].lat: 95.0 is out of range [-90.0, 90.0]",
        "t.toml: sites[2].city: is required with lat/lon (sites of one city are intra-city pairs)",
        "t.toml: sites: site name 'a' is used more than once",
        "t.toml: sites: host '127.0.41.2' is used more than once",
        "t.toml: overrides[0].sites: 'nowhere' is not a site of this topology",
        "t.toml: overrides[0].one_way_ms: give exactly one of one_way_ms or rtt_ms",
        "t.toml: partitions[0].pairs[0]: names 'a' twice: a pair is two different sites",
        "t.toml: partitions[0].pairs[1]: must be a pair of two site names, got ['c']",
    ]


def test_duplicate_hosts_and_pairs_are_faults() -> None:
    text = (
        MINIMAL.replace("127.0.41.2", "127.0.41.1")
        + '[[overrides]]\nsites = ["a", "b"]\none_way_ms = 1.0\n'
        + '[[overrides]]\nsites = ["b", "a"]\none_way_ms = 2.0\n'
    )
    assert faults_of(text) == [
        "t.toml: sites: host '127.0.41.1' is used more than once",
        "t.toml: overrides: the pair a / b is given more than once",
    ]


def test_structural_faults() -> None:
    assert faults_of("[topology]\n") == [
        "t.toml: topology.name: is required",
        "t.toml: sites: is required",
    ]
    assert faults_of('[topology]\nname = "x"\nsites = 3\n') == [
        "t.toml: topology.sites: unknown key",
        "t.toml: sites: is required",
    ]
    assert faults_of('sites = "x"\n[topology]\nname = "x"\n') == [
        "t.toml: sites: must be an array of tables ([[sites]]), got string",
    ]
    assert faults_of('[topology]\nname = "x"\n[[sites]]\nname = "a"\nrole = "city"\n') == [
        "t.toml: sites[0].host: is required",
        "t.toml: sites[0].place: give a place from the places file, or lat and lon",
        "t.toml: sites[0].city: is required with lat/lon (sites of one city are intra-city pairs)",
    ]
    assert faults_of('[topology]\nname = "x"\n[[sites]]\nname = "a"\nhost = "127.0.41.01"\n')[
        1:
    ] == [
        "t.toml: sites[0].host: '127.0.41.01' is not an IP address",
        "t.toml: sites[0].place: give a place from the places file, or lat and lon",
        "t.toml: sites[0].city: is required with lat/lon (sites of one city are intra-city pairs)",
    ]
    assert faults_of(MINIMAL + '[[partitions]]\nname = "empty"\n') == [
        "t.toml: partitions[0].pairs: a partition needs at least one pair (pairs or sides)",
    ]


def test_invalid_toml_names_the_file() -> None:
    (fault,) = faults_of("[topology\n")
    assert fault.startswith("t.toml: invalid TOML: ")


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(TopologyError) as caught:
        load_topology(missing)
    assert caught.value.faults == [f"{missing}: cannot read: No such file or directory"]

    topology = tmp_path / "t.toml"
    topology.write_text(MINIMAL.replace('name = "mini"', 'name = "mini"\nplaces = "nope.csv"'))
    with pytest.raises(TopologyError) as caught:
        load_topology(topology)
    assert caught.value.faults == [
        f"{topology}: topology.places: cannot read 'nope.csv': No such file or directory"
    ]
    with pytest.raises(TopologyError) as caught:
        parse_topology(MINIMAL, "t.toml")
    assert caught.value.faults == [
        "t.toml: topology.places: sites name places, but no places file can be read here"
    ]


def test_the_places_file_is_read_beside_the_topology(tmp_path: Path) -> None:
    (tmp_path / "places.csv").write_text(PLACES_TEXT)
    (tmp_path / "t.toml").write_text(MINIMAL)
    assert load_topology(tmp_path / "t.toml").site("a").region == "Hubei"


def test_a_broken_places_file_lists_its_faults_by_line() -> None:
    broken = "name,kind,group,lat,lon\nWuhan,city,Hubei,95,114\nX,city\nWuhan,city,Hubei,1,2\n"
    with pytest.raises(TopologyError) as caught:
        parse_places(broken, "p.csv")
    assert caught.value.faults == [
        "p.csv:2: lat/lon '95', '114' out of range",
        "p.csv:3: needs 5 unquoted fields, got 'X,city'",
    ]
    with pytest.raises(TopologyError) as caught:
        parse_places("name,lat\n", "p.csv")
    assert caught.value.faults == ["p.csv:1: the header must be name,kind,group,lat,lon"]
    with pytest.raises(TopologyError) as caught:
        parse_places("name,kind,group,lat,lon\nA,k,g,1,2\nA,k,g,3,4\n", "p.csv")
    assert caught.value.faults == ["p.csv:3: 'A' listed again at other coordinates"]
    with pytest.raises(TopologyError) as caught:
        parse_topology(MINIMAL, "t.toml", lambda name: "# empty\n")
    assert caught.value.faults == [
        "t.toml: topology.places: places.csv: no header line (name,kind,group,lat,lon)"
    ]
