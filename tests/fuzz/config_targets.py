"""Fuzz targets for the operator's files: a node's config (TOML), the emulated WAN's topology
(TOML) and its places file (CSV). Not peer input, but text a typo or a bad tool can mangle, and
the daemon must answer it with the list of faults, never a traceback.

Rules:
- Seeds are the example configs in systemd/, each with every optional section added (gossip,
  latency, wan, routing, tokens, tls), the shipped topology and its places file.
- Text is decoded as `hubhop.io.config_file` reads it (UTF-8); bytes that are not UTF-8 are
  replaced, since the file reader refuses them before any parser sees them.
- Refusals: ConfigError, TopologyError.
"""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

from hubhop.core.client_tokens import token_digest
from hubhop.core.config import ConfigError, parse_config
from hubhop.wan.topology import TopologyError, parse_places, parse_topology
from tests.fuzz.target import Target

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "daemon" / "hubhop" / "wan" / "topologies"
KEY = base64.b64encode(bytes(range(32))).decode()
# Every optional section, so mutations reach every section's validation.
SECTIONS = f"""
[gossip]
bind = "127.0.4.1:7946"
seeds = ["127.0.4.2:7946", "[::1]:7946"]
keys = ["{KEY}"]
probe_interval_s = 0.25
[latency]
hubs = ["hub-wuhu", "hub-zhongwei"]
near_interval_s = 1.5
[wan]
topology = "{TOPOLOGIES / "hubei.toml"}"
site = "wuhan-dc-1"
seed = 7
[routing]
tier = "province"
allowed_tiers = ["city", "province"]
max_budget = 3.5
[[tokens]]
name = "radiology"
sha256 = "{token_digest("rad-token")}"
lane = "emergency"
[tls]
plaintext = true
"""


def config_seeds() -> list[bytes]:
    examples = [p.read_bytes() for p in sorted((ROOT / "systemd").glob("*.toml"))]
    return examples + [e + SECTIONS.encode() for e in examples]


def targets() -> list[Target]:
    places_text = (TOPOLOGIES / "places.csv").read_text()

    def config(data: bytes) -> None:
        with contextlib.suppress(ConfigError):
            parse_config(data.decode("utf-8", "replace"), "fuzz.toml")

    def topology(data: bytes) -> None:
        with contextlib.suppress(TopologyError):
            parse_topology(data.decode("utf-8", "replace"), "fuzz.toml", lambda _: places_text)

    def places(data: bytes) -> None:
        with contextlib.suppress(TopologyError):
            parse_places(data.decode("utf-8", "replace"), "places.csv")

    topology_seed = (TOPOLOGIES / "hubei.toml").read_bytes()
    return [
        Target("config", "text", tuple(config_seeds()), config),
        Target("topology", "text", (topology_seed,), topology),
        Target("places", "text", (places_text.encode(),), places),
    ]
