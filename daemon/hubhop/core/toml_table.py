"""Reading a parsed TOML document strictly, collecting every fault instead of stopping at one.

Used by the node config (config.py) and the emulated WAN's topology (hubhop.wan.topology), so an
operator gets the same kind of message from both: `FILE: dotted.key: what is wrong`, one line per
fault, all of them at once.

Rules:
- A getter never raises: a missing required key, a wrong type or an out-of-range value is
  recorded as a fault and the getter returns the default, so reading goes on.
- Types are strict: a TOML boolean is not a number, an integer is accepted where a float is
  expected.
- A string may not be empty unless the caller says so (`allow_empty`): an empty URL, address
  or name is a typo, never a choice. A choice reports an empty value as not among the choices.
- A table that is missing (or of the wrong type) is reported once; its own required keys are
  not reported again one by one.
- `finish()` reports every key of the table that no getter asked for ("unknown key").
"""

from __future__ import annotations

import re
from typing import Any, Self


def kind(value: object) -> str:
    """A TOML value's type as a user would call it."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    if isinstance(value, dict):
        return "table"
    return names.get(type(value), type(value).__name__)


class TomlTable:
    """One TOML table being read: typed getters that record faults instead of raising."""

    def __init__(
        self, data: dict[str, Any], path: str, source: str, faults: list[str], present: bool = True
    ) -> None:
        self._data = data
        # A table that is missing or of the wrong type was reported once already; its required
        # keys are not reported again one by one.
        self._present = present
        self._path = path
        self._source = source
        self._faults = faults
        self._seen: set[str] = set()

    @property
    def fault_count(self) -> int:
        """Faults recorded so far in the whole document."""
        return len(self._faults)

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _child(self, data: dict[str, Any], path: str, present: bool = True) -> Self:
        return type(self)(data, path, self._source, self._faults, present)

    def fault(self, key: str, message: str) -> None:
        self._faults.append(f"{self._source}: {self._key(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str, required: bool = False) -> Any:
        """The raw value of `key` (None when absent), marking the key as read."""
        self._seen.add(key)
        if key not in self._data:
            if required and self._present:
                self.fault(key, "is required")
            return None
        return self._data[key]

    def raw_string(self, key: str) -> str:
        """The value of `key` if it is a string, else ""; no fault, the typed getter reports."""
        value = self._data.get(key)
        return value if isinstance(value, str) else ""

    def finish(self) -> None:
        for key in sorted(set(self._data) - self._seen):
            self.fault(key, "unknown key")

    def table(self, key: str, required: bool = False) -> Self:
        value = self.get(key, required)
        if value is not None and not isinstance(value, dict):
            self.fault(key, f"must be a table, got {kind(value)}")
            value = None
        return self._child(value or {}, self._key(key), value is not None or not required)

    def table_array(self, key: str, required: bool = False) -> list[Self]:
        value = self.get(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fault(key, f"must be an array of tables ([[{key}]]), got {kind(value)}")
            return []
        if required and not value:
            self.fault(key, "must not be empty")
        return [self._child(v, f"{self._key(key)}[{i}]") for i, v in enumerate(value)]

    def string(
        self,
        key: str,
        default: str = "",
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        allow_empty: bool = False,
    ) -> str:
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fault(key, f"must be a string, got {kind(value)}")
            return default
        if value == "":
            if not allow_empty:
                self.fault(key, "must not be empty")
            return value
        if pattern is not None and not pattern.fullmatch(value):
            self.fault(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def choice(
        self, key: str, allowed: tuple[str, ...], default: str = "", *, required: bool = False
    ) -> str:
        value = self.string(key, default, required=required, allow_empty=True)
        if self.has(key) and isinstance(self._data[key], str) and value not in allowed:
            self.fault(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fault(key, f"must be a boolean, got {kind(value)}")
            return default
        return value

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fault(key, f"must be an integer, got {kind(value)}")
            return default
        if not lo <= value <= hi:
            self.fault(key, f"{value} is out of range [{lo}, {hi}]")
        return value

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fault(key, f"must be a number, got {kind(value)}")
            return default
        if not lo <= value <= hi:  # also rejects nan
            self.fault(key, f"{value} is out of range [{lo}, {hi}]")
        return float(value)
