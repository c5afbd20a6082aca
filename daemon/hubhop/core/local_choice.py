"""Choosing one of this node's own backends for a request.

Rules: only backends that speak the request's protocol and serve its model qualify; among them
the one with the lowest load relative to its slots wins (in-flight / slots), ties going to the
earlier backend in the config so the choice is stable. Slots are those a backend serves with now
when outlier detection says (`slots`: fewer in slow start, 0 out of rotation); one out of
rotation is chosen only when no other qualifies, so its request is refused for the right reason
(503 "ejected", by admission) rather than "not served here". This is the single-node policy; the
network-wide routing policy scores every node's backends with the kernels instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hubhop.core.config import BackendConfig


def pick_backend(
    candidates: Sequence[BackendConfig],
    in_flight: Mapping[str, int],
    slots: Mapping[str, int] | None = None,
) -> BackendConfig | None:
    best: BackendConfig | None = None
    best_load = 0.0
    for backend in candidates:
        serving = backend.slots if slots is None else slots.get(backend.name, backend.slots)
        load = in_flight.get(backend.name, 0) / serving if serving > 0 else float("inf")
        if best is None or load < best_load:
            best, best_load = backend, load
    return best
