"""The candidate table as the kernels read it: one row per node x backend, one column per field.

Rules:
- Columns are C-contiguous arrays of fixed dtypes (see `hubhop_native.columns`), exactly R long,
  so the kernels compile one specialisation and read memory in order.
- Value changes (load, price, liveness) are written in place: O(1), no reallocation.
- Structural changes (a row added or removed) are queued and folded in by `materialize()`, one
  O(R) rebuild for any number of queued changes, run before the next decision rather than on
  every change, and never per request when nothing changed.
- This node's own rows read its admission live (`set_live_load`: busy slots and lane queues,
  written at each change): those figures stand over the ones in its own record, which were
  sampled when it was published, and survive the record's rows being rebuilt. The entry's
  in-flight count (ROW_LOCAL_INFLIGHT) is for other nodes' rows: admission already counts a
  request to this node's own backend.
- Node ids come from a shared vocabulary so rows point into the per-node latency array of the
  path map; model and chip names become small ids the same way. Model sets are bitsets: model
  id m is bit m % 64 of word m // 64; the table widens the bitset when the vocabulary outgrows it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from hubhop.core.capacity import LoadSample
from hubhop.scoring.vocabulary import Vocabulary
from hubhop_native import columns as col

RowKey = tuple[str, str]  # (node, backend)


@dataclass(frozen=True)
class BackendLoad:
    """What one node says about one of its backends, as the table needs it."""

    models: tuple[str, ...]
    chip: str
    price: float
    green_share: float
    slots: int
    emergency_reserve: int
    busy: float
    queue: tuple[float, float, float]  # waiting requests per lane: emergency, standard, batch
    service_ms: float
    alive: bool = True


class CandidateTable:
    def __init__(self, nodes: Vocabulary, models: Vocabulary, chips: Vocabulary) -> None:
        self.nodes = nodes
        self.models = models
        self.chips = chips
        self.keys: list[RowKey] = []
        self._row_of: dict[RowKey, int] = {}
        self._pending: dict[RowKey, BackendLoad] = {}
        self._removed: set[int] = set()
        self._live: dict[RowKey, tuple[float, tuple[float, float, float]]] = {}
        self.row_node = np.zeros(0, np.int32)
        self.row_alive = np.zeros(0, np.uint8)
        self.row_chip = np.zeros(0, np.int32)
        self.row_models = np.zeros((0, 1), np.uint64)
        self.row_num = np.zeros((col.ROW_FIELDS, 0), np.float64)

    def __len__(self) -> int:
        return len(self.keys)

    def row_of(self, node: str, backend: str) -> int | None:
        """The row of a materialized (node, backend), or None."""
        return self._row_of.get((node, backend))

    def upsert(self, node: str, backend: str, load: BackendLoad) -> None:
        key = (node, backend)
        row = self._row_of.get(key)
        if row is None or row in self._removed:
            self._pending[key] = load
            return
        self._write_row(row, load)

    def remove_node(self, node: str) -> None:
        for key in [k for k in self._pending if k[0] == node]:
            del self._pending[key]
        for key, row in self._row_of.items():
            if key[0] == node:
                self._removed.add(row)

    def set_alive(self, node: str, alive: bool) -> None:
        for key, row in self._row_of.items():
            if key[0] == node:
                self.row_alive[row] = alive
        for key, load in list(self._pending.items()):
            if key[0] == node:
                self._pending[key] = replace(load, alive=alive)

    def add_local_inflight(self, row: int, delta: float) -> None:
        """Count a request this entry node sent to `row` (delta +1) or got back (-1). Never
        below zero: a record that arrived meanwhile rebuilt the row with a count of zero."""
        figures = self.row_num
        figures[col.ROW_LOCAL_INFLIGHT, row] = max(
            0.0, figures[col.ROW_LOCAL_INFLIGHT, row] + delta
        )

    def set_live_load(self, node: str, backend: str, load: LoadSample) -> None:
        """This node's own `backend` has these busy slots and lane queues (the service time is
        left to the record), as its admission counts them now: written over what its record
        said, now and on any rebuild."""
        key = (node, backend)
        busy, queue, _ = load
        self._live[key] = (busy, queue)
        row = self._row_of.get(key)
        if row is not None and row not in self._removed:
            self._write_load(row, busy, queue)

    def mark_full(self, row: int) -> None:
        """The backend of `row` refused a request: score it as full (every slot busy) until
        its node's next record says otherwise."""
        self.row_num[col.ROW_BUSY, row] = self.row_num[col.ROW_SLOTS, row]

    def materialize(self) -> None:
        """Fold queued additions and removals into the arrays (one rebuild for all of them)."""
        self._fit_model_words()
        if not self._pending and not self._removed:
            return
        keep = np.array([r for r in range(len(self.keys)) if r not in self._removed], dtype=np.intp)
        added = list(self._pending.items())
        n_new = len(added)
        words = self.row_models.shape[1]
        self.row_node = np.concatenate([self.row_node[keep], np.zeros(n_new, np.int32)])
        self.row_alive = np.concatenate([self.row_alive[keep], np.zeros(n_new, np.uint8)])
        self.row_chip = np.concatenate([self.row_chip[keep], np.zeros(n_new, np.int32)])
        self.row_models = np.ascontiguousarray(
            np.concatenate([self.row_models[keep], np.zeros((n_new, words), np.uint64)])
        )
        self.row_num = np.ascontiguousarray(
            np.concatenate(
                [self.row_num[:, keep], np.zeros((col.ROW_FIELDS, n_new), np.float64)], axis=1
            )
        )
        self.keys = [self.keys[r] for r in keep] + [key for key, _ in added]
        self._row_of = {key: row for row, key in enumerate(self.keys)}
        first_new = len(keep)
        for offset, (key, load) in enumerate(added):
            self.row_node[first_new + offset] = self.nodes.id_of(key[0])
            self._write_row(first_new + offset, load)
        self._pending.clear()
        self._removed.clear()

    def _write_row(self, row: int, load: BackendLoad) -> None:
        self.row_alive[row] = load.alive
        self.row_chip[row] = self.chips.id_of(load.chip)
        ids = [self.models.id_of(m) for m in load.models]
        self._fit_model_words()
        self.row_models[row] = 0
        for ident in ids:
            self.row_models[row, ident // 64] |= np.uint64(1 << (ident % 64))
        num = self.row_num
        num[col.ROW_PRICE, row] = load.price
        num[col.ROW_GREEN, row] = load.green_share
        num[col.ROW_SLOTS, row] = load.slots
        num[col.ROW_RESERVE, row] = load.emergency_reserve
        num[col.ROW_SERVICE_MS, row] = load.service_ms
        busy, queue = self._live.get(self.keys[row], (load.busy, load.queue))
        self._write_load(row, busy, queue)

    def _write_load(self, row: int, busy: float, queue: tuple[float, float, float]) -> None:
        num = self.row_num
        num[col.ROW_BUSY, row] = busy
        num[col.ROW_QUEUE_EMERGENCY, row] = queue[0]
        num[col.ROW_QUEUE_STANDARD, row] = queue[1]
        num[col.ROW_QUEUE_BATCH, row] = queue[2]

    def _fit_model_words(self) -> None:
        needed = max(1, (len(self.models) + 63) // 64)
        have = self.row_models.shape[1]
        if needed > have:
            wider: npt.NDArray[np.uint64] = np.zeros((self.row_models.shape[0], needed), np.uint64)
            wider[:, :have] = self.row_models
            self.row_models = wider
