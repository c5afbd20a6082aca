"""A plain dict-backed RecordStore for the simulator and tests: newer version wins, nothing else."""

from __future__ import annotations

from collections.abc import Callable


class DictRecordStore:
    def __init__(self, on_store: Callable[[str, int], None] | None = None) -> None:
        self._records: dict[str, tuple[int, bytes]] = {}
        self._on_store = on_store

    def offer(self, name: str, version: int, payload: bytes) -> bool:
        held = self._records.get(name)
        if held is not None and version <= held[0]:
            return False
        self._records[name] = (version, payload)
        if self._on_store is not None:
            self._on_store(name, version)
        return True

    def get(self, name: str) -> tuple[int, bytes] | None:
        return self._records.get(name)

    def digest(self) -> dict[str, int]:
        return {name: held[0] for name, held in self._records.items()}

    def forget(self, name: str) -> None:
        self._records.pop(name, None)

    def __len__(self) -> int:
        return len(self._records)
