"""Names to small integer ids, for the kernels' int columns and model bitsets.

Ids are handed out in first-seen order and never reused, so an id in a row stays valid while
the table lives; the vocabulary only grows (model and chip names are few: dozens, not millions).
"""

from __future__ import annotations


class Vocabulary:
    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def id_of(self, name: str) -> int:
        """The id of `name`, assigning the next one when it is new."""
        found = self._ids.get(name)
        if found is None:
            found = len(self._names)
            self._ids[name] = found
            self._names.append(name)
        return found

    def lookup(self, name: str) -> int | None:
        """The id of `name`, or None when it was never seen (nothing can match it)."""
        return self._ids.get(name)

    def name_of(self, ident: int) -> str:
        return self._names[ident]
