"""Which demo backends each site of an emulated network fronts: chip, models, slots, price,
green share, and how fast the stand-in server answers.

One definition for `hubhop demo`, the multi-process tests and the routing benchmark, so they
all run the same network from the same topology.

Rules:
- Deterministic from the topology alone: a site's class comes from its role and where it is
  (the core city, the rest of the home region, elsewhere), and within a class the chips take
  turns in topology order. No randomness, no clock: the same file gives the same network.
- The core city is the city with the most sites (Wuhan in the shipped file: the provincial
  core); the home region is its region (Hubei). Ties go to the city named first.
- Models are the hospital mix's (`hubhop/loadgen/workloads/hospital.toml`): `ct-triage`
  (emergency CT reads over KServe v2), `chat-7b` (chat over OpenAI), `seq-align` (batch).
- Pure: `backend_toml` and `demo_backend_args` turn a profile into a daemon's [[backends]]
  entry and a `hubhop demo-backend` command line; starting processes is `hubhop.lab.backends`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from hubhop.wan.topology import Site, Topology

CT = "ct-triage"
CHAT = "chat-7b"
BATCH = "seq-align"
# Every demo backend speaks both APIs, as Triton and vLLM-with-KServe deployments do: a CT read
# arrives as a KServe v2 binary tensor, chat and batch as OpenAI calls.
PROTOCOLS = ("openai", "kserve_v2")


@dataclass(frozen=True)
class SiteClass:
    """What every site of one kind fronts; `chips` are taken in turn by its sites."""

    name: str
    chips: tuple[str, ...]
    models: tuple[str, ...]
    slots: int
    price: float  # per unit of work, before the chip's factor
    green_share: float  # before the per-site step (GREEN_STEP)


# A hospital's own small box: chat for its clinicians on a CPU, no CT model (that needs the
# city's accelerators), two requests at a time; free (the hospital owns it), grid power.
EDGE = SiteClass("hospital edge", ("cpu",), (CHAT,), 2, 0.0, 0.0)
# The provincial core's data centres: every model, the most accelerators in the province, and
# the dearest (city-centre power and space).
CORE_DC = SiteClass("core-city DC", ("ascend-910b", "nvidia-h100"), (CT, CHAT, BATCH), 8, 2.0, 0.2)
# Another city's municipal data centre: every model, a few accelerators, cheaper.
CITY_DC = SiteClass("city DC", ("ascend-910b", "nvidia-a100"), (CT, CHAT, BATCH), 4, 1.5, 0.3)
# A key city of the region outside the home province: chat and batch for whoever is in reach.
KEY_CITY = SiteClass("key-city DC", ("nvidia-a100", "nvidia-h100"), (CHAT, BATCH), 6, 1.0, 0.3)
# A national hub cluster: built for batch work on cheap, mostly green power, far away.
HUB = SiteClass("hub cluster", ("nvidia-h100", "ascend-910b"), (BATCH,), 16, 0.4, 0.8)

# Price factor per chip: an H100 hour costs more than an A100 or an Ascend 910B one.
CHIP_PRICE = {"cpu": 1.0, "ascend-910b": 1.0, "nvidia-a100": 1.0, "nvidia-h100": 1.5}
# Per-request prefill (a service-time distribution for `hubhop demo-backend --service-ms`) and
# decode speed per chip: a 7B model's order of magnitude on each, right-skewed like real
# servers (lognormal, p99 about twice the median). A CPU is several times slower.
CHIP_SPEED = {
    "cpu": ("lognormal:80,0.3", 40.0),
    "ascend-910b": ("lognormal:35,0.3", 60.0),
    "nvidia-a100": ("lognormal:35,0.3", 60.0),
    "nvidia-h100": ("lognormal:25,0.3", 80.0),
}
# Sites of one class differ a little in green share, in topology order: 0, +0.05, +0.1, 0, ...
GREEN_STEP = 0.05
GREEN_STEPS = 3


@dataclass(frozen=True)
class BackendProfile:
    """One demo backend of one site."""

    site: str
    name: str  # the backend's name at its node
    site_class: str
    chip: str
    models: tuple[str, ...]
    slots: int
    price: float
    green_share: float
    service_ms: str  # `hubhop demo-backend --service-ms`
    token_rate: float  # tokens/s per request

    @property
    def seed(self) -> int:
        """The demo backend's seed: repeatable service times, different for every site."""
        return zlib.crc32(f"{self.site}/{self.name}".encode())


def core_city(topology: Topology) -> str:
    """The city with the most sites (the first such in the file on a tie)."""
    counts = Counter(site.city for site in topology.sites)
    return max(counts, key=lambda city: (counts[city], -_first_index(topology, city)))


def _first_index(topology: Topology, city: str) -> int:
    return next(i for i, site in enumerate(topology.sites) if site.city == city)


def site_class(site: Site, core: Site) -> SiteClass:
    """The class of `site` in a network whose core city is `core`'s."""
    if site.role == "edge":
        return EDGE
    if site.role == "hub":
        return HUB
    if site.city == core.city:
        return CORE_DC
    return CITY_DC if site.region == core.region else KEY_CITY


def profiles(topology: Topology) -> dict[str, tuple[BackendProfile, ...]]:
    """Every site's demo backends (one per site), by site name, in topology order."""
    city = core_city(topology)
    core = next(site for site in topology.sites if site.city == city)
    turn: Counter[str] = Counter()
    out: dict[str, tuple[BackendProfile, ...]] = {}
    for site in topology.sites:
        cls = site_class(site, core)
        index = turn[cls.name]
        turn[cls.name] += 1
        chip = cls.chips[index % len(cls.chips)]
        service_ms, token_rate = CHIP_SPEED[chip]
        green = cls.green_share + GREEN_STEP * (index % GREEN_STEPS)
        out[site.name] = (
            BackendProfile(
                site=site.name,
                name=f"{chip}-0",
                site_class=cls.name,
                chip=chip,
                models=cls.models,
                slots=cls.slots,
                price=round(cls.price * CHIP_PRICE[chip], 2),
                green_share=round(min(1.0, green), 2),
                service_ms=service_ms,
                token_rate=token_rate,
            ),
        )
    return out


def backend_toml(profile: BackendProfile, url: str) -> str:
    """The daemon's [[backends]] entry for `profile`, served at `url`."""
    models = ", ".join(f'"{m}"' for m in profile.models)
    protocols = ", ".join(f'"{p}"' for p in PROTOCOLS)
    return (
        f'[[backends]]\nname = "{profile.name}"\nurl = "{url}"\nprotocol = [{protocols}]\n'
        f'models = [{models}]\nchip = "{profile.chip}"\nslots = {profile.slots}\n'
        f"price = {profile.price}\ngreen_share = {profile.green_share}\n"
    )


def demo_backend_args(profile: BackendProfile, host: str) -> tuple[str, ...]:
    """`hubhop demo-backend` arguments (after --port) for `profile`, listening on `host`."""
    return (
        "--host", host, "--chip", profile.chip, "--models", ",".join(profile.models),
        "--service-ms", profile.service_ms, "--token-rate", f"{profile.token_rate:g}",
        "--slots", str(profile.slots), "--seed", str(profile.seed), "--name", profile.name,
    )  # fmt: skip


def describe(found: Mapping[str, tuple[BackendProfile, ...]]) -> list[str]:
    """One line per site: its backends, for a log or a report."""
    return [
        f"{site}: "
        + "; ".join(
            f"{p.name} ({p.site_class}) {','.join(p.models)} x{p.slots} "
            f"price {p.price:g} green {p.green_share:.0%}"
            for p in backends
        )
        for site, backends in found.items()
    ]
