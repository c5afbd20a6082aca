"""Client rate limits: a token bucket per client of the local endpoint.

Rules:
- A client's limit is `rate_per_s` (tokens added each second) and `burst` (the most the bucket
  holds, so the most requests that may come at once after a quiet spell). A request takes one
  token; with less than one in the bucket it is refused and told how long until there is one.
  A refused request takes nothing, so a client sending too fast still gets its rate served.
- Where it is set: `[routing]` gives the listener's limit (anonymous clients, all together, draw
  on one bucket of it; each token without a limit of its own gets a bucket of its own at it);
  a `[[tokens]]` entry may give its own. Without either, no limit: a node trusts its own apps
  until the operator says otherwise, like every other cap of `[routing]`.
- Pure: `now` (seconds, any monotonic origin) is an argument; the caller reads the clock.
- A reload keeps a client's bucket (its fill, clamped to the new burst) when the client is
  still configured; the new rate fills it from the client's last request on, so a changed rate
  holds at the first request after the reload (the buckets are fitted to a new config when a
  request finds it, not at the reload itself). A client that is gone loses its bucket, a new
  one starts full.
- The check is on every request of a limited client, so it is a dict lookup and a few float
  operations; unlimited clients have no bucket at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

# The bucket the clients without a token (when `[routing] anonymous` lets them in) share. Token
# names are never empty (hubhop.core.client_tokens.TOKEN_NAME), so this name is free.
ANONYMOUS = ""
# A rate below one request in ~17 minutes is a typo (seconds for ms, say), not a limit; to keep
# a client out altogether, remove its token.
MIN_RATE_PER_S = 0.001
# A burst above a million requests is no limit at all.
MAX_BURST = 1_000_000


@dataclass(frozen=True)
class RateLimit:
    """`rate_per_s` infinite: no limit (and `burst` means nothing)."""

    rate_per_s: float = math.inf
    # Means something only beside a finite rate, whose own default is `default_burst`.
    burst: int = 1

    @property
    def limited(self) -> bool:
        return math.isfinite(self.rate_per_s)


def default_burst(rate_per_s: float) -> int:
    """The burst of a limit that gives only its rate: one second's worth, at least one. An app
    may fire a page's few calls at once and still keep to its rate over any longer span."""
    return max(1, math.ceil(rate_per_s)) if math.isfinite(rate_per_s) else 1


class LimitReader(Protocol):
    """The getters parse_rate_limit uses (hubhop.core.config's table reader has them)."""

    def has(self, key: str) -> bool: ...

    def fault(self, key: str, message: str) -> None: ...

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int: ...

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float: ...


def parse_rate_limit(t: LimitReader, inherited: RateLimit) -> RateLimit:
    """`rate_per_s` and `burst` of a `[routing]` table or a `[[tokens]]` entry, each the
    `inherited` one's where absent (a burst given without a rate keeps the inherited rate; a
    rate given without a burst gets its own default burst). `rate_per_s = inf` lifts a limit
    the listener sets."""
    rate = t.number("rate_per_s", inherited.rate_per_s, lo=MIN_RATE_PER_S, hi=math.inf)
    if t.has("burst"):
        burst = t.integer("burst", 1, lo=1, hi=MAX_BURST)
        if not math.isfinite(rate):
            t.fault("burst", "means nothing without a finite rate_per_s")
    elif t.has("rate_per_s"):
        burst = default_burst(rate)
    else:
        burst = inherited.burst
    return RateLimit(rate, burst)


class TokenBucket:
    """One client's bucket. `take(now)` is 0.0 when the request may go, else the seconds until
    a token is there."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.rate_per_s
        self.burst = float(limit.burst)
        self.tokens = self.burst  # a new client may use its burst at once
        self.stamp = now

    def take(self, now: float) -> float:
        # A clock read before the last one (another task's, a moment earlier) adds nothing.
        tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(now, self.stamp)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def change(self, limit: RateLimit) -> None:
        """A new rate and burst, the rate counting from the last request taken; what the bucket
        holds is clamped to the new burst."""
        self.rate = limit.rate_per_s
        self.burst = float(limit.burst)
        self.tokens = min(self.tokens, self.burst)


class ClientBuckets:
    """The buckets of every limited client of one listener, by client name (ANONYMOUS for the
    clients without a token)."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def reconfigure(self, limits: Mapping[str, RateLimit], now: float) -> None:
        """The limits in force (a new client's bucket starts full at `now`); kept buckets
        follow their client's new limit."""
        buckets: dict[str, TokenBucket] = {}
        for name, limit in limits.items():
            if not limit.limited:
                continue
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = TokenBucket(limit, now)
            else:
                bucket.change(limit)
            buckets[name] = bucket
        self._buckets = buckets

    def __contains__(self, name: object) -> bool:
        """Whether `name` is a limited client."""
        return name in self._buckets

    def take(self, name: str, now: float) -> float:
        """0.0: `name`'s request may go (or it has no limit); else seconds until it may."""
        bucket = self._buckets.get(name)
        return 0.0 if bucket is None else bucket.take(now)


def retry_after_s(wait_s: float) -> int:
    """Retry-After for a wait: whole seconds, rounded up, at least one (a client that retries
    at once after a 429 would only be refused again)."""
    return max(1, math.ceil(wait_s))
