"""Lab controls of a running daemon: switching its emulated WAN's named partitions on and off.

    GET  /hubhop/v1/lab/partitions                         the topology's partitions, and which
                                                           are active
    POST /hubhop/v1/lab/partitions {"name": N, "active": B} switch partition N on (true) or off

Rules:
- A lab feature: it exists only on a daemon with an emulated WAN (`[wan]` in its config). On any
  other daemon these routes answer 404 saying so, so a production node has no switch that cuts
  its own gossip.
- A switch takes effect at once, in this daemon only, and on everything the emulated WAN
  carries (hubhop.io.wan_delay): gossip datagrams from a site across the cut are dropped as
  they arrive, stream writes and data-plane hops to it break. Each daemon holds its own copy of
  the model, so a lab flips a partition on every daemon it cuts (both sides, so the cut is
  symmetric), as `hubhop.lab.partitions.set_partition_everywhere` does.
- Bad input (no JSON object, an unknown partition, `active` not a boolean) is a 400 or 404
  naming the fault; the daemon's state is unchanged. The body is small and bounded.
- Every switch is logged, so a daemon's log shows when its network was cut and healed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from hubhop.core.headers import REQUEST_ID_HEADER
from hubhop.io.http_errors import ApiError
from hubhop.io.request_router import Cluster
from hubhop.io.wan_delay import WanDelay

log = logging.getLogger(__name__)

PARTITIONS_PATH = "/hubhop/v1/lab/partitions"
# A switch is a name and a flag: a few dozen bytes. 4 KiB leaves room and bounds what is read.
MAX_SWITCH_BYTES = 4096


def lab_routes(
    cluster: Callable[[], Cluster | None], request_id: web.RequestKey[str]
) -> list[web.RouteDef]:
    """The lab routes, reaching the daemon's emulated WAN through `cluster()` (None: the node
    does not gossip); `request_id`: where the endpoint keeps each request's id."""

    def the_wan() -> WanDelay:
        gossiping = cluster()
        found = None if gossiping is None else gossiping.wan()
        if found is None:
            message = "lab controls need an emulated WAN: this node's config has no [wan]"
            raise ApiError(404, message, "no_emulated_wan")
        return found

    async def show(request: web.Request) -> web.Response:
        return _answer(request[request_id], the_wan())

    async def switch(request: web.Request) -> web.Response:
        delay = the_wan()
        name, active = _parse_switch(await _read_small(request))
        try:
            delay.model.set_partition(name, active)
        except KeyError:
            known = ", ".join(delay.model.partitions) or "none"
            message = f"no partition {name!r} in topology {delay.model.topology.name!r} ({known})"
            raise ApiError(404, message, "unknown_partition") from None
        log.warning("emulated partition %s switched %s", name, "on" if active else "off")
        return _answer(request[request_id], delay)

    return [web.get(PARTITIONS_PATH, show), web.post(PARTITIONS_PATH, switch)]


def _answer(request_id: str, delay: WanDelay) -> web.Response:
    model = delay.model
    body = {
        "topology": model.topology.name,
        "site": delay.own_site,
        "partitions": [
            {"name": name, "active": name in model.active_partitions} for name in model.partitions
        ],
    }
    return web.json_response(body, headers={REQUEST_ID_HEADER: request_id})


async def _read_small(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_SWITCH_BYTES:
        raise ApiError(413, f"a switch is at most {MAX_SWITCH_BYTES} bytes", "request_too_large")
    body = await request.content.read(MAX_SWITCH_BYTES + 1)
    if len(body) > MAX_SWITCH_BYTES:
        raise ApiError(413, f"a switch is at most {MAX_SWITCH_BYTES} bytes", "request_too_large")
    return body


def _parse_switch(body: bytes) -> tuple[str, bool]:
    """(partition name, active) from a switch's JSON body; ApiError 400 naming the fault."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not JSON: {exc}", "invalid_json") from None
    if not isinstance(document, dict):
        raise ApiError(400, 'the body must be {"name": "...", "active": true|false}', "invalid")
    name, active = document.get("name"), document.get("active")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "name: the partition's name, a string", "invalid")
    if not isinstance(active, bool):
        raise ApiError(400, f"active: true or false, not {active!r}", "invalid")
    unknown = sorted(set(document) - {"name", "active"})
    if unknown:
        raise ApiError(400, f"unknown keys: {', '.join(unknown)}", "invalid")
    return name, active
