"""Routing hints: what an app's headers (or the route endpoint's JSON) turn into, and what the app
is told when a hint is wrong or not allowed."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from hubhop.core.routing_config import RoutingConfig
from hubhop.core.routing_hints import (
    BUDGET_HEADER,
    CHIP_HEADER,
    DEADLINE_HEADER,
    EXPLAIN_HEADER,
    IDEMPOTENT_HEADER,
    LANE_HEADER,
    MAX_LATENCY_HEADER,
    SPILL_HEADER,
    TIER_HEADER,
    HintError,
    RouteAsk,
    parse_hints,
    route_ask_from_json,
)

MODEL = "qwen2.5-7b-instruct"
DEFAULTS = RoutingConfig()


def ask(headers: dict[str, str], config: RoutingConfig = DEFAULTS) -> RouteAsk:
    return parse_hints(headers.get, MODEL, config)


def refused(headers: dict[str, str], config: RoutingConfig = DEFAULTS) -> HintError:
    with pytest.raises(HintError) as caught:
        ask(headers, config)
    return caught.value


def test_the_header_names() -> None:
    assert [
        TIER_HEADER,
        MAX_LATENCY_HEADER,
        LANE_HEADER,
        CHIP_HEADER,
        BUDGET_HEADER,
        DEADLINE_HEADER,
        EXPLAIN_HEADER,
        SPILL_HEADER,
        IDEMPOTENT_HEADER,
    ] == [
        "x-hubhop-tier",
        "x-hubhop-max-latency-ms",
        "x-hubhop-lane",
        "x-hubhop-chip",
        "x-hubhop-budget",
        "x-hubhop-deadline-ms",
        "x-hubhop-explain",
        "x-hubhop-spill",
        "x-hubhop-idempotent",
    ]


def test_no_hints_take_the_config_defaults() -> None:
    assert ask({}) == RouteAsk(
        model=MODEL,
        lane="standard",
        tier="any",
        max_one_way_ms=math.inf,
        chip=None,
        budget=math.inf,
        deadline_ms=None,
        spill="next",
        explain=False,
        idempotent=True,
        price_weight_ms=0.0,
        green_weight_ms=0.0,
    )


def test_defaults_come_from_the_listener_config() -> None:
    config = RoutingConfig(lane="batch", tier="national", spill="none", price_weight_ms=3.0)
    got = ask({}, config)
    assert (got.lane, got.tier, got.max_one_way_ms, got.spill) == (
        "batch",
        "national",
        10.0,
        "none",
    )
    assert (got.price_weight_ms, got.green_weight_ms) == (3.0 + config.batch_price_weight_ms, 20.0)


def test_every_hint_is_read() -> None:
    got = ask(
        {
            TIER_HEADER: "province",
            LANE_HEADER: "emergency",
            CHIP_HEADER: "ascend-910b",
            BUDGET_HEADER: "2.5",
            DEADLINE_HEADER: "10000",
            EXPLAIN_HEADER: "yes",
            SPILL_HEADER: "none",
            IDEMPOTENT_HEADER: "false",
        }
    )
    assert got == RouteAsk(
        model=MODEL,
        lane="emergency",
        tier="province",
        max_one_way_ms=5.0,
        chip="ascend-910b",
        budget=2.5,
        deadline_ms=10000.0,
        spill="none",
        explain=True,
        idempotent=False,
    )


@pytest.mark.parametrize(
    ("tier", "bound"),
    [("city", 1.0), ("province", 5.0), ("region", 7.0), ("national", 10.0), ("any", math.inf)],
)
def test_a_named_tier_gives_its_one_way_bound(tier: str, bound: float) -> None:
    got = ask({TIER_HEADER: tier})
    assert (got.tier, got.max_one_way_ms) == (tier, bound)


@pytest.mark.parametrize(
    ("given", "tier", "bound"),
    [
        ("0.4", "city", 0.4),
        ("1", "city", 1.0),  # a bound is inclusive
        ("3", "province", 3.0),
        ("5.0", "province", 5.0),
        ("6.5", "region", 6.5),
        ("8", "national", 8.0),
        ("25", "any", 25.0),
    ],
)
def test_a_max_latency_is_the_bound_and_reports_the_tightest_tier_holding_it(
    given: str, tier: str, bound: float
) -> None:
    got = ask({MAX_LATENCY_HEADER: given})
    assert (got.tier, got.max_one_way_ms) == (tier, bound)


def test_the_green_and_batch_price_weights_apply_to_the_batch_lane_only() -> None:
    config = RoutingConfig(
        batch_green_weight_ms=30.0, price_weight_ms=1.0, batch_price_weight_ms=500.0
    )
    assert ask({LANE_HEADER: "batch"}, config).green_weight_ms == 30.0
    assert ask({LANE_HEADER: "batch"}, config).price_weight_ms == 501.0
    assert ask({LANE_HEADER: "standard"}, config).green_weight_ms == 0.0
    assert ask({LANE_HEADER: "emergency"}, config).price_weight_ms == 1.0


def test_values_are_stripped_and_flags_ignore_case() -> None:
    got = ask({TIER_HEADER: "  city ", EXPLAIN_HEADER: "TRUE", IDEMPOTENT_HEADER: " No"})
    assert (got.tier, got.explain, got.idempotent) == ("city", True, False)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("0", False), ("true", True), ("no", False)]
)
def test_each_flag_spelling(value: str, expected: bool) -> None:
    assert ask({EXPLAIN_HEADER: value}).explain is expected
    assert ask({IDEMPOTENT_HEADER: value}).idempotent is expected


def test_a_budget_of_zero_is_a_bound_not_a_fault() -> None:
    assert ask({BUDGET_HEADER: "0"}).budget == 0.0


def test_a_deadline_of_a_day_is_the_longest() -> None:
    assert ask({DEADLINE_HEADER: "86400000"}).deadline_ms == 86_400_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {TIER_HEADER: "galaxy"},
            "x-hubhop-tier: 'galaxy' is not a tier (city, province, region, national, any)",
        ),
        ({TIER_HEADER: "City"}, "x-hubhop-tier: 'City' is not a tier"),
        (
            {LANE_HEADER: "urgent"},
            "x-hubhop-lane: 'urgent' is not a lane (emergency, standard, batch)",
        ),
        (
            {SPILL_HEADER: "wider"},
            "x-hubhop-spill: 'wider' is not a spill policy (next, any, none)",
        ),
        (
            {TIER_HEADER: "city", MAX_LATENCY_HEADER: "1"},
            "x-hubhop-max-latency-ms: give either x-hubhop-tier or x-hubhop-max-latency-ms",
        ),
        ({MAX_LATENCY_HEADER: "nan"}, "x-hubhop-max-latency-ms: 'nan' is not a decimal number"),
        ({MAX_LATENCY_HEADER: "inf"}, "x-hubhop-max-latency-ms: 'inf' is not a decimal number"),
        ({MAX_LATENCY_HEADER: "1e999"}, "x-hubhop-max-latency-ms: '1e999' is not a decimal"),
        ({MAX_LATENCY_HEADER: "0x10"}, "x-hubhop-max-latency-ms: '0x10' is not a decimal"),
        ({MAX_LATENCY_HEADER: ""}, "x-hubhop-max-latency-ms: must not be empty"),
        ({MAX_LATENCY_HEADER: "   "}, "x-hubhop-max-latency-ms: must not be empty"),
        ({MAX_LATENCY_HEADER: "-3"}, "x-hubhop-max-latency-ms: '-3' must be a one-way latency"),
        ({MAX_LATENCY_HEADER: "0"}, "x-hubhop-max-latency-ms: '0' must be a one-way latency"),
        ({MAX_LATENCY_HEADER: "5 ms"}, "x-hubhop-max-latency-ms: '5 ms' is not a decimal"),
        ({BUDGET_HEADER: "-3"}, "x-hubhop-budget: '-3' must be a price of 0 or more"),
        ({BUDGET_HEADER: "cheap"}, "x-hubhop-budget: 'cheap' is not a decimal number"),
        ({BUDGET_HEADER: "inf"}, "x-hubhop-budget: 'inf' is not a decimal number"),
        ({DEADLINE_HEADER: "0"}, "x-hubhop-deadline-ms: '0' must be above 0 ms"),
        ({DEADLINE_HEADER: "86400001"}, "x-hubhop-deadline-ms: '86400001' must be above 0 ms"),
        ({DEADLINE_HEADER: "1e3"}, "x-hubhop-deadline-ms: '1e3' is not a decimal number"),
        ({CHIP_HEADER: "NVIDIA H100"}, "x-hubhop-chip: 'NVIDIA H100' is not a chip type"),
        ({CHIP_HEADER: ""}, "x-hubhop-chip: must not be empty"),
        (
            {EXPLAIN_HEADER: "please"},
            "x-hubhop-explain: 'please' is not one of 1, true, yes, 0, false, no",
        ),
        ({IDEMPOTENT_HEADER: "maybe"}, "x-hubhop-idempotent: 'maybe' is not one of 1, true"),
        ({LANE_HEADER: "x" * 129}, "x-hubhop-lane: is longer than 128 characters"),
        ({BUDGET_HEADER: "1" * 129}, "x-hubhop-budget: is longer than 128 characters"),
    ],
)
def test_each_bad_hint_is_a_400_naming_its_header_and_value(
    headers: dict[str, str], expected: str
) -> None:
    error = refused(headers)
    assert error.status == 400
    assert str(error).startswith(expected), str(error)
    assert error.header == expected.split(":")[0]


def test_a_long_value_is_not_echoed() -> None:
    assert "xxxx" not in str(refused({TIER_HEADER: "x" * 500}))


LOCKED = RoutingConfig(allowed_lanes=("standard", "batch"), allowed_tiers=("national", "any"))


def test_a_lane_the_listener_does_not_allow_is_a_403_naming_the_allowed_ones() -> None:
    error = refused({LANE_HEADER: "emergency"}, LOCKED)
    assert error.status == 403
    assert str(error) == (
        "x-hubhop-lane: 'emergency' is not allowed on this listener "
        "(allowed lanes: standard, batch)"
    )


def test_a_tier_the_listener_does_not_allow_is_a_403() -> None:
    error = refused({TIER_HEADER: "city"}, LOCKED)
    assert (error.status, error.header) == (403, TIER_HEADER)
    assert "(allowed tiers: national, any)" in str(error)


def test_a_max_latency_is_allowed_when_its_tier_is() -> None:
    assert ask({MAX_LATENCY_HEADER: "9"}, LOCKED).tier == "national"
    error = refused({MAX_LATENCY_HEADER: "3"}, LOCKED)
    assert (error.status, error.header) == (403, MAX_LATENCY_HEADER)
    assert str(error) == (
        "x-hubhop-max-latency-ms: 3 ms is in tier 'province', which is not allowed on this "
        "listener (allowed tiers: national, any)"
    )


def test_an_unknown_lane_is_a_400_even_on_a_locked_listener() -> None:
    assert refused({LANE_HEADER: "vip"}, LOCKED).status == 400


# The route endpoint's JSON body: the same fields by name, the same rules.


def from_json(body: str, config: RoutingConfig = DEFAULTS) -> RouteAsk:
    document: dict[str, Any] = json.loads(body)
    return route_ask_from_json(document, config)


def json_refused(body: str, config: RoutingConfig = DEFAULTS) -> HintError:
    with pytest.raises(HintError) as caught:
        from_json(body, config)
    return caught.value


def test_a_json_ask_is_the_ask_of_the_same_hints_as_headers() -> None:
    got = from_json(
        '{"model": "ct-lung-nodule", "lane": "batch", "max_latency_ms": 6, "chip": "cpu",'
        ' "budget": 1, "deadline_ms": 2.5, "spill": "any", "explain": true}'
    )
    headers = {
        LANE_HEADER: "batch",
        MAX_LATENCY_HEADER: "6",
        CHIP_HEADER: "cpu",
        BUDGET_HEADER: "1",
        DEADLINE_HEADER: "2.5",
        SPILL_HEADER: "any",
        EXPLAIN_HEADER: "true",
    }
    assert got == parse_hints(headers.get, "ct-lung-nodule", DEFAULTS)
    assert (got.model, got.tier, got.max_one_way_ms, got.green_weight_ms) == (
        "ct-lung-nodule",
        "region",
        6.0,
        20.0,
    )
    assert (got.chip, got.budget, got.deadline_ms, got.spill, got.explain) == (
        "cpu",
        1.0,
        2.5,
        "any",
        True,
    )


def test_a_json_ask_with_only_a_model_takes_the_defaults() -> None:
    assert from_json('{"model": "m"}') == RouteAsk(
        model="m", lane="standard", tier="any", max_one_way_ms=math.inf
    )


def test_json_null_is_absent_and_text_numbers_follow_the_header_rules() -> None:
    got = from_json('{"model": "m", "tier": null, "max_latency_ms": "4", "explain": "yes"}')
    assert (got.tier, got.max_one_way_ms, got.explain) == ("province", 4.0, True)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{}", "model: is required"),
        ('{"model": 5}', "model: must be a string, got number"),
        ('{"model": "a b"}', "model: 'a b' is not a model name"),
        ('{"model": "m", "teir": "city"}', "teir: unknown field"),
        ('{"model": "m", "tier": "galaxy"}', "tier: 'galaxy' is not a tier (city, province"),
        ('{"model": "m", "tier": 5}', "tier: must be a string, got number"),
        ('{"model": "m", "lane": "urgent"}', "lane: 'urgent' is not a lane"),
        ('{"model": "m", "spill": "x"}', "spill: 'x' is not a spill policy"),
        (
            '{"model": "m", "tier": "city", "max_latency_ms": 1}',
            "max_latency_ms: give either tier or max_latency_ms, not both",
        ),
        ('{"model": "m", "max_latency_ms": NaN}', "max_latency_ms: nan is not a finite number"),
        ('{"model": "m", "max_latency_ms": 1e999}', "max_latency_ms: inf is not a finite number"),
        ('{"model": "m", "max_latency_ms": -3}', "max_latency_ms: -3 must be a one-way latency"),
        ('{"model": "m", "max_latency_ms": true}', "max_latency_ms: must be a number, got boolean"),
        ('{"model": "m", "budget": -0.5}', "budget: -0.5 must be a price of 0 or more"),
        ('{"model": "m", "budget": [1]}', "budget: must be a number, got array"),
        ('{"model": "m", "deadline_ms": 0}', "deadline_ms: 0 must be above 0 ms"),
        ('{"model": "m", "chip": "H100"}', "chip: 'H100' is not a chip type"),
        ('{"model": "m", "explain": 1}', "explain: must be a boolean, got number"),
        ('{"model": "m", "explain": "sure"}', "explain: 'sure' is not one of 1, true"),
        ('{"model": "m", "idempotent": true}', "idempotent: unknown field"),
    ],
)
def test_each_bad_json_field_is_a_400_naming_the_field(body: str, expected: str) -> None:
    error = json_refused(body)
    assert error.status == 400
    assert str(error).startswith(expected), str(error)
    assert error.header == expected.split(":")[0]


def test_a_json_lane_the_listener_does_not_allow_is_a_403() -> None:
    error = json_refused('{"model": "m", "lane": "emergency"}', LOCKED)
    assert (error.status, error.header) == (403, "lane")
    assert str(error).endswith("(allowed lanes: standard, batch)")


def test_a_json_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(HintError) as caught:
        route_ask_from_json([], DEFAULTS)  # type: ignore[arg-type]
    assert str(caught.value) == "body: must be a JSON object"
