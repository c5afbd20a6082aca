"""WAN relays: the emulated WAN on the path of requests that pass through no hubhop daemon.

hubhop's daemons hold a request carried to a peer for the one-way delay of the pair, and the
answer's head for the way back (`hubhop.io.request_router`). The baselines (HAProxy per entry
site) and the oracle reach the backends directly, so the routing gateway puts the same delays
on their path: one relay per serving site S, which learns the entry site E of each request from
the address the connection comes from (HAProxy binds its source address to E's) and forwards to
S's backend as a WAN hop from E would.

Rules:
- Per request: wait one_way(E->S), send the request on to S's backend (its body streamed as it
  arrives, never held whole), wait one_way(S->E) once the answer's head is in, then stream the
  answer as it comes (SSE included). Only the head is held on the way back, exactly as hubhop's
  daemons do, so both carry the same error (a streamed answer's later chunks are not delayed).
- Delays wait on the event loop's clock. Its timers are whole milliseconds (uvloop rounds each
  wait to the nearest ms, the stock loop wakes up to 1 ms late), where hubhop's holds wake
  through a timerfd within tens of microseconds: a sub-millisecond error per hold, small against
  the tens to thousands of milliseconds a request of the hospital mix takes.
- The answer says where it went: `x-hubhop-node: S`, `x-hubhop-tier:` the tightest tier holding
  one_way(E->S) (`hubhop.core.tiers.tier_of`), `x-hubhop-path: E>S` (just `E` when E is S).
- Hop-by-hop headers are dropped both ways (`hubhop.core.headers.end_to_end`); a known length is
  passed on rather than re-framed as chunked.
- An unknown source address is refused (403, a JSON error saying which addresses are known) and
  counted; a backend that cannot be reached is a 502; one that breaks mid-answer cuts the
  client's connection, so a truncated answer never looks whole. Both are counted.
- A client that goes away cancels the handler (the server runs with handler cancellation), which
  closes the upstream connection, so the backend frees the slot.
- Upstream connections are pooled keep-alive connections with no global limit: the relay must
  never become the queue.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from hubhop.core.headers import end_to_end
from hubhop.core.tiers import tier_of
from hubhop.io.http_errors import error_response

NODE_HEADER = "x-hubhop-node"
TIER_HEADER = "x-hubhop-tier"
PATH_HEADER = "x-hubhop-path"
SPILLED_HEADER = "x-hubhop-spilled"
# A backend on loopback accepts in well under a millisecond; 5 s means it is down (hubhop's own
# connect timeout is 2 s, but a 2-core box running 24 daemons can stall a connect for longer).
CONNECT_TIMEOUT_S = 5.0
# Batch jobs stream for seconds and a stuck backend is the backend's to report: no total bound.
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
# aiohttp's client would otherwise add these to what the client sent.
SKIPPED_AUTO_HEADERS = ("Accept-Encoding", "User-Agent", "Content-Type")
# The headers the relay sets on an answer; the upstream's own values of them are dropped.
OURS = frozenset({NODE_HEADER, TIER_HEADER, PATH_HEADER, SPILLED_HEADER})

# entry site -> serving site -> (there, back): one-way ms of the request and of the answer.
OneWayTable = Mapping[str, Mapping[str, tuple[float, float]]]
Body = bytes | aiohttp.StreamReader | None


@dataclass
class SiteCounters:
    relayed: int = 0  # requests taken by this site's relay listener (the baselines' path)
    oracle: int = 0  # requests the oracle sent here
    in_flight: int = 0  # either, not yet answered to its end
    upstream_errors: int = 0  # the backend could not be reached, or broke mid-answer
    statuses: Counter[str] = field(default_factory=Counter)  # answers by HTTP status


async def hold_ms(delay_ms: float) -> None:
    """Wait out one emulated one-way delay on the loop's clock (see the rules on precision)."""
    if delay_ms > 0.0:
        await asyncio.sleep(delay_ms / 1000.0)


def route_headers(entry: str, site: str, one_way_ms: float) -> dict[str, str]:
    """The headers saying where an answer was served and how far that is from its entry."""
    return {
        NODE_HEADER: site,
        TIER_HEADER: tier_of(one_way_ms),
        PATH_HEADER: entry if entry == site else f"{entry}>{site}",
    }


