"""Reading a node's config file: the I/O half of `hubhop.core.config`."""

from __future__ import annotations

import datetime
from pathlib import Path

from hubhop.core.config import ConfigError, GossipConfig, NodeConfig, parse_config
from hubhop.core.keyring import Keyring


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


def check_referenced_files(config: NodeConfig) -> None:
    """Read the files the config names (the gossip keyring, the emulated WAN's topology, the
    TLS files) and raise ConfigError with every fault, so a node never starts on a file it
    cannot use."""
    from hubhop.io.emulated_wan import wan_model
    from hubhop.io.keyring_state import load_gossip_keyring
    from hubhop.io.tls_files import tls_file_faults

    faults: list[str] = []
    if config.gossip is not None:
        try:
            load_gossip_keyring(config.gossip)  # the state file of a rotation, when present
        except ConfigError as error:
            faults.extend(error.faults)
    try:
        wan_model(config)
    except ConfigError as error:
        faults.extend(error.faults)
    faults.extend(tls_file_faults(config, datetime.datetime.now(datetime.UTC)))
    if faults:
        raise ConfigError(faults)


def load_keyring(gossip: GossipConfig) -> Keyring:
    """The keyring the config names; ConfigError with the file and fault when it is unusable."""
    if gossip.keys:
        return Keyring.from_base64(list(gossip.keys))
    path = Path(gossip.keyring_file)
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read keyring: {exc.strerror or exc}"]) from None
    try:
        return Keyring.from_base64([line for line in lines if line and not line.startswith("#")])
    except ValueError as exc:
        raise ConfigError([f"{path}: bad keyring: {exc}"]) from None
