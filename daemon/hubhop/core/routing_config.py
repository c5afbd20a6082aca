"""The `[routing]` config section: what a request gets when its hints say nothing, and what the
clients of this node's listener may ask for.

Rules:
- The section is optional; without it every setting takes its default (each with its reason
  beside it). It may be changed by a reload: it steers requests, it holds no socket.
- `allowed_lanes` and `allowed_tiers` cap what clients may claim, so an operator can keep the
  emergency lane for the apps that need it. They are kept in the canonical order of
  hubhop.core.tiers, repeats dropped. The default lane and tier must be among them.
- `rate_per_s` and `burst` (hubhop.core.rate_limit) cap how fast a client may send; a token's
  `allowed_models` (read by hubhop.core.config, which knows the model-name pattern) caps what
  it may ask for.
- Weights and delays are finite numbers of milliseconds: an infinite weight would make every
  candidate cost the same (infinity) and decide nothing.
- Faults are collected on the table like every other section's (hubhop.core.config); this module
  receives the table, so it needs no import of config.py (which imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

from hubhop.core.rate_limit import RateLimit, parse_rate_limit
from hubhop.core.tiers import LANES, TIERS

# What happens when no candidate fits the asked tier: `next` tries the next wider tier, `any`
# takes the best candidate wherever it is, `none` refuses the request.
SPILLS: tuple[str, ...] = ("next", "any", "none")
# Re-route attempts are bounded: each one costs the client a round trip, and ten busy nodes in a
# row means the whole region is saturated, which more tries will not fix.
MAX_TRIES_RANGE = (1, 10)


@dataclass(frozen=True)
class RoutingConfig:
    # Most traffic is ordinary inference; a request must say so to jump queues or to wait.
    lane: str = "standard"
    # "any" still prefers the nearest node (the scorer minimises expected latency); it only
    # means no candidate is ruled out for distance.
    tier: str = "any"
    # Nothing fits the tier: trying the next wider tier keeps the answer as near as possible
    # rather than failing a request a slightly farther node could serve.
    spill: str = "next"
    # Every lane and tier by default: a node trusts its own apps until the operator says not.
    allowed_lanes: tuple[str, ...] = LANES
    allowed_tiers: tuple[str, ...] = TIERS
    # A serving node that answers 429/503 or cannot be reached before the first byte is
    # skipped and the request re-routed, up to this many attempts in all: three rides out one
    # busy node and one stale table entry without making a client wait on a saturated region.
    max_tries: int = 3
    # Milliseconds of expected latency one unit of price costs in the ranking. 0: price never
    # steers, it only bounds (through a request's budget).
    price_weight_ms: float = 0.0
    # Batch lane only: a backend with no green power costs this many ms in the ranking. Batch
    # jobs run for minutes, so 20 ms is nothing to them but decides between otherwise equal
    # nodes.
    batch_green_weight_ms: float = 20.0
    # Batch lane only, on top of price_weight_ms: one unit of price costs a batch job this many
    # ms in the ranking. Batch work waits in line for cheap capacity rather than taking the
    # dear slots that chat and emergency reads need near the hospitals: at 4 s a unit, a hub at
    # price 0.4 wins over a city DC at 1.5 until the hub's expected wait is over ~4.4 s longer.
    # Without it a batch job ranks on expected latency alone, and a data centre that mostly
    # serves short requests looks faster than a hub that serves only long ones.
    batch_price_weight_ms: float = 4000.0
    # Emergency hedging: after this delay without an answer, a second node is asked too.
    # None: derived from the request's expected latency when the request is routed.
    hedge_delay_ms: float | None = None
    # The highest budget a request may state, and the budget of one that states none. No cap:
    # a node's own apps spend what they ask until the operator says otherwise.
    max_budget: float = math.inf
    # When [[tokens]] are configured: a request without a token is served with this section's
    # defaults and caps (true), or refused with 401 (false). True keeps a node without tokens,
    # and the apps already calling it, working as before.
    anonymous: bool = True
    # Requests a client may send (hubhop.core.rate_limit): none by default, like every cap here.
    rate_limit: RateLimit = field(default_factory=RateLimit)
    # The models a client may ask for. None: any model (a token's `allowed_models` narrows it).
    allowed_models: tuple[str, ...] | None = None


class SectionReader(Protocol):
    """The getters parse_routing uses: hubhop.core.config's table reader has them."""

    @property
    def fault_count(self) -> int: ...

    def has(self, key: str) -> bool: ...

    def fault(self, key: str, message: str) -> None: ...

    def choice(
        self, key: str, allowed: tuple[str, ...], default: str = "", *, required: bool = False
    ) -> str: ...

    def choices(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]: ...

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int: ...

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float: ...

    def boolean(self, key: str, default: bool) -> bool: ...

    def finish(self) -> None: ...


