"""The call floor: what calling a function with decide's 18 arguments costs when it does nothing.

Two empty functions take exactly the arguments of `decide`: a plain Python one (the cost of a
Python call with these arguments) and a numba one (that plus numba's dispatch: it checks the type
of every argument, and unboxes each array, before any compiled code runs). Set beside the
kernel's own figure at small sizes, they show how much of a decision is the call itself.
"""

from __future__ import annotations

from typing import Any

import numba


def python_noop(*args: Any) -> tuple[int, int]:
    return -1, -1


@numba.njit(cache=False)  # type: ignore[misc]
def numba_noop(
    row_node: Any,
    row_alive: Any,
    row_chip: Any,
    row_models: Any,
    row_num: Any,
    node_latency_ms: Any,
    model_id: Any,
    chip_id: Any,
    lane: Any,
    tier_ms: Any,
    budget: Any,
    price_weight_ms: Any,
    green_weight_ms: Any,
    margin_frac: Any,
    rng_state: Any,
    out_reasons: Any,
    out_expected_ms: Any,
    out_cost: Any,
) -> tuple[int, int]:
    return -1, -1
