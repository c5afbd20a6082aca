"""The last warnings and errors the daemon logged, kept in memory for `hubhop status`.

Rules:
- A logging handler on the root logger (so aiohttp's and asyncio's complaints are caught too)
  keeps the last RECENT_RECORDS records at WARNING or above, oldest dropped first.
- It never raises into the code that logs: a record that cannot be formatted is kept as its
  raw message.
- The journal keeps everything; this ring is only what an operator sees at a glance.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

# Records kept: enough to see a pattern (a peer refusing us every few seconds), few enough to
# print in a status screen.
RECENT_RECORDS = 20
# A message is cut to this many characters: a status line, not a traceback.
MAX_MESSAGE_CHARS = 300


class RecentLog(logging.Handler):
    def __init__(self, capacity: int = RECENT_RECORDS) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what was given
            message = str(record.msg)
        self.records.append(
            {
                "at": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message[:MAX_MESSAGE_CHARS],
            }
        )

    def recent(self) -> list[dict[str, Any]]:
        """The kept records, oldest first."""
        return list(self.records)

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
