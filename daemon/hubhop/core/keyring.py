"""The gossip keyring: the AES-GCM keys a node accepts, and the one it seals with.

Rules:
- Keys are raw AES keys of 16, 24 or 32 bytes (AES-128/192/256). A keyring is never empty and
  never holds the same key twice.
- Exactly one key is the primary: `SecureChannel.seal` uses it. `SecureChannel.open` tries the
  primary first, then every other installed key, so a cluster rotates without losing a message:
  install the new key on every node, then `use` it on every node, then `remove` the old one on
  every node. Each step is safe while the previous one is still rolling out.
- One AESGCM object is built per key when the key is installed, never per datagram.
- `install` of a key already held is a no-op (re-running a rotation step is harmless). `use` of a
  key not installed and `remove` of the primary or of a key not installed raise ValueError: a
  silent no-op there would leave a node sealing with, or still accepting, a key the operator
  meant to retire.
- Error messages and `repr` name keys by position or by fingerprint (a short SHA-256 prefix),
  never by their bytes: they end up in logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The AES key sizes AES-GCM takes: AES-128, AES-192 and AES-256.
KEY_SIZES: tuple[int, ...] = (16, 24, 32)
# Hex digits of SHA-256 shown by `fingerprint`: 48 bits tell an operator's handful of keys apart
# at a glance and reveal nothing useful about a 128-bit or longer key.
FINGERPRINT_HEX_CHARS = 12


def fingerprint(key: bytes) -> str:
    """A short, non-secret name for a key, for logs and status output."""
    return hashlib.sha256(key).hexdigest()[:FINGERPRINT_HEX_CHARS]


def _check_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) not in KEY_SIZES:
        raise ValueError(
            f"{what} is {len(raw)} bytes; AES-GCM keys are 16, 24 or 32 bytes "
            "(e.g. `openssl rand -base64 32`)"
        )
    return raw


class Keyring:
    """AES-GCM keys with one primary. Mutable: rotation goes through install, use and remove."""

    __slots__ = ("_aeads", "_keys", "_order", "_primary")

    def __init__(self, keys: Sequence[bytes], primary: int = 0) -> None:
        if isinstance(keys, bytes | bytearray | memoryview | str):
            raise TypeError("keys must be a sequence of keys, not a single key")
        checked = [_check_key(key, f"key {index}") for index, key in enumerate(keys)]
        if not checked:
            raise ValueError("a keyring needs at least one key")
        seen: dict[bytes, int] = {}
        for index, key in enumerate(checked):
            if key in seen:
                raise ValueError(f"key {index} is the same as key {seen[key]}")
            seen[key] = index
        if isinstance(primary, bool) or not isinstance(primary, int):
            raise TypeError(f"primary must be an index (int), not {type(primary).__name__}")
        if not 0 <= primary < len(checked):
            raise ValueError(f"primary index {primary} is out of range for {len(checked)} key(s)")
        self._keys: list[bytes] = checked
        self._aeads: dict[bytes, AESGCM] = {key: AESGCM(key) for key in checked}
        self._primary: bytes = checked[primary]
        self._order: tuple[AESGCM, ...] = ()
        self._reorder()

    @classmethod
    def from_base64(cls, keys: Sequence[str]) -> Keyring:
        """Keys in standard base64 (surrounding whitespace ignored); the first one is primary."""
        if isinstance(keys, str | bytes):
            raise TypeError("keys must be a sequence of base64 strings, not a single string")
        decoded: list[bytes] = []
        for index, text in enumerate(keys):
            if not isinstance(text, str):
                raise TypeError(f"key {index} must be a base64 str, not {type(text).__name__}")
            try:
                decoded.append(base64.b64decode(text.strip(), validate=True))
            except (binascii.Error, ValueError):
                raise ValueError(f"key {index} is not valid base64") from None
        return cls(decoded)

    @property
    def primary(self) -> bytes:
        """The key `seal` uses."""
        return self._primary

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every installed key, the primary included, in the order they were installed."""
        return tuple(self._keys)

    @property
    def aeads(self) -> tuple[AESGCM, ...]:
        """One AESGCM per key, primary first: the order `open` tries them in."""
        return self._order

    @property
    def primary_aead(self) -> AESGCM:
        return self._order[0]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key in self._aeads

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return (
            f"Keyring({len(self._keys)} key(s), primary {fingerprint(self._primary)}, "
            f"fingerprints {[fingerprint(key) for key in self._keys]})"
        )

    def install(self, key: bytes) -> None:
        """Accept `key` from now on (it does not become primary). No-op when already installed."""
        raw = _check_key(key, "key")
        if raw in self._aeads:
            return
        self._keys.append(raw)
        self._aeads[raw] = AESGCM(raw)
        self._reorder()

    def use(self, key: bytes) -> None:
        """Seal with `key` from now on; it must already be installed."""
        raw = _check_key(key, "key")
        if raw not in self._aeads:
            raise ValueError(
                f"key {fingerprint(raw)} is not installed; install it on every node before using it"
            )
        self._primary = raw
        self._reorder()

    def remove(self, key: bytes) -> None:
        """Stop accepting `key`. It must be installed and must not be the primary."""
        raw = _check_key(key, "key")
        if raw not in self._aeads:
            raise ValueError(f"key {fingerprint(raw)} is not installed, so it cannot be removed")
        if raw == self._primary:
            raise ValueError(
                f"key {fingerprint(raw)} is the primary key; use another key before removing it"
            )
        self._keys.remove(raw)
        del self._aeads[raw]
        self._reorder()

    def _reorder(self) -> None:
        primary = self._aeads[self._primary]
        others = tuple(self._aeads[key] for key in self._keys if key != self._primary)
        self._order = (primary, *others)
