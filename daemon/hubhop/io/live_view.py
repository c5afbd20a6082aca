"""The live view: a web page following this node (`GET /ui`), and the feed it reads.

    GET /ui, /ui/ui.js, /ui/ui.css   the page: plain HTML, CSS and JavaScript shipped in the
                                     package (hubhop/ui/), no build step, nothing fetched from
                                     anywhere but this node
    GET /hubhop/v1/watch             server-sent events: the table watch (hubhop.io.table_watch),
                                     the same feed gRPC's WatchTable follows

Rules:
- The page and its assets hold no data, so they are open like the health probes
  (`UI_ASSET_PATHS`, which the endpoint's token check lets through). What the page shows comes
  from the feed and the peers view, which take a token like every other path when [[tokens]]
  are configured.
- A browser cannot put a bearer header on a page load nor on an EventSource, and a token in a
  URL lands in access logs, proxies and history. So the page asks for the token in a form,
  keeps it in sessionStorage (this tab only, gone when the tab closes) and reads the feed with
  fetch() and a stream reader, sending `Authorization: Bearer`. The token never goes in a URL.
- One server-sent event per watch event: `event: <kind>` and `data: <the event as one line of
  JSON>`. Beside them, `counts`: this node's requests by lane, tier asked and outcome since it
  started (hubhop.io.node_metrics: the same figures /metrics shows), sent first and then when
  they change, checked every COUNTS_INTERVAL_S. A comment line goes out after KEEPALIVE_S of
  silence, so proxies and the browser keep an idle stream open.
- The stream ends when the node drains (the watch closes): the page says "disconnected" and
  tries again, reaching another node behind the same name or this one restarted.
- A feed reader that does not keep up holds back only the watch's own bounded queue, which
  resynchronises it with a fresh snapshot (hubhop.io.table_watch); nothing here buffers more.
- Every answer of the page carries a Content-Security-Policy that lets it load only its own
  assets and talk only to its own origin: peer-supplied names cannot run script in it, and the
  page writes them as text, never as markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web

from hubhop.core.headers import REQUEST_ID_HEADER
from hubhop.io.http_errors import ApiError
from hubhop.io.node_metrics import NodeMetrics
from hubhop.io.table_watch import Event, TableWatch

FEED_PATH = "/hubhop/v1/watch"
# Path -> (file in hubhop/ui/, content type).
_ASSETS = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/": ("index.html", "text/html; charset=utf-8"),
    "/ui/ui.js": ("ui.js", "text/javascript; charset=utf-8"),
    "/ui/ui.css": ("ui.css", "text/css; charset=utf-8"),
}
UI_ASSET_PATHS = frozenset(_ASSETS)
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with an upgrade: revalidate rather than show a stale page.
    "Cache-Control": "no-cache",
}
# Under the 30 to 60 s idle timeouts common in proxies and load balancers, with room.
KEEPALIVE_S = 15.0
# A person reading counts sees them move within a second; comparing a few dozen integers a
# second per reader costs nothing.
COUNTS_INTERVAL_S = 1.0

# The node's metrics (None: it keeps none), whose request counts the feed passes on.
Metrics = Callable[[], NodeMetrics | None]
_TICK: Event = {"kind": "tick"}


@cache
def asset(name: str) -> bytes:
    """A file of the page, read once from the package."""
    return resources.files("hubhop").joinpath("ui", name).read_bytes()


def sse_event(kind: str, document: Mapping[str, Any]) -> bytes:
    """One server-sent event; JSON keeps the data on one line (no raw newline in it)."""
    data = json.dumps(document, separators=(",", ":"), default=str)
    return f"event: {kind}\ndata: {data}\n\n".encode()


def counts_json(counts: Mapping[tuple[str, str, str], int]) -> dict[str, Any]:
    requests = [
        {"lane": lane, "tier": tier, "outcome": outcome, "count": n}
        for (lane, tier, outcome), n in sorted(counts.items())
    ]
    return {"kind": "counts", "requests": requests}


def live_view_routes(
    watch: Callable[[], TableWatch | None], metrics: Metrics, request_id: web.RequestKey[str]
) -> list[web.RouteDef]:
    """The page's routes and the feed's. `watch()`: the node's table watch (None: it keeps
    none); `metrics()`: its metrics, for the request counts; `request_id`: where the endpoint
    keeps each request's id."""

    async def page(request: web.Request) -> web.Response:
        name, content_type = _ASSETS[request.path]
        headers = {**_PAGE_HEADERS, "Content-Type": content_type}
        headers[REQUEST_ID_HEADER] = request[request_id]
        return web.Response(body=asset(name), headers=headers)

    async def feed(request: web.Request) -> web.StreamResponse:
        the_watch = watch()
        if the_watch is None:
            raise ApiError(404, "this node keeps no live feed", "not_found")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a buffering proxy in front would hold events
                REQUEST_ID_HEADER: request[request_id],
            }
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the reader went away
            await _stream(response, the_watch, metrics)
            await response.write_eof()
        return response

    routes = [web.get(path, page) for path in _ASSETS]
    routes.append(web.get(FEED_PATH, feed))
    return routes


async def _stream(response: web.StreamResponse, watch: TableWatch, metrics: Metrics) -> None:
    """Write the watch's events, the counts when they change and keep-alives, until the watch
    ends. One writer: a task moves the watch's events to it through a one-place queue, so its
    own wait can time out for the counts without cancelling the watch's iterator. A reader
    that leaves cancels this (the node's server cancels the handlers of lost connections),
    which stops the task and closes the iterator."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Event | None] = asyncio.Queue(1)
    pump = asyncio.create_task(_pump(watch.events(), inbox))
    sent_counts: dict[str, Any] | None = None
    last_write = loop.time()
    next_check: float | None = None  # none before the snapshot: it goes first
    try:
        while True:
            wait = None if next_check is None else max(0.0, next_check - loop.time())
            try:
                async with asyncio.timeout(wait):
                    event = await inbox.get()
            except TimeoutError:
                event = _TICK
            if event is None:
                return
            now = loop.time()
            if event is not _TICK:
                await response.write(sse_event(str(event.get("kind")), event))
                last_write = now
            if next_check is not None and now < next_check:
                continue
            next_check = now + COUNTS_INTERVAL_S
            node_metrics = metrics()
            shown = None if node_metrics is None else counts_json(node_metrics.requests)
            if shown is not None and shown != sent_counts:
                await response.write(sse_event("counts", shown))
                sent_counts, last_write = shown, now
            elif now - last_write >= KEEPALIVE_S:
                await response.write(b": keep-alive\n\n")
                last_write = now
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)


async def _pump(events: AsyncIterator[Event], inbox: asyncio.Queue[Event | None]) -> None:
    """Move the watch's events into `inbox`, then None when the watch ends. The iterator is
    closed however this ends, so the watch forgets this reader at once, not when collected."""
    try:
        async for event in events:
            await inbox.put(event)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    await inbox.put(None)
