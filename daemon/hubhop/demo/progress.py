"""The demo's progress display: a bar redrawn in place on a terminal, plain lines elsewhere.

Rules:
- On a terminal one line is redrawn (carriage return) at most every REDRAW_S; elsewhere (a log
  file, a pipe, CI) a plain line at most every LINE_EVERY_S, so a log stays short and readable.
- `done` ends a phase with one plain line in both cases, so the log keeps every phase's result.
- It writes to the stream it is given (the demo gives stderr, so the report on stdout stays
  clean) and may be called from several threads (the launchers report as processes come up).
- The bar's text comes from a pure function, `bar_line`, tested without a terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

# Wide enough to move visibly every couple of seconds of a 40 s run, narrow enough to leave
# room for the figures beside it on an 80-column terminal.
BAR_WIDTH = 24
# Five redraws a second look continuous and cost nothing.
REDRAW_S = 0.2
# A line every 5 s: a 40 s run logs 8, enough to see it move, few enough to read.
LINE_EVERY_S = 5.0


def bar_line(title: str, fraction: float, detail: str, width: int = BAR_WIDTH) -> str:
    """`title [#####.....]  40% detail`, the fraction clamped to 0..1."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return f"{title} [{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {detail}"


class Progress:
    """One phase at a time: `update` as it moves, `done` when it ends, `note` for other lines."""

    def __init__(
        self,
        stream: TextIO,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self._lock = threading.Lock()
        self._last_draw: float | None = None
        self._drawn = 0  # characters of the bar now on the terminal line (0: none)

    def update(self, title: str, fraction: float, detail: str) -> None:
        """Show the phase's progress, unless the last showing was too recent."""
        with self._lock:
            now = self.clock()
            every = REDRAW_S if self.tty else LINE_EVERY_S
            if self._last_draw is not None and now - self._last_draw < every:
                return
            self._last_draw = now
            line = bar_line(title, fraction, detail)
            if self.tty:
                padding = " " * max(0, self._drawn - len(line))
                self.stream.write(f"\r{line}{padding}")
                self._drawn = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def done(self, line: str) -> None:
        """End the phase with `line` (the bar, if drawn, is replaced by it)."""
        with self._lock:
            self._write_line(line)
            self._last_draw = None

    def note(self, line: str) -> None:
        """A line of its own, between or during phases."""
        with self._lock:
            self._write_line(line)

    def _write_line(self, line: str) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0
        self.stream.write(line + "\n")
        self.stream.flush()
