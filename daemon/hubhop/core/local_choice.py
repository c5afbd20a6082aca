"""Choosing one of this node's own backends for a request.

Rules: only backends that speak the request's protocol and serve its model qualify; among them
the one with the lowest load relative to its slots wins (in-flight / slots), ties going to the
earlier backend in the config so the choice is stable. This is the single-node policy; the
network-wide routing policy scores every node's backends with the kernels instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hubhop.core.config import BackendConfig


def pick_backend(
    candidates: Sequence[BackendConfig], in_flight: Mapping[str, int]
) -> BackendConfig | None:
    best: BackendConfig | None = None
    best_load = 0.0
    for backend in candidates:
        load = in_flight.get(backend.name, 0) / backend.slots
        if best is None or load < best_load:
            best, best_load = backend, load
    return best
