"""Routing hints: the request headers (or the JSON fields of `POST /hubhop/v1/route`) that say
how far, how urgent, on which chip and for how much a request may be served, turned into one ask.

Rules:
- A hint that is absent takes the listener's default from `[routing]` (RoutingConfig). A hint
  that is present but wrong is refused (HintError, 400), never ignored: a typo in a tier must not
  silently route a surgery video to another province.
- Values are stripped of surrounding whitespace; an empty value, or one longer than 128
  characters, is refused. Numbers are plain decimals of milliseconds (no "nan", "inf", exponent
  or hex), finite and within their range.
- A tier and an explicit max latency exclude each other. A max latency maps to the tightest named
  tier that holds it, for reporting; the bound itself is what candidates are held to. Tier bounds
  are one-way latency (hubhop.core.tiers).
- A lane or tier the listener does not allow is refused with 403, naming what is allowed (a max
  latency is allowed when its tier is); so is a model the client's token does not allow.
- Headers and JSON fields share one validator per field; an error names the header or the field.
- The ask carries the price and green weights already resolved from the config (green only for
  the batch lane), so the caller builds the scorer's request without reading the config again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hubhop.core.config import CHIP_PATTERN, MODEL_PATTERN
from hubhop.core.routing_config import SPILLS, RoutingConfig
from hubhop.core.tiers import LANES, TIERS, tier_bound_ms, tier_of

TIER_HEADER = "x-hubhop-tier"
MAX_LATENCY_HEADER = "x-hubhop-max-latency-ms"
LANE_HEADER = "x-hubhop-lane"
CHIP_HEADER = "x-hubhop-chip"
BUDGET_HEADER = "x-hubhop-budget"
DEADLINE_HEADER = "x-hubhop-deadline-ms"
EXPLAIN_HEADER = "x-hubhop-explain"
SPILL_HEADER = "x-hubhop-spill"
IDEMPOTENT_HEADER = "x-hubhop-idempotent"

# Each hint's field name (as in the JSON body of the route endpoint) and its header.
HINT_HEADERS: dict[str, str] = {
    "tier": TIER_HEADER,
    "max_latency_ms": MAX_LATENCY_HEADER,
    "lane": LANE_HEADER,
    "chip": CHIP_HEADER,
    "budget": BUDGET_HEADER,
    "deadline_ms": DEADLINE_HEADER,
    "explain": EXPLAIN_HEADER,
    "spill": SPILL_HEADER,
    "idempotent": IDEMPOTENT_HEADER,
}
# The route endpoint only decides, it sends nothing on, so idempotence means nothing there.
JSON_FIELDS: tuple[str, ...] = ("model", *(f for f in HINT_HEADERS if f != "idempotent"))

# Every legitimate hint fits in a few dozen characters; the cap bounds what an error echoes.
MAX_VALUE_LENGTH = 128
# A day: longer than any inference or batch job is asked to wait for, short enough that a
# deadline in seconds or microseconds by mistake is caught.
MAX_DEADLINE_MS = 24 * 3600 * 1000.0
DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
FLAGS: dict[str, bool] = {
    "1": True,
    "true": True,
    "yes": True,
    "0": False,
    "false": False,
    "no": False,
}


class HintError(ValueError):
    """A hint that cannot be honoured; `header` names the header (or JSON field)."""

    def __init__(self, header: str, message: str, status: int = 400) -> None:
        super().__init__(f"{header}: {message}")
        self.header = header
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RouteAsk:
    """One request's routing ask: what the scorer decides on, and how the answer is handled."""

    model: str
    lane: str
    # A named tier, for reporting; with an explicit max latency, the tightest tier holding it.
    tier: str
    # The one-way bound candidates are held to (ms): the tier's, or the given max latency.
    max_one_way_ms: float
    chip: str | None = None
    budget: float = math.inf  # no budget: any price
    deadline_ms: float | None = None
    spill: str = "next"
    explain: bool = False
    # Inference calls have no side effects, so a failed attempt may be sent to another node.
    idempotent: bool = True
    price_weight_ms: float = 0.0
    green_weight_ms: float = 0.0


def parse_hints(get: Callable[[str], str | None], model: str, config: RoutingConfig) -> RouteAsk:
    """The ask of a request for `model`; `get(name)` returns a header's value (names lower-case)."""
    given: dict[str, tuple[str, object]] = {}
    for field, header in HINT_HEADERS.items():
        value = get(header)
        if value is not None:
            given[field] = (header, value)
    return _ask(model, given, config)


def route_ask_from_json(document: Mapping[str, Any], config: RoutingConfig) -> RouteAsk:
    """The ask of a `POST /hubhop/v1/route` body: the hints as fields, `model` required.

    A field that is null counts as absent; an unknown field is refused, so a misspelt hint does
    not fall back to the default unnoticed.
    """
    if not isinstance(document, Mapping):
        raise HintError("body", "must be a JSON object")
    for name in document:
        if name not in JSON_FIELDS:
            raise HintError(str(name), f"unknown field (fields: {', '.join(JSON_FIELDS)})")
    raw_model = document.get("model")
    if raw_model is None:
        raise HintError("model", "is required")
    model = _text("model", raw_model)
    if not MODEL_PATTERN.fullmatch(model):
        raise HintError("model", f"{model!r} is not a model name")
    given = {f: (f, v) for f, v in document.items() if f != "model" and v is not None}
    return _ask(model, given, config)


