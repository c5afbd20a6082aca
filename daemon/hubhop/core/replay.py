"""Replay protection: which (epoch, seq) pairs each sender has already used.

Every sealed message carries its sender's name, an epoch (grows across restarts of that sender)
and a seq (0, 1, 2, ... within the epoch). `ReplayGuard.admit` is asked only about messages
that have already been authenticated, and accepts each (sender, epoch, seq) at most once:

- an epoch older than the newest seen from that sender is "stale" (a previous life of the node);
- a newer epoch is a restart: that sender's window starts over from this message;
- in the same epoch, a seq seen before, or more than WINDOW_SEQS below the highest seq seen,
  is "replay"; any other seq is accepted, out of order too.

State per sender is the newest epoch, the highest seq and a bitmap of the last WINDOW_SEQS seqs
(bit i set: seq `top - i` was seen), as in IPsec's anti-replay window (RFC 4303, 3.4.3).
Memory is bounded: at most `max_senders` senders are tracked, the least recently admitted one is
evicted first. An evicted or forgotten sender starts over at its next message, which means a
captured message of that sender could be accepted once more; eviction needs more live senders
than the bound, and only key holders can produce new senders.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

# Seqs remembered per sender. A sender's seq counts everything it seals, to every peer (gossip
# ticks 10 a second times a fanout of 3, plus probes and push-pulls): 1024 seqs are ten seconds
# or more of its traffic, so a message overtaken by that much (a long push-pull stream, UDP
# reordering) still opens. Costs 128 bytes of bitmap per sender.
WINDOW_SEQS = 1024
# Senders tracked at once. The largest deployments this serves hold thousands of nodes (the
# simulator runs 10,000); 65,536 leaves a wide margin for churn (restarted and reaped nodes whose
# entries have not aged out) while the worst case stays near 30 MB (measured: about 460 bytes per
# entry with a 128-character name and a full bitmap).
MAX_TRACKED_SENDERS = 65_536

Verdict = Literal["stale", "replay"] | None


class _Window:
    __slots__ = ("epoch", "seen", "top")

    def __init__(self, epoch: int, seq: int) -> None:
        self.epoch = epoch
        self.top = seq
        self.seen = 1


class ReplayGuard:
    """Per-sender anti-replay windows, bounded in senders (LRU) and in seqs (sliding bitmap)."""

    __slots__ = ("_mask", "_max_senders", "_window", "_windows")

    def __init__(self, max_senders: int = MAX_TRACKED_SENDERS, window: int = WINDOW_SEQS) -> None:
        if max_senders < 1:
            raise ValueError(f"max_senders must be at least 1, not {max_senders}")
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        self._max_senders = max_senders
        self._window = window
        self._mask = (1 << window) - 1
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    @property
    def max_senders(self) -> int:
        return self._max_senders

    @property
    def window(self) -> int:
        return self._window

    def __len__(self) -> int:
        return len(self._windows)

    def __contains__(self, sender: object) -> bool:
        return sender in self._windows

    def admit(self, sender: str, epoch: int, seq: int) -> Verdict:
        """None (and remember the message) when it is new, else why it is refused."""
        state = self._windows.get(sender)
        if state is None:
            if len(self._windows) >= self._max_senders:
                self._windows.popitem(last=False)
            self._windows[sender] = _Window(epoch, seq)
            return None
        if epoch < state.epoch:
            return "stale"
        if epoch > state.epoch:
            state.epoch = epoch
            state.top = seq
            state.seen = 1
        elif seq > state.top:
            shift = seq - state.top
            state.seen = 1 if shift >= self._window else ((state.seen << shift) | 1) & self._mask
            state.top = seq
        else:
            behind = state.top - seq
            if behind >= self._window or (state.seen >> behind) & 1:
                return "replay"
            state.seen |= 1 << behind
        self._windows.move_to_end(sender)
        return None

    def forget(self, sender: str) -> None:
        """Drop a sender's state (a reaped member). Unknown senders are ignored."""
        self._windows.pop(sender, None)