def local_host(request: web.Request) -> str:
    """The address the request's connection came to: which listener took it."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if sockname else ""


class Relay:
    """Forwards requests from entry sites to serving sites' backends over the emulated WAN."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        backend_urls: Mapping[str, str],
        one_way_ms: OneWayTable,
        entry_of_source: Mapping[str, str],
        site_of_relay_host: Mapping[str, str],
    ) -> None:
        self._session = session
        self._backend_urls = {site: url.rstrip("/") for site, url in backend_urls.items()}
        self._one_way = one_way_ms
        self._entry_of_source = dict(entry_of_source)
        self._site_of_host = dict(site_of_relay_host)
        self.sites = {site: SiteCounters() for site in backend_urls}
        self.unknown_sources = 0

    @property
    def in_flight(self) -> int:
        return sum(c.in_flight for c in self.sites.values())

    def stats(self) -> dict[str, Any]:
        return {site: {**vars(c), "statuses": dict(c.statuses)} for site, c in self.sites.items()}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A request to a relay listener: from the entry its source address names, to the site
        the listener stands for."""
        site = self._site_of_host[local_host(request)]
        peer = request.remote or ""
        entry = self._entry_of_source.get(peer)
        if entry is None:
            self.unknown_sources += 1
            known = ", ".join(sorted(self._entry_of_source)) or "none"
            message = (
                f"the relay to {site} takes connections only from the entry sites' source "
                f"addresses ({known}); {peer or 'an unknown address'} is none of them"
            )
            return error_response(request.path, 403, message, "unknown_source")
        self.sites[site].relayed += 1
        body = request.content if request.body_exists else None
        return await self.forward(request, entry, site, body)

    async def forward(
        self,
        request: web.Request,
        entry: str,
        site: str,
        body: Body,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Carry `request` (with `body`) from `entry` to `site`'s backend and its answer back,
        each way held for its one-way delay; `extra_headers` go on the answer."""
        counters = self.sites[site]
        there_ms, back_ms = self._one_way[entry][site]
        ours = route_headers(entry, site, there_ms)
        ours.update(extra_headers or {})
        counters.in_flight += 1
        try:
            response = await self._exchange(request, site, body, there_ms, back_ms, ours)
            counters.statuses[str(response.status)] += 1
            return response
        finally:
            counters.in_flight -= 1

    async def _exchange(
        self,
        request: web.Request,
        site: str,
        body: Body,
        there_ms: float,
        back_ms: float,
        ours: Mapping[str, str],
    ) -> web.StreamResponse:
        url = self._backend_urls[site]
        headers = end_to_end(request.headers.items(), request.headers.getall("Connection", ()))
        if isinstance(body, aiohttp.StreamReader) and request.content_length is not None:
            headers.append(("Content-Length", str(request.content_length)))
        await hold_ms(there_ms)
        try:
            async with self._session.request(
                request.method,
                url + request.rel_url.raw_path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=SKIPPED_AUTO_HEADERS,
            ) as upstream:
                await hold_ms(back_ms)
                answer = end_to_end(
                    upstream.headers.items(), upstream.headers.getall("Connection", ()), OURS
                )
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                response.headers.extend(answer)
                response.headers.update(ours)
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                await self._stream_answer(request, site, upstream, response)
                return response
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.sites[site].upstream_errors += 1
            message = f"the backend of {site} ({url}) failed: {exc or type(exc).__name__}"
            return error_response(request.path, 502, message, "bad_gateway")

    async def _stream_answer(
        self,
        request: web.Request,
        site: str,
        upstream: aiohttp.ClientResponse,
        response: web.StreamResponse,
    ) -> None:
        """Write the answer's body as it comes. The backend breaking off cuts the client's
        connection too, so a truncated answer never ends as if whole; the client going away
        ends the exchange (aiohttp then closes the upstream connection: the backend sees the
        request cancelled)."""
        chunks = upstream.content.iter_any()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except (aiohttp.ClientError, OSError, TimeoutError):
                self.sites[site].upstream_errors += 1
                if request.transport is not None:
                    request.transport.abort()
                return
            try:
                await response.write(chunk)
            except ConnectionError:
                return
        try:
            await response.write_eof()
        except ConnectionError:
            return
