"""The routing gateway: one process that puts the emulated WAN on the baselines' path and runs
the oracle, for the routing benchmark (issue 7).

hubhop's daemons emulate the WAN between themselves. The baselines (an HAProxy per entry site)
and the oracle reach the backends without passing through a daemon, so this process gives them
the same latency: a WAN relay per serving site (`relay.py`), and per entry site an oracle
listener that routes each request with perfect knowledge (`oracle.py`) and sends it through the
same relay code, in process.

Listeners, all on one port:
- `relay_host(S):port` for each serving site S: the relay to S. The entry site is the one whose
  `source_ip` the connection comes from (HAProxy binds it); any other address gets a 403.
- `oracle_host(E):port` for each entry site E: the oracle, read as hubhop's local endpoint reads
  a request. OpenAI: `POST /v1/chat/completions`, `/v1/completions` (JSON body read whole, up to
  MAX_JSON_BODY_BYTES: its `model`, and `max_completion_tokens` or `max_tokens`). KServe v2:
  `POST /v2/models/{model}/infer` (the body streamed on), and the model's metadata and readiness
  GETs (routed to the nearest backend serving the model; they take no slot). Hints are hubhop's
  headers (`hubhop.core.routing_hints`): `x-hubhop-lane` (emergency|standard|batch; standard),
  `x-hubhop-tier` (city|province|region|national|any; any) or `x-hubhop-max-latency-ms`,
  `x-hubhop-spill` (none|next|any; next), `x-hubhop-chip`. Bad input is a 400, a full oracle
  queue a 429 with Retry-After, a model nothing within reach serves a 503.
- `GET /gateway/stats` on any listener (`stats_document`): per site `relayed` (relay listener),
  `oracle` (sent by the oracle), `in_flight`, `upstream_errors`, `statuses` (answers by HTTP
  status); under `oracle`: offered, dispatched, queued (ever), shed, unroutable, cancelled,
  waiting (now), max_waiting, queues, in_flight, in_flight_by_site, the same counts per lane
  (`lanes`), bad_requests and info_calls (metadata/readiness GETs); and for the whole gateway
  unknown_sources, upstream_errors, in_flight and `idle` (nothing in flight, nothing waiting).

The config file (JSON; `gateway_config` writes it, `parse_gateway_config` checks it whole and
names every faulty field):

    {"port": 8080,                     every listener's port, 1..65535
     "queue_turns": 1,                 optional: the oracle's queue bound (oracle.py), >= 1
     "sites": [                        serving sites, at least one, names and hosts unique
       {"site": "wuhan-dc-1",
        "relay_host": "127.0.54.1",    the relay's listening address (an IPv4 address)
        "backend": "http://127.0.53.1:PORT",   the site's backend (http://HOST:PORT)
        "models": ["ct-triage", "chat-7b", "seq-align"], "chip": "ascend-910b",
        "slots": 8,                    integer >= 1
        "price": 2.0, "green_share": 0.2,     >= 0; green_share at most 1
        "prefill_ms": 35.0,            the median prefill (service) time, >= 0
        "token_rate": 60.0}, ...],     tokens/s per request, > 0
     "entries": [                      entry sites (a hospital), at least one, all unique
       {"site": "wuhan-hospital", "source_ip": "127.0.55.3", "oracle_host": "127.0.56.3"}, ...],
     "one_way_ms": {                   every entry to every serving site: [there, back], ms >= 0
       "wuhan-hospital": {"wuhan-dc-1": [0.2, 0.2], ...}, ...}}

An entry site may also be a serving site (a hospital's edge box serves chat). Relay and oracle
hosts must all differ: each listener knows its role and site by the address it was reached at.

Process: `python -m bench.routing.gateway --config FILE.json` binds every listener, then prints
one line, `routing-gateway ready http://<first relay host>:<port>`, and serves until SIGTERM or
SIGINT: then it stops listening, gives in-flight requests SHUTDOWN_GRACE_S, cancels the rest
and exits 0. `start_routing_gateway` starts it and waits for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.routing.oracle import (
    DEFAULT_QUEUE_TURNS,
    Ask,
    Backend,
    Dispatch,
    OracleScheduler,
    Queued,
    Shed,
    Unroutable,
)
from bench.routing.relay import SPILLED_HEADER, UPSTREAM_TIMEOUT, Relay, local_host
from hubhop.core.config import MODEL_PATTERN
from hubhop.core.routing_config import RoutingConfig
from hubhop.core.routing_hints import HintError, parse_hints
from hubhop.core.service_time import ServiceTimeDistribution
from hubhop.io.demo_backend import DemoBackendSettings
from hubhop.io.http_errors import ApiError, error_response
from hubhop.io.local_endpoint import read_json_body
from hubhop.io.loop import LOOP_KINDS, run
from hubhop.lab import processes
from hubhop.lab.cluster import address_in
from hubhop.lab.profiles import BackendProfile
from hubhop.wan.model import WanModel

READY = "routing-gateway ready"
REPO_ROOT = Path(__file__).resolve().parents[2]
# hubhop's own `[http] max_json_body_bytes` default: an OpenAI body is read whole to learn its
# model, so it is bounded, and the oracle takes what a daemon takes.
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024
# The answer length the demo backend gives a request that does not say (its --max-tokens
# default, which the lab does not change): what the oracle expects of such a request.
DEFAULT_ANSWER_TOKENS = DemoBackendSettings.max_tokens
# The hints' defaults are a hubhop node's without a [routing] section: lane standard, tier any,
# spill next, every lane and tier allowed.
ROUTING_DEFAULTS = RoutingConfig()
# The orchestrator stops the gateway once its load has ended and /gateway/stats said idle:
# whatever is still in flight then is a leftover, cut so the process exits within a second.
SHUTDOWN_GRACE_S = 0.5
# Connections waiting to be accepted per listener: an HAProxy opening a burst of connections to
# one relay must not see refusals (the kernel caps it at net.core.somaxconn anyway).
LISTEN_BACKLOG = 1024


# --- the config -------------------------------------------------------------------------------


class GatewayConfigError(ValueError):
    """The config file is not what the gateway needs; one line per fault."""

    def __init__(self, faults: list[str]) -> None:
        super().__init__("\n".join(faults))
        self.faults = faults


@dataclass(frozen=True)
class ServingSite:
    relay_host: str
    backend_url: str
    backend: Backend  # what the oracle knows of it; backend.site is the site's name


@dataclass(frozen=True)
class EntrySite:
    site: str
    source_ip: str
    oracle_host: str


@dataclass(frozen=True)
class GatewayConfig:
    port: int
    sites: tuple[ServingSite, ...]
    entries: tuple[EntrySite, ...]
    one_way_ms: dict[str, dict[str, tuple[float, float]]]  # entry -> site -> (there, back)
    queue_turns: int = DEFAULT_QUEUE_TURNS


_SITE_FIELDS = ("site", "relay_host", "backend", "models", "chip", "slots", "price",
                "green_share", "prefill_ms", "token_rate")  # fmt: skip
_ENTRY_FIELDS = ("site", "source_ip", "oracle_host")
_TOP_FIELDS = ("port", "queue_turns", "sites", "entries", "one_way_ms")


class _Checker:
    """Reads fields of a JSON document, noting a fault (and giving None) for each bad one."""

    def __init__(self) -> None:
        self.faults: list[str] = []

    def fault(self, where: str, message: str) -> None:
        self.faults.append(f"{where}: {message}")

    def at(self, where: str, key: str) -> str:
        """The path of field `key` of the table at `where` ("" for the document itself)."""
        return f"{where}.{key}" if where else key

    def table(self, value: object, where: str, known: Sequence[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fault(where or "the document", f"must be an object, got {_kind(value)}")
            return None
        for name in value:
            if name not in known:
                self.fault(self.at(where, name), "unknown field")
        return value

    def text(self, table: Mapping[str, Any], key: str, where: str) -> str | None:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fault(self.at(where, key), f"must be a non-empty string, got {_kind(value)}")
            return None
        return value

    def address(self, table: Mapping[str, Any], key: str, where: str) -> str | None:
        value = self.text(table, key, where)
        if value is None:
            return None
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            self.fault(self.at(where, key), f"{value!r} is not an IPv4 address")
            return None
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, where: str, lo: int, hi: int
    ) -> int | None:
        value = table.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fault(self.at(where, key), f"must be an integer {lo}..{hi}, got {value!r}")
            return None
        return value

    def number(
        self, value: object, where: str, lo: float, hi: float = math.inf, *, above: bool = False
    ) -> float | None:
        number = math.nan
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        low_ok = number > lo if above else number >= lo
        if not (math.isfinite(number) and low_ok and number <= hi):
            bounds = f"{'above' if above else 'at least'} {lo:g}"
            bounds += f" and at most {hi:g}" if math.isfinite(hi) else ""
            self.fault(where, f"must be a number {bounds}, got {value!r}")
            return None
        return number

    def unique(self, values: Sequence[str | None], where: str) -> None:
        seen: set[str] = set()
        for value in values:
            if value is not None and value in seen:
                self.fault(where, f"{value!r} is given more than once")
            if value is not None:
                seen.add(value)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _serving_site(check: _Checker, raw: object, where: str) -> ServingSite | None:
    table = check.table(raw, where, _SITE_FIELDS)
    if table is None:
        return None
    faults = len(check.faults)
    site = check.text(table, "site", where)
    relay_host = check.address(table, "relay_host", where)
    url = check.text(table, "backend", where)
    if url is not None and not url.startswith("http://"):
        check.fault(f"{where}.backend", f"{url!r} is not an http://HOST:PORT URL")
    models = table.get("models")
    if not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
        check.fault(f"{where}.models", f"must be a non-empty list of model names, got {models!r}")
    elif bad := [m for m in models if not MODEL_PATTERN.fullmatch(m)]:
        check.fault(f"{where}.models", f"not model names: {bad}")
    chip = check.text(table, "chip", where)
    slots = check.integer(table, "slots", where, 1, 1_000_000)
    price = check.number(table.get("price"), f"{where}.price", 0.0)
    green = check.number(table.get("green_share"), f"{where}.green_share", 0.0, 1.0)
    prefill = check.number(table.get("prefill_ms"), f"{where}.prefill_ms", 0.0)
    rate = check.number(table.get("token_rate"), f"{where}.token_rate", 0.0, above=True)
    if len(check.faults) > faults:
        return None
    assert site and relay_host and url and chip and slots and isinstance(models, list)
    assert price is not None and green is not None and prefill is not None and rate is not None
    backend = Backend(site, tuple(models), chip, slots, price, green, prefill, rate)
    return ServingSite(relay_host, url, backend)


def _entry_site(check: _Checker, raw: object, where: str) -> EntrySite | None:
    table = check.table(raw, where, _ENTRY_FIELDS)
    if table is None:
        return None
    site = check.text(table, "site", where)
    source_ip = check.address(table, "source_ip", where)
    oracle_host = check.address(table, "oracle_host", where)
    if site is None or source_ip is None or oracle_host is None:
        return None
    return EntrySite(site, source_ip, oracle_host)


def _one_way_table(
    check: _Checker, raw: object, entries: Sequence[str], sites: Sequence[str]
) -> dict[str, dict[str, tuple[float, float]]]:
    table = check.table(raw, "one_way_ms", entries)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    if table is None:
        return out
    for entry in entries:
        where = f"one_way_ms.{entry}"
        row = check.table(table.get(entry), where, sites)
        if row is None:
            continue
        out[entry] = {}
        for site in sites:
            pair = row.get(site)
            if not (isinstance(pair, list) and len(pair) == 2):
                check.fault(f"{where}.{site}", f"must be [there_ms, back_ms], got {pair!r}")
                continue
            there = check.number(pair[0], f"{where}.{site}[0]", 0.0)
            back = check.number(pair[1], f"{where}.{site}[1]", 0.0)
            if there is not None and back is not None:
                out[entry][site] = (there, back)
    return out


def _items(check: _Checker, top: Mapping[str, Any], key: str) -> list[Any]:
    raw = top.get(key)
    if not isinstance(raw, list) or not raw:
        check.fault(key, f"must be a non-empty list, got {_kind(raw)}")
        return []
    return raw


def _names(top: Mapping[str, Any], key: str) -> list[str]:
    raw = top.get(key)
    items = raw if isinstance(raw, list) else []
    return [i["site"] for i in items if isinstance(i, dict) and isinstance(i.get("site"), str)]


def parse_gateway_config(document: object, source: str = "gateway config") -> GatewayConfig:
    """The config from its JSON document; GatewayConfigError naming `source` and every faulty
    field otherwise."""
    check = _Checker()
    top = check.table(document, "", _TOP_FIELDS)
    if top is None:
        raise GatewayConfigError([f"{source}: {fault}" for fault in check.faults])
    port = check.integer(top, "port", "", 1, 65535)
    turns = DEFAULT_QUEUE_TURNS
    if "queue_turns" in top:
        turns = check.integer(top, "queue_turns", "", 1, 1000) or DEFAULT_QUEUE_TURNS
    sites = [
        found
        for index, item in enumerate(_items(check, top, "sites"))
        if (found := _serving_site(check, item, f"sites[{index}]")) is not None
    ]
    entries = [
        entry
        for index, item in enumerate(_items(check, top, "entries"))
        if (entry := _entry_site(check, item, f"entries[{index}]")) is not None
    ]
    # Names as written, even of a site with other faults: its latencies are checked too.
    site_names = _names(top, "sites")
    entry_names = _names(top, "entries")
    check.unique(site_names, "sites[].site")
    check.unique(entry_names, "entries[].site")
    check.unique([e.source_ip for e in entries], "entries[].source_ip")
    check.unique(
        [s.relay_host for s in sites] + [e.oracle_host for e in entries],
        "sites[].relay_host and entries[].oracle_host (each listener its own address)",
    )
    one_way = _one_way_table(check, top.get("one_way_ms"), entry_names, site_names)
    if check.faults:
        raise GatewayConfigError([f"{source}: {fault}" for fault in check.faults])
    assert port is not None
    return GatewayConfig(port, tuple(sites), tuple(entries), one_way, turns)


def load_gateway_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and check a config file; GatewayConfigError (naming the file) for any fault."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GatewayConfigError([f"{path}: cannot read the config: {exc}"]) from None
    return parse_gateway_config(document, str(path))


def gateway_config(
    model: WanModel,
    profiles: Mapping[str, tuple[BackendProfile, ...]],
    backend_urls: Mapping[str, str],
    entries: Sequence[str],
    serving: Sequence[str],
    relay_net: str,
    source_net: str,
    oracle_net: str,
    port: int,
) -> dict[str, Any]:
    """The config document for an emulated network: the `serving` sites' backends (one profile
    each, served at `backend_urls[site]`), the `entries`, and the model's true one-way
    latencies. A site's address in a net (`127.A.B`) is the net with the last octet of the
    site's topology host."""

    def address(net: str, site: str) -> str:
        return address_in(net, model.topology.site(site).host)

    sites = []
    for site in serving:
        found = profiles.get(site, ())
        if len(found) != 1:
            raise ValueError(f"{site}: the gateway takes one backend per site, not {len(found)}")
        profile = found[0]
        sites.append(
            {
                "site": site,
                "relay_host": address(relay_net, site),
                "backend": backend_urls[site],
                "models": list(profile.models),
                "chip": profile.chip,
                "slots": profile.slots,
                "price": profile.price,
                "green_share": profile.green_share,
                "prefill_ms": ServiceTimeDistribution.parse(profile.service_ms).median_ms,
                "token_rate": profile.token_rate,
            }
        )
    return {
        "port": port,
        "sites": sites,
        "entries": [
            {
                "site": entry,
                "source_ip": address(source_net, entry),
                "oracle_host": address(oracle_net, entry),
            }
            for entry in entries
        ],
        "one_way_ms": {
            entry: {s: [model.one_way_ms(entry, s), model.one_way_ms(s, entry)] for s in serving}
            for entry in entries
        },
    }


