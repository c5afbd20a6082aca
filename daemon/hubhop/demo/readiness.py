"""When a freshly started network is ready for the demo's load: every entry point sees every
node alive, and routes every stream of the workload somewhere.

Why wait at all: a daemon puts a peer in a tier only once its probes have measured the link
(or coordinates say so, with a wide margin), and it learns other nodes' links from their
records; until then a CT read that must stay in the city has nowhere to go, and would be
counted as shed for a reason that is only the cold start. On the shipped topology the links
are measured within ~10 s of the last daemon's start, and the routes follow once each node has
republished its record with them (`[latency] links_republish_s`: 30 s by default, the demo's 5).

Rules:
- Polling, bounded: `wait_routable` asks each entry's daemon (`/hubhop/v1/members` and
  `POST /hubhop/v1/route`, the decision alone: nothing is sent to a backend) every POLL_S, and
  gives up after the caller's bound with what each entry still lacked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from hubhop.lab.cluster import WanCluster

# Four entries x three streams is a dozen decisions a round, each a millisecond of a daemon's
# time: every second is often enough to start within a second of being ready, and cheap.
POLL_S = 1.0


class NotReady(RuntimeError):
    """The network did not become ready within the bound; the message says what was missing."""


def _why_not(decision: dict[str, Any]) -> str | None:
    """None when the decision chose a node, else why not, in a few words."""
    if decision.get("chosen"):
        return None
    error = decision.get("error")
    if isinstance(error, dict):
        return str(error.get("message", error))
    reasons = {
        f"{c.get('node')}: {', '.join(c.get('reasons', ()))}" for c in decision.get("rejected", ())
    }
    return "nothing chosen" + (f" ({'; '.join(sorted(reasons)[:3])})" if reasons else "")


def missing(
    cluster: WanCluster, entries: Sequence[str], asks: Sequence[dict[str, Any]]
) -> list[str]:
    """What keeps the network from being ready: one line per (entry, want) not met, the wants
    being "every node alive" and a route for each ask; [] when ready."""
    wants = ["members", *(f"{a['model']} ({a.get('lane') or 'default lane'})" for a in asks)]
    out = []
    for entry in entries:
        try:
            members = cluster.get(entry, "/hubhop/v1/members")["members"]
            alive = {m["name"] for m in members if m.get("state") == "alive"}
            absent = [s for s in cluster.sites if s not in alive]
            whys = [f"does not see alive yet: {', '.join(absent)}" if absent else None]
            whys += [_why_not(cluster.route(entry, ask)) for ask in asks]
        except (OSError, ValueError, KeyError) as exc:  # URLError is an OSError
            whys = [f"not answering: {exc}"] * len(wants)
        out += [f"{entry}: {want}: {why}" for want, why in zip(wants, whys, strict=True) if why]
    return out


def wait_routable(
    cluster: WanCluster,
    entries: Sequence[str],
    asks: Sequence[dict[str, Any]],
    timeout_s: float,
    on_poll: Callable[[float, int, int], None] | None = None,
) -> float:
    """Wait until `missing` is empty; the seconds it took. `on_poll(elapsed, met, total)` after
    each round, counting (entry, want) pairs. NotReady after `timeout_s`."""
    started = time.monotonic()
    total = len(entries) * (1 + len(asks))
    while True:
        lacking = missing(cluster, entries, asks)
        elapsed = time.monotonic() - started
        if on_poll is not None:
            on_poll(elapsed, total - len(lacking), total)
        if not lacking:
            return elapsed
        if elapsed > timeout_s:
            raise NotReady(
                f"the network was not ready within {timeout_s:g} s; still missing:\n  "
                + "\n  ".join(lacking)
            )
        time.sleep(POLL_S)
