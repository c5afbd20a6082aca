"""The secure channel: every gossip datagram and push-pull stream message is sealed with AES-GCM.

Wire format (one sealed message):

    VERSION (1 byte, = 1) | nonce (12 bytes) | AES-GCM ciphertext of the plaintext, with its tag

    plaintext = msgpack [sender: str (1..128 chars), epoch: int >= 0, seq: int >= 0, body: bytes]
    associated data = the VERSION byte

Rules:
- Nonces are 12 bytes from the injected rng (`random.Random`). GCM needs them unique per key, not
  secret: give every node its own rng seeded from the OS (`random.Random()` does), never one
  fixed seed shared by nodes that share a key.
- `epoch` is given by the caller (the adapter passes the boot time in ns: it grows across
  restarts); `seq` starts at 0 and grows by 1 per sealed message.
- `open` checks, in this order: size ("oversize", before any crypto), empty input ("malformed"),
  the version byte ("version"), minimal length ("malformed"); then it authenticates with the
  primary key, then every other installed key ("bad_key" when none fits: a wrong key and a
  tampered byte look the same); only authenticated plaintext reaches msgpack, and it must be
  exactly the 4-element list above ("malformed"); last, replay protection per sender (see
  replay.py: "stale", "replay").
- A message naming this channel's own sender is one this channel sealed, coming back (a
  reflection, or a node listed as its own seed): "replay".
- Nothing a peer sends raises anything but `Dropped`; every drop is counted in `drops`.
- The same seal/open serves UDP datagrams (the caller keeps them under MAX_DATAGRAM_BYTES) and
  stream messages (framing is the adapter's).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Final

import msgpack
from cryptography.exceptions import InvalidTag

from hubhop.core.keyring import Keyring
from hubhop.core.replay import ReplayGuard

# The wire format's version. A new layout gets a new number; old nodes drop it as "version".
VERSION: Final = 1
_VERSION_BYTE: Final = bytes((VERSION,))
# GCM's standard nonce size: 96 bits is the size GCM uses without an extra GHASH step.
NONCE_BYTES: Final = 12
# GCM's full 128-bit tag; shorter tags weaken authentication.
TAG_BYTES: Final = 16
_HEADER_BYTES: Final = 1 + NONCE_BYTES
# The shortest input that can authenticate: version, nonce, tag (empty ciphertext).
MIN_SEALED_BYTES: Final = _HEADER_BYTES + TAG_BYTES
# Sealed size a UDP datagram may have: fits a 1500-byte MTU with IPv6 (40) and UDP (8) headers
# and room for tunnels (VXLAN, GRE, WireGuard) on the path, so gossip is never fragmented.
MAX_DATAGRAM_BYTES: Final = 1400
# Sealed size of one push-pull stream message: a full capacity table of thousands of nodes fits
# with a wide margin, and a peer cannot make a node buffer more than this per stream.
MAX_STREAM_BYTES: Final = 32 * 1024 * 1024
# A node name's length bound (characters), as the config allows.
MAX_SENDER_CHARS: Final = 128
# msgpack encodes unsigned integers up to 64 bits; epochs and seqs stay below.
_MAX_UINT64: Final = (1 << 64) - 1
# Bytes msgpack may spend around the sender name and the body: array header (1), epoch and seq
# (9 each at most), bin header (5 at most).
_PACK_OVERHEAD: Final = 1 + 9 + 9 + 5

DROP_REASONS: Final = ("malformed", "version", "oversize", "bad_key", "replay", "stale")


class Dropped(Exception):
    """A message that was refused; `reason` is one of DROP_REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_sender(sender: object) -> str:
    if not isinstance(sender, str):
        raise TypeError(f"sender must be a str, not {type(sender).__name__}")
    if not 1 <= len(sender) <= MAX_SENDER_CHARS:
        raise ValueError(f"sender must be 1 to {MAX_SENDER_CHARS} characters, not {len(sender)}")
    return sender


