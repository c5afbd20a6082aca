"""Reading a node's config file: the I/O half of `hubhop.core.config`."""

from __future__ import annotations

from pathlib import Path

from hubhop.core.config import ConfigError, NodeConfig, parse_config


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate the file at `path`; raise ConfigError with one line per fault."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(text, source)
