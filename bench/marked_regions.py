"""Regions of a markdown file that a program owns, between two HTML comments:

    <!-- bench:proxy:begin -->
    (generated: rewritten whole on every refresh)
    <!-- bench:proxy:end -->

Rules:
- A marker is a line of its own, exactly `<!-- bench:ID:begin -->` or `<!-- bench:ID:end -->`;
  an ID is lower-case letters, digits and dashes. Any other line that starts a `<!-- bench:`
  comment is a malformed marker, and an error: a typo must not leave a region silently stale.
- Regions do not nest, each ID appears once per file, and every begin has its end.
- Rewriting replaces only what lies between the markers, keeps the markers, and leaves every
  region it has no content for exactly as it is; rewriting twice gives the same text.
- Errors name the file and the line, and nothing is rewritten in a file that has one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MARKER = re.compile(r"^<!-- bench:([a-z0-9][a-z0-9-]*):(begin|end) -->$")
# Whatever starts like a marker is meant as one, and is checked against MARKER.
MARKER_LIKE = re.compile(r"^\s*<!--\s*bench:")


class MarkerError(ValueError):
    """Markers that do not pair up, or do not parse."""


@dataclass(frozen=True)
class Region:
    id: str
    # 0-based indices of the begin and end marker lines.
    begin_line: int
    end_line: int


def begin_marker(region_id: str) -> str:
    return f"<!-- bench:{region_id}:begin -->"


def end_marker(region_id: str) -> str:
    return f"<!-- bench:{region_id}:end -->"


def find_regions(text: str, source: str) -> list[Region]:
    """Every region of `text`, in order; MarkerError (naming `source` and the line) if the
    markers are malformed, nested, repeated or unbalanced."""
    regions: list[Region] = []
    seen: set[str] = set()
    open_id: str | None = None
    open_line = 0
    for index, line in enumerate(text.splitlines()):
        where = f"{source}:{index + 1}"
        if not MARKER_LIKE.match(line):
            continue
        match = MARKER.match(line.rstrip())
        if match is None:
            raise MarkerError(
                f"{where}: malformed marker {line.strip()!r}; "
                f"expected {begin_marker('ID')!r} or {end_marker('ID')!r} on a line of its own"
            )
        region_id, kind = match.groups()
        if kind == "begin":
            if open_id is not None:
                raise MarkerError(
                    f"{where}: region {region_id!r} begins inside region {open_id!r} "
                    f"(begun at line {open_line + 1}); regions do not nest"
                )
            if region_id in seen:
                raise MarkerError(f"{where}: region {region_id!r} appears twice")
            open_id, open_line = region_id, index
        else:
            if open_id != region_id:
                inside = f"inside region {open_id!r}" if open_id else "with no region open"
                raise MarkerError(f"{where}: end of region {region_id!r} {inside}")
            regions.append(Region(region_id, open_line, index))
            seen.add(region_id)
            open_id = None
    if open_id is not None:
        raise MarkerError(
            f"{source}:{open_line + 1}: region {open_id!r} begins and never ends "
            f"(add {end_marker(open_id)!r})"
        )
    return regions


def rewrite(text: str, contents: Mapping[str, str], source: str) -> str:
    """`text` with each region whose ID is in `contents` holding that content (one blank line
    after the begin marker and before the end marker, so tables and lists render), every other
    region and every line outside regions unchanged."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    position = 0
    for region in find_regions(text, source):
        if region.id not in contents:
            continue
        out += lines[position : region.begin_line + 1]
        body = contents[region.id].strip("\n")
        out.append(f"\n{body}\n\n" if body else "\n")
        position = region.end_line
    out += lines[position:]
    return "".join(out)