def check_model(model: str, config: RoutingConfig) -> None:
    """HintError (403) when the client may not ask for `model` (a token's `allowed_models`)."""
    allowed = config.allowed_models
    if allowed is not None and model not in allowed:
        message = f"{model!r} is not a model this client may use ({', '.join(allowed)})"
        raise HintError("model", message, 403)


def _ask(model: str, given: Mapping[str, tuple[str, object]], config: RoutingConfig) -> RouteAsk:
    """The ask from the hints present in `given` (field -> (name to report, raw value))."""
    check_model(model, config)
    lane = config.lane
    if "lane" in given:
        lane = _one_of(*given["lane"], "lane", LANES, config.allowed_lanes)
    tier = config.tier
    bound = tier_bound_ms(tier)
    if "tier" in given and "max_latency_ms" in given:
        name = given["max_latency_ms"][0]
        raise HintError(name, f"give either {given['tier'][0]} or {name}, not both")
    if "tier" in given:
        tier = _one_of(*given["tier"], "tier", TIERS, config.allowed_tiers)
        bound = tier_bound_ms(tier)
    if "max_latency_ms" in given:
        tier, bound = _max_latency(*given["max_latency_ms"], config.allowed_tiers)
    chip = None
    if "chip" in given:
        chip = _chip(*given["chip"])
    budget = config.max_budget
    if "budget" in given:
        budget = _budget(*given["budget"])
        if budget > config.max_budget:
            name, raw = given["budget"]
            cap = f"{config.max_budget:g}"
            raise HintError(name, f"{_shown(raw)} is over this client's cap of {cap}", 403)
    deadline_ms = None
    if "deadline_ms" in given:
        deadline_ms = _deadline(*given["deadline_ms"])
    spill = config.spill
    if "spill" in given:
        spill = _one_of(*given["spill"], "spill policy", SPILLS)
    return RouteAsk(
        model=model,
        lane=lane,
        tier=tier,
        max_one_way_ms=bound,
        chip=chip,
        budget=budget,
        deadline_ms=deadline_ms,
        spill=spill,
        explain=_flag(*given["explain"]) if "explain" in given else False,
        idempotent=_flag(*given["idempotent"]) if "idempotent" in given else True,
        price_weight_ms=config.price_weight_ms
        + (config.batch_price_weight_ms if lane == "batch" else 0.0),
        green_weight_ms=config.batch_green_weight_ms if lane == "batch" else 0.0,
    )


# One validator per field, shared by headers (text) and JSON (text, numbers, booleans).


def _one_of(
    name: str,
    value: object,
    what: str,
    known: tuple[str, ...],
    allowed: tuple[str, ...] | None = None,
) -> str:
    text = _text(name, value)
    if text not in known:
        raise HintError(name, f"{text!r} is not a {what} ({', '.join(known)})")
    if allowed is not None and text not in allowed:
        raise HintError(name, f"{text!r} is {_not_allowed(what, allowed)}", 403)
    return text


def _max_latency(name: str, value: object, allowed_tiers: tuple[str, ...]) -> tuple[str, float]:
    bound = _decimal(name, value)
    if bound <= 0.0:
        raise HintError(name, f"{_shown(value)} must be a one-way latency above 0 ms")
    tier = tier_of(bound)
    if tier not in allowed_tiers:
        message = (
            f"{bound:g} ms is in tier {tier!r}, which is {_not_allowed('tier', allowed_tiers)}"
        )
        raise HintError(name, message, 403)
    return tier, bound


def _chip(name: str, value: object) -> str:
    text = _text(name, value)
    if not CHIP_PATTERN.fullmatch(text):
        raise HintError(
            name, f"{text!r} is not a chip type (such as nvidia-h100, ascend-910b, cpu)"
        )
    return text


def _budget(name: str, value: object) -> float:
    budget = _decimal(name, value)
    if budget < 0.0:
        raise HintError(name, f"{_shown(value)} must be a price of 0 or more")
    return budget


def _deadline(name: str, value: object) -> float:
    deadline = _decimal(name, value)
    if not 0.0 < deadline <= MAX_DEADLINE_MS:
        message = f"{_shown(value)} must be above 0 ms and at most {MAX_DEADLINE_MS:.0f} ms (a day)"
        raise HintError(name, message)
    return deadline


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise HintError(name, f"must be a boolean, got {_kind(value)}")
    text = _text(name, value)
    if text.lower() not in FLAGS:
        raise HintError(name, f"{text!r} is not one of {', '.join(FLAGS)}")
    return FLAGS[text.lower()]


def _decimal(name: str, value: object) -> float:
    """A finite number: a JSON number, or text that is a plain decimal."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    elif isinstance(value, str):
        text = _text(name, value)
        if not DECIMAL.fullmatch(text):
            raise HintError(name, f"{text!r} is not a decimal number (such as 5 or 2.5)")
        number = float(text)
    else:
        raise HintError(name, f"must be a number, got {_kind(value)}")
    if not math.isfinite(number):
        raise HintError(name, f"{_shown(value)} is not a finite number")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise HintError(name, f"must be a string, got {_kind(value)}")
    if len(value) > MAX_VALUE_LENGTH:
        raise HintError(name, f"is longer than {MAX_VALUE_LENGTH} characters")
    text = value.strip()
    if not text:
        raise HintError(name, "must not be empty")
    return text


def _kind(value: object) -> str:
    """A JSON value's type as a client would call it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, list) else type(value).__name__


def _shown(value: object) -> str:
    return repr(value.strip()) if isinstance(value, str) else repr(value)


def _not_allowed(what: str, allowed: tuple[str, ...]) -> str:
    return f"not allowed on this listener (allowed {what}s: {', '.join(allowed)})"
