"""The gossip keyring on disk: where a node's keyring comes from at start, and where a rotation
(`hubhop keys`) is kept so that a restarted node still holds it.

Rules:
- At start, `[gossip] keyring_state_file` wins when that file exists: it holds the keyring as
  the last rotation left it. Otherwise the keyring is `keys` or `keyring_file` (under systemd a
  LoadCredential= file, read-only), which is then only the first seed. An unreadable or bad
  state file stops the start (ConfigError naming it) rather than falling back to the seed, which
  may hold a key the cluster has retired; deleting the file reseeds from the credential.
- The state file is written on every change of the keyring, never at start (until the first
  rotation, a node follows its credential): the same format as a keyring file, one base64 key
  per line, the primary first, written to a temporary file in the same directory (mode 0600),
  flushed to disk and renamed over the old one, so a crash leaves the old or the new keyring,
  never half of one.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

from hubhop.core.config import GossipConfig
from hubhop.core.key_commands import KeyringSaver
from hubhop.core.keyring import Keyring
from hubhop.io.config_file import load_keyring

STATE_FILE_MODE = 0o600  # keys: readable by the daemon's user only
HEADER = "# hubhop gossip keyring, written by the daemon at each rotation; the first key is primary"


def load_gossip_keyring(gossip: GossipConfig) -> tuple[Keyring, str]:
    """The keyring a node starts with, and where it came from (for logs and status)."""
    state = gossip.keyring_state_file
    if state and os.path.lexists(state):
        seeded = dataclasses.replace(gossip, keys=(), keyring_file=state)
        return load_keyring(seeded), f"keyring_state_file {state}"
    if gossip.keyring_file:
        return load_keyring(gossip), f"keyring_file {gossip.keyring_file}"
    return load_keyring(gossip), "keys (inline)"


def save_keyring(path: str | Path, keyring: Keyring) -> None:
    """Write `keyring` to `path` atomically (tmp file, fsync, rename); OSError on failure."""
    target = Path(path)
    ordered = [keyring.primary, *(key for key in keyring.keys if key != keyring.primary)]
    text = "\n".join([HEADER, *(base64.b64encode(key).decode() for key in ordered)]) + "\n"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, STATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(fd, STATE_FILE_MODE)  # a leftover tmp file keeps its mode through O_TRUNC
            out.write(text)
            out.flush()
            os.fsync(fd)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def keyring_saver(path: str) -> KeyringSaver:
    """The hook key commands call after a change: None when saved, else why not."""

    def save(keyring: Keyring) -> str | None:
        try:
            save_keyring(path, keyring)
        except OSError as exc:
            return f"{path}: {exc.strerror or exc}"
        return None

    return save
