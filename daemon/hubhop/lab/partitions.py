"""Cutting and healing a lab's emulated network: switching a named partition of its topology on
every daemon of the lab, through each daemon's lab route (hubhop.io.lab_controls).

Rules:
- Only daemons with an emulated WAN have the route; one without answers 404, which raises here.
- Each daemon holds its own copy of the model, so a cut is flipped on every daemon it should
  cut, one after the other (milliseconds apart on loopback): both sides, so it is symmetric.
- Only ever talks to the loopback URLs it is given.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from typing import Any

# The daemon's lab route (hubhop.io.lab_controls.PARTITIONS_PATH; the lab never imports io).
PARTITIONS_PATH = "/hubhop/v1/lab/partitions"
# A loopback daemon answers a switch in milliseconds; 10 s is stuck.
SWITCH_TIMEOUT_S = 10.0


def set_partition(daemon_url: str, name: str, active: bool) -> dict[str, Any]:
    """Switch partition `name` on one daemon (its HTTP base URL); its answer: the topology's
    partitions and which are active. urllib.error.HTTPError (with the daemon's JSON error) when
    it refuses."""
    request = urllib.request.Request(
        daemon_url + PARTITIONS_PATH,
        data=json.dumps({"name": name, "active": active}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SWITCH_TIMEOUT_S) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def set_partition_everywhere(daemon_urls: Iterable[str], name: str, active: bool) -> None:
    """Switch partition `name` on every daemon of `daemon_urls`."""
    for url in daemon_urls:
        set_partition(url, name, active)