# --- the oracle's listeners --------------------------------------------------------------------


def answer_tokens(document: Mapping[str, Any]) -> int:
    """The answer length an OpenAI body asks for (`max_completion_tokens`, else `max_tokens`),
    or the demo backend's default when it asks for none (or for nonsense the backend refuses)."""
    requested = document.get("max_completion_tokens", document.get("max_tokens"))
    if isinstance(requested, int) and not isinstance(requested, bool) and requested >= 0:
        return requested
    return DEFAULT_ANSWER_TOKENS


class OracleFront:
    """The oracle's HTTP side: reads each request's ask, awaits the scheduler's decision (a
    future per waiting request) and forwards through the relay; releases the slot at the end."""

    def __init__(
        self, scheduler: OracleScheduler, relay: Relay, entry_of_host: Mapping[str, str]
    ) -> None:
        self.scheduler = scheduler
        self._relay = relay
        self._entry_of_host = dict(entry_of_host)
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[Dispatch]] = {}
        self.bad_requests = 0
        self.info_calls = 0

    def _entry(self, request: web.Request) -> str:
        return self._entry_of_host[local_host(request)]

    def _ask(self, request: web.Request, model: str, tokens: int) -> Ask:
        if not MODEL_PATTERN.fullmatch(model):
            raise ApiError(400, f"{model!r} is not a model name", "invalid_model")
        try:
            hints = parse_hints(lambda name: request.headers.get(name), model, ROUTING_DEFAULTS)
        except HintError as exc:
            raise ApiError(exc.status, str(exc), "invalid_hint") from None
        return Ask(model, hints.lane, hints.max_one_way_ms, hints.spill, hints.chip, tokens)

    async def openai(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions, /v1/completions."""
        body, document = await read_json_body(request, MAX_JSON_BODY_BYTES)
        model = document.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "the request needs a 'model' string", "missing_model")
        ask = self._ask(request, model, answer_tokens(document))
        return await self._route(request, ask, body)

    async def kserve_infer(self, request: web.Request) -> web.StreamResponse:
        """POST /v2/models/{model}[/versions/{version}]/infer: the body streamed on."""
        ask = self._ask(request, request.match_info["model"], 0)
        return await self._route(request, ask, request.content if request.body_exists else None)

    async def kserve_info(self, request: web.Request) -> web.StreamResponse:
        """GET a model's metadata or readiness: the nearest backend serving it; no slot."""
        model = request.match_info["model"]
        entry = self._entry(request)
        found = self.scheduler.locate(entry, self._ask(request, model, 0))
        if found is None:
            raise ApiError(404, f"no backend within reach serves {model!r}", "model_not_found")
        site, spilled = found
        self.info_calls += 1
        self._relay.sites[site].oracle += 1
        extra = {SPILLED_HEADER: "1"} if spilled else {}
        return await self._relay.forward(request, entry, site, None, extra)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        raise ApiError(404, f"the oracle does not serve {request.method} {request.path}", None)

    async def _route(
        self, request: web.Request, ask: Ask, body: bytes | aiohttp.StreamReader | None
    ) -> web.StreamResponse:
        entry = self._entry(request)
        request_id = next(self._ids)
        outcome = self.scheduler.offer(request_id, entry, ask)
        if isinstance(outcome, Unroutable):
            raise ApiError(503, outcome.reason, "no_route")
        if isinstance(outcome, Shed):
            message = (
                f"the oracle's queue for this request is full ({outcome.waiting} waiting, "
                f"at most {outcome.limit}); retry later"
            )
            headers = {"Retry-After": str(outcome.retry_after_s)}
            raise ApiError(429, message, "rate_limited", headers)
        if isinstance(outcome, Queued):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[request_id] = waiter
            try:
                outcome = await waiter
            except asyncio.CancelledError:
                self._wake(self.scheduler.cancel(request_id))
                raise
            finally:
                del self._waiters[request_id]
        try:
            self._relay.sites[outcome.site].oracle += 1
            extra = {SPILLED_HEADER: "1"} if outcome.spilled else {}
            return await self._relay.forward(request, entry, outcome.site, body, extra)
        finally:
            self._wake(self.scheduler.release(request_id))

    def _wake(self, dispatched: list[Dispatch]) -> None:
        """Hand each dispatched waiting request its decision; one whose handler is gone (it was
        cancelled just now) gives its slot straight back."""
        for dispatch in dispatched:
            waiter = self._waiters.get(dispatch.request_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(dispatch)
            else:
                self._wake(self.scheduler.cancel(dispatch.request_id))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as a JSON error in the client's API style (hubhop.io.http_errors)."""
    try:
        return await handler(request)
    except ApiError as exc:
        front = request.app[FRONT]
        if exc.status in (400, 413):
            front.bad_requests += 1
        return error_response(request.path, exc.status, exc.message, exc.code, exc.headers)


FRONT = web.AppKey("oracle_front", OracleFront)


# --- the process ------------------------------------------------------------------------------


def stats_document(relay: Relay, front: OracleFront) -> dict[str, Any]:
    """What `GET /gateway/stats` answers (see the module's header)."""
    sites = relay.stats()
    oracle = front.scheduler.counters()
    oracle.update(bad_requests=front.bad_requests, info_calls=front.info_calls)
    return {
        "sites": sites,
        "oracle": oracle,
        "unknown_sources": relay.unknown_sources,
        "upstream_errors": sum(s["upstream_errors"] for s in sites.values()),
        "in_flight": relay.in_flight,
        "idle": relay.in_flight == 0 and front.scheduler.waiting == 0,
    }


def build_apps(
    config: GatewayConfig, session: aiohttp.ClientSession
) -> tuple[web.Application, web.Application]:
    """The relays' application and the oracle's."""
    relay = Relay(
        session,
        {s.backend.site: s.backend_url for s in config.sites},
        config.one_way_ms,
        {e.source_ip: e.site for e in config.entries},
        {s.relay_host: s.backend.site for s in config.sites},
    )
    scheduler = OracleScheduler(
        (s.backend for s in config.sites), config.one_way_ms, config.queue_turns
    )
    front = OracleFront(scheduler, relay, {e.oracle_host: e.site for e in config.entries})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(stats_document(relay, front))

    relays = web.Application()
    relays.router.add_get("/gateway/stats", stats)
    relays.router.add_route("*", "/{tail:.*}", relay.handle)
    oracle = web.Application(middlewares=[json_errors])
    oracle[FRONT] = front
    oracle.router.add_get("/gateway/stats", stats)
    oracle.router.add_post("/v1/chat/completions", front.openai)
    oracle.router.add_post("/v1/completions", front.openai)
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        oracle.router.add_get(prefix, front.kserve_info)
        oracle.router.add_get(prefix + "/ready", front.kserve_info)
        oracle.router.add_post(prefix + "/infer", front.kserve_infer)
    oracle.router.add_route("*", "/{tail:.*}", front.not_found)
    return relays, oracle


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None) -> None:
    """Bind every listener, say ready, serve until `stop` is set (or SIGTERM / SIGINT)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    session = aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=UPSTREAM_TIMEOUT
    )
    relays, oracle = build_apps(config, session)
    runners = [
        web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        for app in (relays, oracle)
    ]
    try:
        for runner in runners:
            await runner.setup()
        listeners = [(runners[0], s.relay_host) for s in config.sites]
        listeners += [(runners[1], e.oracle_host) for e in config.entries]
        for runner, host in listeners:
            site = web.TCPSite(runner, host, config.port, backlog=LISTEN_BACKLOG)
            await site.start()
        print(f"{READY} http://{config.sites[0].relay_host}:{config.port}", flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(runner.cleanup() for runner in runners))
        await session.close()


def launch_routing_gateway(workdir: Path, config_path: Path) -> processes.Proc:
    """The gateway started on `config_path`, not yet ready; its log `workdir/routing-gateway.log`.
    (Launch, register, then wait: a caller interrupted while it waits still owns the PID.)"""
    argv = [sys.executable, "-m", "bench.routing.gateway", "--config", str(config_path)]
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return processes.popen(
        "routing-gateway", argv, workdir / "routing-gateway.log", {"PYTHONPATH": path}
    )


def start_routing_gateway(workdir: Path, config_path: Path) -> processes.Proc:
    """The gateway, once it says it is ready (its first relay's URL in `proc.url`)."""
    return processes.wait_ready_line(launch_routing_gateway(workdir, config_path), READY)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="the gateway's JSON config")
    parser.add_argument("--loop", choices=LOOP_KINDS, default="auto", help="event loop")
    args = parser.parse_args(argv)
    try:
        config = load_gateway_config(args.config)
    except GatewayConfigError as exc:
        print(f"routing-gateway: bad config:\n{exc}", file=sys.stderr)
        return 2
    try:
        run(serve(config), args.loop)
    except OSError as exc:
        print(f"routing-gateway: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