def parse_routing(t: SectionReader) -> RoutingConfig:
    """Read the `[routing]` table, recording every fault on it; defaults where a key is absent."""
    d = RoutingConfig()
    allowed_lanes = allowed_subset(t, "allowed_lanes", LANES)
    allowed_tiers = allowed_subset(t, "allowed_tiers", TIERS)
    lo, hi = MAX_TRIES_RANGE
    config = RoutingConfig(
        lane=_default_choice(t, "lane", d.lane, LANES, allowed_lanes),
        tier=_default_choice(t, "tier", d.tier, TIERS, allowed_tiers),
        spill=t.choice("spill", SPILLS, default=d.spill),
        allowed_lanes=allowed_lanes,
        allowed_tiers=allowed_tiers,
        max_tries=t.integer("max_tries", d.max_tries, lo=lo, hi=hi),
        price_weight_ms=_milliseconds(t, "price_weight_ms", d.price_weight_ms),
        batch_green_weight_ms=_milliseconds(t, "batch_green_weight_ms", d.batch_green_weight_ms),
        batch_price_weight_ms=_milliseconds(t, "batch_price_weight_ms", d.batch_price_weight_ms),
        hedge_delay_ms=(
            _milliseconds(t, "hedge_delay_ms", math.nan, positive=True)
            if t.has("hedge_delay_ms")
            else None
        ),
        max_budget=t.number("max_budget", d.max_budget, lo=0.0, hi=math.inf),
        anonymous=t.boolean("anonymous", d.anonymous),
        rate_limit=parse_rate_limit(t, d.rate_limit),
    )
    t.finish()
    return config


def parse_client_policy(t: SectionReader, listener: RoutingConfig) -> RoutingConfig:
    """A client token's defaults and caps (`lane`, `tier`, `spill`, `allowed_lanes`,
    `allowed_tiers`, `max_budget`, `rate_per_s`, `burst`), each the listener's where the
    token's table does not say.
    A token may be granted more than anonymous clients (the emergency lane, say); that is what
    tokens are for. The caller reads the token's other keys and calls `finish`."""
    allowed_lanes = allowed_subset(t, "allowed_lanes", LANES) if t.has("allowed_lanes") else None
    allowed_tiers = allowed_subset(t, "allowed_tiers", TIERS) if t.has("allowed_tiers") else None
    lanes = allowed_lanes or listener.allowed_lanes
    tiers = allowed_tiers or listener.allowed_tiers
    # The listener's default lane may be one the token is not allowed: then its first allowed.
    lane_default = listener.lane if listener.lane in lanes else lanes[0]
    tier_default = listener.tier if listener.tier in tiers else tiers[-1]
    return replace(
        listener,
        lane=_default_choice(t, "lane", lane_default, LANES, lanes),
        tier=_default_choice(t, "tier", tier_default, TIERS, tiers),
        spill=t.choice("spill", SPILLS, default=listener.spill),
        allowed_lanes=lanes,
        allowed_tiers=tiers,
        max_budget=t.number("max_budget", listener.max_budget, lo=0.0, hi=math.inf),
        rate_limit=parse_rate_limit(t, listener.rate_limit),
    )


def allowed_subset(t: SectionReader, key: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """The allowed subset of `known`, in canonical order; all of it when absent or faulty."""
    if not t.has(key):
        return known
    given = t.choices(key, known)
    subset = tuple(name for name in known if name in given)
    return subset or known


def _default_choice(
    t: SectionReader, key: str, default: str, known: tuple[str, ...], allowed: tuple[str, ...]
) -> str:
    value = t.choice(key, known, default=default)
    if value in known and value not in allowed:
        said = "" if t.has(key) else "the default "
        t.fault(key, f"{said}{value!r} is not among allowed_{key}s ({', '.join(allowed)})")
    return value


def _milliseconds(t: SectionReader, key: str, default: float, *, positive: bool = False) -> float:
    """A finite number of ms, >= 0 (or > 0 when `positive`)."""
    before = t.fault_count
    value = t.number(key, default, lo=0.0, hi=math.inf)
    if t.fault_count == before and t.has(key):
        if not math.isfinite(value):
            t.fault(key, f"{value} must be a finite number of ms")
        elif positive and value == 0.0:
            t.fault(key, "must be above 0 ms")
    return value
