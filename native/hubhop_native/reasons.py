"""Why a candidate row was rejected: one bit per reason, so a row can carry several at once.

The bits are plain Python ints: numba reads module globals as compile-time constants, so the
kernels use them directly, and the bridge uses the same names to explain a decision.
The lanes (how a request queues) and the "any chip" marker live here too, for the same reason.
The bit values are part of the kernel contract (spec/kernels.md): append new reasons, never
renumber, since decisions printed or logged by one version are read by another.
"""

from __future__ import annotations

from typing import Final

DEAD: Final = 1 << 0  # node not alive
NO_MODEL: Final = 1 << 1  # backend does not serve the requested model
CHIP_MISMATCH: Final = 1 << 2  # a chip was required and this backend's chip differs
OVER_TIER: Final = 1 << 3  # one-way path latency above the request's tier bound
OVER_BUDGET: Final = 1 << 4  # price above the request's budget
NO_HEADROOM: Final = 1 << 5  # non-emergency request would have to use the emergency reserve
UNREACHABLE: Final = 1 << 6  # no path and no estimate (latency inf or nan)

# Lanes, in priority order: a lower number is served first (it queues behind fewer lanes).
LANE_EMERGENCY: Final = 0
LANE_STANDARD: Final = 1
LANE_BATCH: Final = 2

NO_CHIP: Final = -1  # request chip_id meaning "any chip"; chip ids from the bridge are >= 0

REASON_NAMES: Final[dict[int, str]] = {
    DEAD: "dead",
    NO_MODEL: "model not served",
    CHIP_MISMATCH: "chip mismatch",
    OVER_TIER: "over tier",
    OVER_BUDGET: "over budget",
    NO_HEADROOM: "no headroom",
    UNREACHABLE: "unreachable",
}

ALL_REASONS: Final = sum(REASON_NAMES)  # every known bit; anything else is reported as unknown


def describe(bits: int) -> list[str]:
    """The names of the reasons set in `bits`, lowest bit first; [] for a feasible row.

    Bits this version does not know are named "unknown reason 0x..", never dropped silently.
    """
    bits = int(bits)
    names = [name for bit, name in sorted(REASON_NAMES.items()) if bits & bit]
    unknown = bits & ~ALL_REASONS
    if unknown:
        names.append(f"unknown reason {unknown:#x}")
    return names
