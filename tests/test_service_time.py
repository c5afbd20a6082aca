"""Service-time specs: parsing, faults, sampling, and the canonical text round trip."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubhop.core.service_time import ServiceTimeDistribution


@pytest.mark.parametrize(
    ("spec", "kind", "params", "canonical"),
    [
        ("40", "const", (40.0,), "const:40"),
        ("const:40", "const", (40.0,), "const:40"),
        (" const : 2.5 ", "const", (2.5,), "const:2.5"),
        ("uniform:10,50", "uniform", (10.0, 50.0), "uniform:10,50"),
        ("uniform:7,7", "uniform", (7.0, 7.0), "uniform:7,7"),
        ("exp:40", "exp", (40.0,), "exp:40"),
        ("lognormal:40,0.3", "lognormal", (40.0, 0.3), "lognormal:40,0.3"),
        ("LogNormal:40, 0", "lognormal", (40.0, 0.0), "lognormal:40,0"),
        ("0", "const", (0.0,), "const:0"),
    ],
)
def test_parse_accepts_each_form(
    spec: str, kind: str, params: tuple[float, ...], canonical: str
) -> None:
    distribution = ServiceTimeDistribution.parse(spec)
    assert distribution.kind == kind
    assert distribution.params == params
    assert str(distribution) == canonical


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("", "empty"),
        ("gamma:1,2", "unknown kind 'gamma'"),
        ("uniform:10", "uniform takes 2 number(s)"),
        ("lognormal:40,0.3,1", "lognormal takes 2 number(s)"),
        ("const:", "const takes 1 number(s)"),
        ("const:-1", "MS must not be negative"),
        ("uniform:-1,5", "LO must not be negative"),
        ("uniform:50,10", "LO must not be greater than HI"),
        ("lognormal:40,-0.1", "SIGMA must not be negative"),
        ("exp:0", "MEAN must be greater than zero"),
        ("lognormal:0,0.3", "MEDIAN must be greater than zero"),
        ("exp:fast", "MEAN is not a number: 'fast'"),
        ("forty", "MS is not a number: 'forty'"),
        ("const:inf", "MS must be a finite number"),
        ("const:nan", "MS must be a finite number"),
    ],
)
def test_parse_names_the_spec_and_the_fault(spec: str, fault: str) -> None:
    with pytest.raises(ValueError) as raised:
        ServiceTimeDistribution.parse(spec)
    message = str(raised.value)
    assert message.startswith(f"service time {spec!r}: ")
    assert fault in message
    assert "\n" not in message


def test_constructing_directly_is_checked_too() -> None:
    with pytest.raises(ValueError, match="LO must not be greater than HI"):
        ServiceTimeDistribution("uniform", (5.0, 1.0))


def test_const_samples_exactly() -> None:
    distribution = ServiceTimeDistribution.parse("const:12.5")
    rng = random.Random(1)
    assert {distribution.sample_ms(rng) for _ in range(100)} == {12.5}
    assert distribution.mean_ms == 12.5


def test_uniform_samples_stay_in_range() -> None:
    distribution = ServiceTimeDistribution.parse("uniform:10,20")
    rng = random.Random(2)
    samples = [distribution.sample_ms(rng) for _ in range(2000)]
    assert all(10.0 <= sample <= 20.0 for sample in samples)
    assert statistics.fmean(samples) == pytest.approx(distribution.mean_ms, rel=0.03)


@pytest.mark.parametrize("spec", ["exp:40", "lognormal:40,0.3", "lognormal:10,0.8"])
def test_sample_mean_is_close_to_mean_ms(spec: str) -> None:
    distribution = ServiceTimeDistribution.parse(spec)
    rng = random.Random(3)
    samples = [distribution.sample_ms(rng) for _ in range(40_000)]
    assert all(sample >= 0 for sample in samples)
    assert statistics.fmean(samples) == pytest.approx(distribution.mean_ms, rel=0.03)


def test_lognormal_median_is_the_first_number() -> None:
    distribution = ServiceTimeDistribution.parse("lognormal:40,0.3")
    rng = random.Random(4)
    samples = [distribution.sample_ms(rng) for _ in range(20_000)]
    assert statistics.median(samples) == pytest.approx(40.0, rel=0.03)
    assert distribution.mean_ms == pytest.approx(40.0 * math.exp(0.045))


def test_same_seed_gives_same_samples() -> None:
    distribution = ServiceTimeDistribution.parse("lognormal:40,0.3")
    first = [distribution.sample_ms(random.Random(9)) for _ in range(3)]
    again = [distribution.sample_ms(random.Random(9)) for _ in range(3)]
    assert first == again


_milliseconds = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
_positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def _valid_distributions(draw: st.DrawFn) -> ServiceTimeDistribution:
    kind = draw(st.sampled_from(["const", "uniform", "exp", "lognormal"]))
    if kind == "const":
        params: tuple[float, ...] = (draw(_milliseconds),)
    elif kind == "uniform":
        params = tuple(sorted((draw(_milliseconds), draw(_milliseconds))))
    elif kind == "exp":
        params = (draw(_positive),)
    else:
        params = (draw(_positive), draw(st.floats(min_value=0.0, max_value=5.0)))
    return ServiceTimeDistribution(kind, params)  # type: ignore[arg-type]


@given(_valid_distributions())
def test_canonical_text_parses_back_to_the_same_distribution(
    distribution: ServiceTimeDistribution,
) -> None:
    assert ServiceTimeDistribution.parse(str(distribution)) == distribution
