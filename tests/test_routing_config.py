"""The [routing] section: request defaults and the caps on what a listener's clients may ask for,
as an operator writes them and as each mistake is reported."""

from __future__ import annotations

import pytest

from hubhop.core.config import ConfigError, parse_config
from hubhop.core.routing_config import RoutingConfig

BASE = '[node]\nname = "wuhan-dc-1"\nrole = "city"\n[http]\nlisten = "127.0.40.1:0"\n'


def routing(text: str) -> RoutingConfig:
    return parse_config(BASE + "[routing]\n" + text, "city.toml").routing


def faults(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "[routing]\n" + text, "city.toml")
    return caught.value.faults


def test_without_the_section_every_default_applies() -> None:
    config = parse_config(BASE, "city.toml").routing
    assert config == RoutingConfig()
    assert (config.lane, config.tier, config.spill) == ("standard", "any", "next")
    assert config.allowed_lanes == ("emergency", "standard", "batch")
    assert config.allowed_tiers == ("city", "province", "region", "national", "any")
    assert config.max_tries == 3
    assert (config.price_weight_ms, config.batch_green_weight_ms) == (0.0, 20.0)
    assert config.batch_price_weight_ms == 4000.0
    assert config.hedge_delay_ms is None


def test_an_empty_section_is_all_defaults() -> None:
    assert routing("") == RoutingConfig()


def test_every_key_parses_to_the_value_written() -> None:
    config = routing(
        'lane = "batch"\ntier = "province"\nspill = "none"\n'
        'allowed_lanes = ["batch", "standard"]\nallowed_tiers = ["any", "province", "national"]\n'
        "max_tries = 10\nprice_weight_ms = 2\nbatch_green_weight_ms = 0\nhedge_delay_ms = 1.5\n"
        "batch_price_weight_ms = 0\n"
    )
    assert config == RoutingConfig(
        lane="batch",
        tier="province",
        spill="none",
        # Kept in the canonical order whatever order they were written in.
        allowed_lanes=("standard", "batch"),
        allowed_tiers=("province", "national", "any"),
        max_tries=10,
        price_weight_ms=2.0,
        batch_green_weight_ms=0.0,
        batch_price_weight_ms=0.0,
        hedge_delay_ms=1.5,
    )
    assert isinstance(config.price_weight_ms, float)  # an integer is accepted as a float


def test_a_single_string_is_a_one_item_allowed_list() -> None:
    config = routing('allowed_lanes = "standard"\nallowed_tiers = ["any", "any"]\n')
    assert (config.allowed_lanes, config.allowed_tiers) == (("standard",), ("any",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('lane = "urgent"\n', "routing.lane: 'urgent' is not one of emergency, standard, batch"),
        ('tier = "galaxy"\n', "routing.tier: 'galaxy' is not one of city, province"),
        ('spill = "wider"\n', "routing.spill: 'wider' is not one of next, any, none"),
        ("lane = 1\n", "routing.lane: must be a string, got integer"),
        ('allowed_lanes = ["fast"]\n', "routing.allowed_lanes: 'fast' is not one of emergency"),
        ("allowed_tiers = []\n", "routing.allowed_tiers: must be a string or a non-empty list"),
        (
            'allowed_lanes = ["standard", "batch"]\nlane = "emergency"\n',
            "routing.lane: 'emergency' is not among allowed_lanes (standard, batch)",
        ),
        (
            'allowed_lanes = ["emergency"]\n',
            "routing.lane: the default 'standard' is not among allowed_lanes (emergency)",
        ),
        (
            'allowed_tiers = ["city", "province"]\n',
            "routing.tier: the default 'any' is not among allowed_tiers (city, province)",
        ),
        ("max_tries = 0\n", "routing.max_tries: 0 is out of range [1, 10]"),
        ("max_tries = 11\n", "routing.max_tries: 11 is out of range [1, 10]"),
        ("max_tries = 2.5\n", "routing.max_tries: must be an integer, got float"),
        ("price_weight_ms = -1\n", "routing.price_weight_ms: -1 is out of range"),
        ("price_weight_ms = inf\n", "routing.price_weight_ms: inf must be a finite number"),
        ("price_weight_ms = nan\n", "routing.price_weight_ms: nan is out of range"),
        ("batch_green_weight_ms = true\n", "routing.batch_green_weight_ms: must be a number"),
        ("batch_green_weight_ms = inf\n", "routing.batch_green_weight_ms: inf must be a finite"),
        ("hedge_delay_ms = 0\n", "routing.hedge_delay_ms: must be above 0 ms"),
        ("hedge_delay_ms = -2\n", "routing.hedge_delay_ms: -2 is out of range"),
        ("hedge_delay_ms = inf\n", "routing.hedge_delay_ms: inf must be a finite number"),
        ('hedge_delay_ms = "5"\n', "routing.hedge_delay_ms: must be a number, got string"),
        ("max_retries = 3\n", "routing.max_retries: unknown key"),
    ],
)
def test_each_fault_names_the_key(text: str, expected: str) -> None:
    found = faults(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"city.toml: {expected}"), found


def test_a_section_of_the_wrong_shape_is_a_fault() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('routing = "fast"\n' + BASE, "city.toml")
    assert caught.value.faults == ["city.toml: routing: must be a table, got string"]


def test_all_routing_faults_are_reported_at_once() -> None:
    found = faults('lane = "urgent"\nmax_tries = 0\nspill = ""\nhedge_delay_ms = 0\n')
    assert [f.split(":")[1].strip() for f in found] == [
        "routing.lane",
        "routing.spill",
        "routing.max_tries",
        "routing.hedge_delay_ms",
    ]
