"""A proof that a call one daemon passes to another's gRPC server comes from a member.

HTTP forwarding knows a member by the address its request comes from (a member's record names
it, or its client certificate under mutual TLS). A gRPC channel cannot choose the address it
leaves from, so on a host with many addresses (a lab on 127.0.0.0/8) a peer's call arrives from
an address no record names. The sender proves membership instead with what only members hold:
the gossip keyring.

Rules:
- The proof is "MILLISECONDS.HEX": an HMAC-SHA256, under a key derived from the keyring's
  primary key, of the sender, the target (node/backend), the method and the wall-clock time.
  The receiver accepts it under any key of its keyring (a rotation in progress) within
  PROOF_WINDOW_MS of its own clock; anything else is refused with the reason.
- The derived key is never the gossip key itself: a proof reveals nothing usable on the gossip
  socket.
- It binds who sent what where and when, not the body: in plain text (a lab) it is as good as
  the source-address check HTTP forwarding makes. Under mutual TLS gRPC forwarding is not
  offered yet (hubhop.core.kserve_grpc_config).
- Pure: the keys and the time are arguments.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

# Members' clocks agree within a second under NTP; 30 s more covers a loaded node's wait before
# it reads the call, and bounds how long a seen proof could be replayed.
PROOF_WINDOW_MS = 30_000
_LABEL = b"hubhop grpc peer proof v1"
MAX_PROOF_LENGTH = 100  # 20 digits, a dot, 64 hex digits: anything longer is not a proof


def _derived(key: bytes) -> bytes:
    return hmac.new(key, _LABEL, hashlib.sha256).digest()


def _mac(key: bytes, sender: str, target: str, method: str, at_ms: int) -> str:
    message = "\n".join((sender, target, method, str(at_ms))).encode()
    return hmac.new(_derived(key), message, hashlib.sha256).hexdigest()


def peer_proof(key: bytes, sender: str, target: str, method: str, now_ms: int) -> str:
    """The proof `sender` attaches to a call of `method` for `target`, made at `now_ms`."""
    return f"{now_ms}.{_mac(key, sender, target, method, now_ms)}"


def proof_refusal(
    keys: Iterable[bytes], proof: str | None, sender: str, target: str, method: str, now_ms: int
) -> str | None:
    """Why `proof` does not show `sender` a member; None when it does."""
    if not proof:
        return "a call between daemons needs its peer proof"
    if len(proof) > MAX_PROOF_LENGTH:
        return "the peer proof is malformed"
    stamp, _, mac = proof.partition(".")
    if not (stamp.isascii() and stamp.isdigit()):
        return "the peer proof is malformed"
    at_ms = int(stamp)
    if abs(now_ms - at_ms) > PROOF_WINDOW_MS:
        return f"the peer proof is {abs(now_ms - at_ms) / 1000:.0f} s off this node's clock"
    for key in keys:
        if hmac.compare_digest(_mac(key, sender, target, method, at_ms), mac):
            return None
    return f"the peer proof does not show {sender!r} holds this cluster's keyring"
