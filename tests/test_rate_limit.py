"""Client rate limits and listener limits as an operator writes them and a client meets them:
the token bucket on a fake clock, the buckets across a reload, and the config keys."""

from __future__ import annotations

import math

import pytest

from hubhop.core.client_tokens import token_digest
from hubhop.core.config import ConfigError, NodeConfig, parse_config
from hubhop.core.listener_limits import ListenerLimits
from hubhop.core.rate_limit import (
    ClientBuckets,
    RateLimit,
    TokenBucket,
    retry_after_s,
)
from hubhop.core.routing_hints import HintError, parse_hints
from tests.procs import node_config


def test_a_burst_goes_at_once_then_requests_pass_at_the_rate() -> None:
    bucket = TokenBucket(RateLimit(rate_per_s=2.0, burst=3), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # the next token in half a second
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0
    assert bucket.take(100.5) == pytest.approx(0.5)


def test_a_client_sending_ten_times_its_rate_gets_its_rate_served_not_less() -> None:
    bucket = TokenBucket(RateLimit(rate_per_s=20.0, burst=5), now=0.0)
    # 200 requests a second for 10 s: refused ones take nothing, so 20 a second still pass.
    served = sum(bucket.take(i / 200.0) == 0.0 for i in range(2000))
    assert served == pytest.approx(5 + 20 * 10, abs=2)


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(RateLimit(rate_per_s=10.0, burst=2), now=0.0)
    assert [bucket.take(3600.0) for _ in range(3)][2] == pytest.approx(0.1)


def test_a_clock_read_that_went_backwards_adds_nothing() -> None:
    bucket = TokenBucket(RateLimit(rate_per_s=1.0, burst=1), now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(9.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (1.0, 1), (1.2, 2), (59.5, 60)])
def test_retry_after_is_the_wait_rounded_up_to_whole_seconds(wait: float, header: int) -> None:
    assert retry_after_s(wait) == header


def test_a_reload_keeps_unchanged_clients_buckets_and_applies_a_changed_rate() -> None:
    buckets = ClientBuckets()
    slow = RateLimit(rate_per_s=1.0, burst=1)
    buckets.reconfigure({"steady": slow, "changed": slow, "gone": slow}, now=0.0)
    for name in ("steady", "changed", "gone"):
        assert buckets.take(name, 0.0) == 0.0
        assert buckets.take(name, 0.0) > 0.0  # drained
    buckets.reconfigure(
        {"steady": slow, "changed": RateLimit(rate_per_s=100.0, burst=1), "new": slow}, now=0.5
    )
    assert buckets.take("steady", 0.5) == pytest.approx(0.5)  # still drained: state kept
    assert buckets.take("changed", 0.5) == 0.0  # the new rate holds at once
    assert buckets.take("new", 0.5) == 0.0  # a new client starts with its burst
    assert buckets.take("gone", 0.5) == 0.0  # no longer limited at all


def test_a_lower_burst_on_reload_clamps_what_the_bucket_holds() -> None:
    buckets = ClientBuckets()
    buckets.reconfigure({"a": RateLimit(rate_per_s=1.0, burst=10)}, now=0.0)
    buckets.reconfigure({"a": RateLimit(rate_per_s=1.0, burst=2)}, now=0.0)
    assert [buckets.take("a", 0.0) == 0.0 for _ in range(3)] == [True, True, False]


# --- the config keys ------------------------------------------------------------------------


def config(extra: str, extra_http: str = "") -> NodeConfig:
    return parse_config(node_config("http://127.0.0.1:9", extra_http=extra_http) + extra, "t.toml")


def token(name: str, body: str = "") -> str:
    return f'[[tokens]]\nname = "{name}"\nsha256 = "{token_digest(name)}"\n{body}'


def test_without_any_limit_no_client_is_limited() -> None:
    cfg = config(token("a"))
    assert not cfg.routing.rate_limit.limited and not cfg.tokens[0].routing.rate_limit.limited
    assert cfg.http.limits == ListenerLimits()


def test_the_listeners_rate_is_every_tokens_default_and_a_token_may_set_or_lift_its_own() -> None:
    cfg = config(
        "[routing]\nrate_per_s = 5\nburst = 8\n"
        + token("inherits")
        + token("own", "rate_per_s = 2.5\n")
        + token("lifted", "rate_per_s = inf\n")
        + token("bursty", "burst = 20\n")
    )
    limits = {t.name: t.routing.rate_limit for t in cfg.tokens}
    assert cfg.routing.rate_limit == RateLimit(5.0, 8)
    assert limits["inherits"] == RateLimit(5.0, 8)
    assert limits["own"] == RateLimit(2.5, 3)  # its own rate, one second's worth of burst
    assert not limits["lifted"].limited
    assert limits["bursty"] == RateLimit(5.0, 20)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[routing]\nrate_per_s = 0\n", "routing.rate_per_s"),
        ("[routing]\nrate_per_s = nan\n", "routing.rate_per_s"),
        ("[routing]\nburst = 4\n", "routing.burst"),  # a burst of no rate
        ("[routing]\nrate_per_s = 1\nburst = 0\n", "routing.burst"),
        (token("a", 'rate_per_s = "fast"\n'), "tokens[0].rate_per_s"),
        (token("a", "allowed_models = []\n"), "tokens[0].allowed_models"),
        (token("a", 'allowed_models = ["bad name"]\n'), "tokens[0].allowed_models"),
    ],
)
def test_a_faulty_limit_is_a_config_error_naming_its_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(text)
    assert f"t.toml: {key}:" in str(caught.value)


def test_listener_limits_are_read_from_http_and_checked() -> None:
    extra_http = (
        "max_request_line_bytes = 4096\nmax_header_field_bytes = 2048\nmax_headers = 40\n"
        "max_client_connections = 100\nkeepalive_timeout_s = 5\n"
    )
    assert config("", extra_http).http.limits == ListenerLimits(4096, 2048, 40, 100, 5.0)
    for bad in ("max_header_field_bytes = 100\n", "max_client_connections = 0\n"):
        with pytest.raises(ConfigError, match="out of range"):
            config("", bad)


def test_a_token_asking_for_a_model_it_may_not_use_is_refused_403() -> None:
    cfg = config(token("chat", 'allowed_models = ["demo-llm"]\n'))
    routing = cfg.tokens[0].routing
    assert parse_hints(lambda _: None, "demo-llm", routing).model == "demo-llm"
    with pytest.raises(HintError) as caught:
        parse_hints(lambda _: None, "ct-triage", routing)
    assert caught.value.status == 403 and "demo-llm" in str(caught.value)
    assert parse_hints(lambda _: None, "ct-triage", cfg.routing).budget == math.inf
