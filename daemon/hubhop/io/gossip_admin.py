"""The gossip side of the admin API: key commands awaited on the event loop, and what
`hubhop status` shows of membership, the capacity table and the keyring.

Rules:
- A key command is started on the node (hubhop.core.key_commands) and awaited until the node
  says KeyCommandDone; the wait is bounded by the command's own timeout plus a margin, so an
  admin request never hangs.
- Record ages are measured here, from the node's RecordChanged events (when each record was
  last stored), by the monotonic clock; reaped members' records are forgotten.
- The node's wall-clock offset (key commands judge freshness by the wall clock) is refreshed on
  every gossip event, so a clock stepped by NTP is followed within moments.
- The keyring is shown by fingerprint only, never a key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hubhop.core import swim
from hubhop.core.key_commands import DEFAULT_TIMEOUT_S, KeyCommandReport
from hubhop.core.keyring import fingerprint
from hubhop.core.members import MemberState
from hubhop.io.gossip_service import GossipService

# Beyond a command's own timeout, how long to wait for its report before calling it lost: the
# node's timer fires at the timeout itself, so this only covers a loop busy at that moment.
REPORT_MARGIN_S = 2.0


class GossipAdmin:
    """Attach to a started GossipService; answers the admin API's gossip questions."""

    def __init__(self, service: GossipService) -> None:
        assert service.node is not None and service.transport is not None
        self.service = service
        self.node = service.node
        self.transport = service.transport
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        # Records stored before we listened (our own, a join's): counted from now.
        self._stored_at: dict[str, float] = dict.fromkeys(
            service.table.digest(), self.transport.now
        )
        # Membership news since start: a rotation done right adds none.
        self.suspicions = 0
        self.deaths = 0
        self.transport.subscribe(self._on_event)

    async def key_command(
        self, op: str, key: bytes | None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> KeyCommandReport:
        """Run a key command across the cluster; ValueError for a bad one (nothing sent)."""
        self.node.wall_offset_s = time.time() - time.monotonic()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        command_id = self.node.start_key_command(op, key, self.transport.now, timeout_s)
        self._waiting[command_id] = done
        try:
            self.transport.pump()  # sends, and delivers KeyCommandDone if nobody was asked
            await asyncio.wait_for(done, timeout_s + REPORT_MARGIN_S)
        finally:
            self._waiting.pop(command_id, None)
        report = self.node.key_command_report(command_id)
        if report is None:  # cannot happen while reports are collected at once; say so if it does
            raise RuntimeError("the key command's report was lost")
        return report

    def _on_event(self, event: swim.GossipEvent) -> None:
        self.node.wall_offset_s = time.time() - time.monotonic()
        if isinstance(event, swim.KeyCommandDone):
            waiter = self._waiting.get(event.command_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif isinstance(event, swim.RecordChanged):
            self._stored_at[event.name] = self.transport.now
        elif isinstance(event, swim.MemberReaped):
            self._stored_at.pop(event.name, None)
        elif isinstance(event, swim.MemberSuspect):
            self.suspicions += 1
        elif isinstance(event, swim.MemberDead):
            self.deaths += 1

    def members_status(self) -> dict[str, Any]:
        """Members by state: counts of each, the names of those not alive, how many times a
        member was suspected or declared dead since start, and the datagrams refused by reason
        (bad_key: a peer seals with a key this node does not hold)."""
        views = self.node.members()
        counts = {state.value: 0 for state in MemberState}
        others: dict[str, list[str]] = {}
        for view in views:
            counts[view.state.value] += 1
            if view.state is not MemberState.ALIVE:
                others.setdefault(view.state.value, []).append(view.name)
        return {
            "counts": counts,
            "not_alive": {k: sorted(v) for k, v in others.items()},
            "suspected_since_start": self.suspicions,
            "declared_dead_since_start": self.deaths,
            "datagrams_refused": dict(sorted(self.service.channel.drops.items())),
        }

    def table_status(self) -> dict[str, Any]:
        """Rows of the capacity table and the ages of its oldest and newest records (s)."""
        now = self.transport.now
        ages = [now - at for name, at in self._stored_at.items() if name in self.service.table]
        return {
            "records": len(self.service.table),
            "oldest_record_age_s": round(max(ages), 3) if ages else None,
            "newest_record_age_s": round(min(ages), 3) if ages else None,
        }

    def keyring_status(self) -> dict[str, Any]:
        ring = self.service.channel.keyring
        return {
            "primary": fingerprint(ring.primary),
            "fingerprints": [fingerprint(key) for key in ring.keys],
            "source": self.service.keyring_source,
            "saved_to": self.service.gossip.keyring_state_file or None,
        }


def report_json(report: KeyCommandReport) -> dict[str, Any]:
    """A key command's report as the admin API shows it."""
    return {
        "op": report.op,
        "key": report.key or None,
        "ok": report.ok,
        "members": [
            {
                "name": answer.name,
                "status": answer.status,
                "error": answer.error or None,
                "fingerprints": list(answer.fingerprints),
                "primary": answer.primary or None,
            }
            for answer in report.answers
        ],
        "not_asked": list(report.not_asked),
    }
