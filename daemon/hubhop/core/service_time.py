"""Service-time distributions for the demo backend: parse a one-word spec, sample it.

Why these forms: the time an inference server spends on one request is right-skewed. Most
requests take about the typical time, a few take several times longer (long prompts, cache
misses, batch interference), and none take less than zero. A lognormal with a median and a
spread (`lognormal:40,0.3`) models that well and is the default. `const` makes tests exact,
`uniform` gives bounded jitter, and `exp` is the memoryless M/M/k textbook case that queueing
formulas assume, handy for checking a queue estimate against theory.

Spec forms, all in milliseconds:
    40 or const:40          always 40 ms
    uniform:LO,HI           uniform between LO and HI
    exp:MEAN                exponential with that mean
    lognormal:MEDIAN,SIGMA  median in ms; SIGMA is the standard deviation of the underlying
                            normal (0.3 gives p99 about twice the median)

Rules: pure and deterministic. Randomness comes in as a `random.Random`; this module keeps no
random state of its own and reads no clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, cast

Kind = Literal["const", "uniform", "exp", "lognormal"]

# How many numbers each kind takes after the colon, and what they are called in messages.
_ARGUMENT_NAMES: dict[str, tuple[str, ...]] = {
    "const": ("MS",),
    "uniform": ("LO", "HI"),
    "exp": ("MEAN",),
    "lognormal": ("MEDIAN", "SIGMA"),
}


def _format_number(value: float) -> str:
    """Shortest text that parses back to exactly `value` ("40", not "40.0")."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _shape_fault(kind: str, count: int) -> str | None:
    """What is wrong with this kind, or with this many numbers for it, or None."""
    names = _ARGUMENT_NAMES.get(kind)
    if names is None:
        return f"unknown kind {kind!r} (expected one of {', '.join(_ARGUMENT_NAMES)})"
    if count != len(names):
        return f"{kind} takes {len(names)} number(s) ({','.join(names)}), got {count}"
    return None


def _fault_in(kind: str, params: tuple[float, ...]) -> str | None:
    """What is wrong with these parameters for this kind, or None."""
    shape_fault = _shape_fault(kind, len(params))
    if shape_fault is not None:
        return shape_fault
    names = _ARGUMENT_NAMES[kind]
    for name, value in zip(names, params, strict=True):
        if not math.isfinite(value):
            return f"{name} must be a finite number, got {value!r}"
        if value < 0:
            return f"{name} must not be negative, got {_format_number(value)}"
    if kind == "uniform" and params[0] > params[1]:
        lo, hi = (_format_number(value) for value in params)
        return f"LO must not be greater than HI ({lo} > {hi})"
    if kind in ("exp", "lognormal") and params[0] == 0:
        return f"{names[0]} must be greater than zero (use const:0 for no delay)"
    return None


@dataclass(frozen=True)
class ServiceTimeDistribution:
    """One service-time distribution; `params` are in the order of the spec form."""

    kind: Kind
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        fault = _fault_in(self.kind, self.params)
        if fault is not None:
            raise ValueError(f"service time {str(self)!r}: {fault}")

    @classmethod
    def parse(cls, spec: str) -> ServiceTimeDistribution:
        """Parse `40`, `const:40`, `uniform:10,50`, `exp:40` or `lognormal:40,0.3`."""
        if not spec.strip():
            raise ValueError(f"service time {spec!r}: empty (expected e.g. lognormal:40,0.3)")
        kind_text, colon, arguments_text = spec.strip().partition(":")
        if not colon:
            kind_text, arguments_text = "const", spec.strip()
        kind_text = kind_text.strip().lower()
        pieces = [piece.strip() for piece in arguments_text.split(",")] if arguments_text else []
        shape_fault = _shape_fault(kind_text, len(pieces))
        if shape_fault is not None:
            raise ValueError(f"service time {spec!r}: {shape_fault}")
        params: list[float] = []
        for name, piece in zip(_ARGUMENT_NAMES[kind_text], pieces, strict=True):
            try:
                params.append(float(piece))
            except ValueError:
                raise ValueError(
                    f"service time {spec!r}: {name} is not a number: {piece!r}"
                ) from None
        fault = _fault_in(kind_text, tuple(params))
        if fault is not None:
            raise ValueError(f"service time {spec!r}: {fault}")
        return cls(cast(Kind, kind_text), tuple(params))

    def sample_ms(self, rng: random.Random) -> float:
        """One service time in milliseconds, drawn with `rng`."""
        if self.kind == "const":
            return self.params[0]
        if self.kind == "uniform":
            return rng.uniform(self.params[0], self.params[1])
        if self.kind == "exp":
            return rng.expovariate(1.0 / self.params[0])
        median, sigma = self.params
        return median * math.exp(sigma * rng.gauss(0.0, 1.0))

    @property
    def mean_ms(self) -> float:
        """The distribution's expected value in milliseconds."""
        if self.kind == "const":
            return self.params[0]
        if self.kind == "uniform":
            return (self.params[0] + self.params[1]) / 2.0
        if self.kind == "exp":
            return self.params[0]
        median, sigma = self.params
        return median * math.exp(sigma * sigma / 2.0)

    @property
    def median_ms(self) -> float:
        """The distribution's median in milliseconds (a typical request, where the mean is
        pulled up by the long tail)."""
        if self.kind == "lognormal" or self.kind == "const":
            return self.params[0]
        if self.kind == "exp":
            return self.params[0] * math.log(2.0)
        return self.mean_ms  # uniform: symmetric, so the median is the mean

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(_format_number(value) for value in self.params)}"