class SecureChannel:
    """Seals outgoing messages and opens incoming ones for one node."""

    def __init__(self, keyring: Keyring, sender: str, epoch: int, rng: random.Random) -> None:
        if not isinstance(keyring, Keyring):
            raise TypeError(f"keyring must be a Keyring, not {type(keyring).__name__}")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, not {type(epoch).__name__}")
        if not 0 <= epoch <= _MAX_UINT64:
            raise ValueError(f"epoch must be in 0..2**64-1, not {epoch}")
        self.keyring = keyring
        self._sender = _check_sender(sender)
        self._sender_packed = msgpack.packb(self._sender)
        self._epoch = epoch
        self._seq = 0
        self._rng = rng
        self._replay = ReplayGuard()
        self.drops: Counter[str] = Counter()
        self.sealed = 0
        self.opened = 0

    @property
    def sender(self) -> str:
        return self._sender

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def seq(self) -> int:
        """The seq the next sealed message will carry."""
        return self._seq

    @property
    def overhead(self) -> int:
        """At most how many bytes `seal` adds to a body: size a datagram's body against this."""
        return _HEADER_BYTES + TAG_BYTES + len(self._sender_packed) + _PACK_OVERHEAD

    @property
    def tracked_senders(self) -> int:
        """Senders whose replay state is held."""
        return len(self._replay)

    def seal(self, body: bytes) -> bytes:
        """The sealed message carrying `body`. ValueError when it would exceed MAX_STREAM_BYTES."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"body must be bytes, not {type(body).__name__}")
        plaintext = msgpack.packb([self._sender, self._epoch, self._seq, bytes(body)])
        size = _HEADER_BYTES + len(plaintext) + TAG_BYTES
        if size > MAX_STREAM_BYTES:
            raise ValueError(
                f"a sealed message of {size} bytes exceeds MAX_STREAM_BYTES ({MAX_STREAM_BYTES})"
            )
        nonce = self._rng.randbytes(NONCE_BYTES)
        sealed = self.keyring.primary_aead.encrypt(nonce, plaintext, _VERSION_BYTE)
        self._seq += 1
        self.sealed += 1
        return b"".join((_VERSION_BYTE, nonce, sealed))

    def open(self, data: bytes) -> tuple[str, bytes]:
        """(sender, body) of an authentic, fresh message; else raises Dropped, and counts it."""
        try:
            return self._open(data)
        except Dropped as drop:
            self.drops[drop.reason] += 1
            raise

    def forget(self, sender: str) -> None:
        """Drop the replay state of `sender` (a reaped member)."""
        self._replay.forget(sender)

    def _open(self, data: bytes) -> tuple[str, bytes]:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise Dropped("malformed")
        try:
            view = memoryview(data).cast("B")
        except TypeError:  # a non-contiguous buffer: not something a socket hands over
            raise Dropped("malformed") from None
        if len(view) > MAX_STREAM_BYTES:
            raise Dropped("oversize")
        if len(view) == 0:
            raise Dropped("malformed")
        if view[0] != VERSION:
            raise Dropped("version")
        if len(view) < MIN_SEALED_BYTES:
            raise Dropped("malformed")
        nonce = view[1:_HEADER_BYTES]
        ciphertext = view[_HEADER_BYTES:]
        plaintext = self._authenticate(nonce, ciphertext)
        sender, epoch, seq, body = self._decode(plaintext)
        if sender == self._sender:
            raise Dropped("replay")
        verdict = self._replay.admit(sender, epoch, seq)
        if verdict is not None:
            raise Dropped(verdict)
        self.opened += 1
        return sender, body

    def _authenticate(self, nonce: memoryview, ciphertext: memoryview) -> bytes:
        for aead in self.keyring.aeads:
            try:
                return aead.decrypt(nonce, ciphertext, _VERSION_BYTE)
            except InvalidTag:
                continue
        raise Dropped("bad_key")

    @staticmethod
    def _decode(plaintext: bytes) -> tuple[str, int, int, bytes]:
        try:
            message = msgpack.unpackb(plaintext, raw=False, use_list=True, strict_map_key=True)
        except Exception:  # msgpack raises several types on bad input; all mean the same here
            raise Dropped("malformed") from None
        if type(message) is not list or len(message) != 4:
            raise Dropped("malformed")
        sender, epoch, seq, body = message
        if (
            type(sender) is not str
            or not 1 <= len(sender) <= MAX_SENDER_CHARS
            or type(epoch) is not int
            or epoch < 0
            or type(seq) is not int
            or seq < 0
            or type(body) is not bytes
        ):
            raise Dropped("malformed")
        return sender, epoch, seq, body
