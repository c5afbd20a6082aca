"""The secure channel: wire layout, every drop reason, replay windows, key rotation, fuzzing."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubhop.core.keyring import Keyring
from hubhop.core.replay import MAX_TRACKED_SENDERS, WINDOW_SEQS, ReplayGuard
from hubhop.core.secure_channel import (
    DROP_REASONS,
    MAX_DATAGRAM_BYTES,
    MAX_STREAM_BYTES,
    MIN_SEALED_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    VERSION,
    Dropped,
    SecureChannel,
)

KEY = bytes(range(32))
NEW_KEY = bytes(range(50, 82))
OTHER_KEY = bytes(range(200, 216))
EPOCH = 1_700_000_000_000_000_000  # boot time in ns, as the adapter passes it


def channel(
    sender: str, key: bytes = KEY, epoch: int = EPOCH, seed: int | None = None
) -> SecureChannel:
    rng = random.Random(seed if seed is not None else hash(sender) ^ epoch)
    return SecureChannel(Keyring([key]), sender, epoch, rng)


def drop_reason(receiver: SecureChannel, data: bytes) -> str:
    with pytest.raises(Dropped) as info:
        receiver.open(data)
    return info.value.reason


_CRAFT_NONCES = random.Random(2024)


def craft(message: Any, key: bytes = KEY, version: int = VERSION) -> bytes:
    """A datagram sealed by hand from the wire layout, around any plaintext message."""
    nonce = _CRAFT_NONCES.randbytes(NONCE_BYTES)
    plaintext = message if isinstance(message, bytes) else msgpack.packb(message)
    return bytes((version,)) + nonce + AESGCM(key).encrypt(nonce, plaintext, bytes((version,)))


# --- the wire --------------------------------------------------------------------------------


def test_round_trip() -> None:
    alice, bob = channel("alice"), channel("bob")
    for body in (b"", b"ping", bytes(range(256)) * 4):
        assert bob.open(alice.seal(body)) == ("alice", body)
    assert alice.sealed == 3
    assert bob.opened == 3
    assert not bob.drops


def test_the_wire_layout_is_the_contracts() -> None:
    sealer = SecureChannel(Keyring([KEY]), "alice", 7, random.Random(42))
    expected_nonces = random.Random(42)
    aead = AESGCM(KEY)
    for seq, body in enumerate((b"a", b"bb", b"ccc")):
        data = sealer.seal(body)
        assert data[0] == VERSION == 1
        nonce = data[1 : 1 + NONCE_BYTES]
        assert nonce == expected_nonces.randbytes(NONCE_BYTES)
        plaintext = aead.decrypt(nonce, data[1 + NONCE_BYTES :], b"\x01")
        assert msgpack.unpackb(plaintext) == ["alice", 7, seq, body]
        assert len(data) == 1 + NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert sealer.seq == 3


def test_a_hand_sealed_datagram_opens() -> None:
    assert channel("bob").open(craft(["carol", 3, 9, b"hi"])) == ("carol", b"hi")


def test_bytes_like_input_opens() -> None:
    alice, bob = channel("alice"), channel("bob")
    assert bob.open(bytearray(alice.seal(b"x"))) == ("alice", b"x")  # type: ignore[arg-type]
    assert bob.open(memoryview(alice.seal(b"y"))) == ("alice", b"y")  # type: ignore[arg-type]


def test_overhead_bounds_the_sealed_size() -> None:
    worst = SecureChannel(Keyring([KEY]), "é" * 128, 2**64 - 1, random.Random(1))
    for size in (0, 1, 100, 255, 256, 65_535, 65_536):
        assert len(worst.seal(b"\0" * size)) <= size + worst.overhead
    small = channel("a")
    budget = MAX_DATAGRAM_BYTES - small.overhead
    assert len(small.seal(b"\0" * budget)) <= MAX_DATAGRAM_BYTES


def test_sealing_a_body_past_the_stream_limit_is_refused_without_using_a_seq() -> None:
    alice = channel("alice")
    with pytest.raises(ValueError, match="exceeds MAX_STREAM_BYTES"):
        alice.seal(b"\0" * MAX_STREAM_BYTES)
    assert alice.seq == 0
    assert alice.sealed == 0


def test_a_message_of_nearly_the_stream_limit_round_trips() -> None:
    alice, bob = channel("alice"), channel("bob")
    body = b"\0" * (MAX_STREAM_BYTES - alice.overhead)
    data = alice.seal(body)
    assert len(data) <= MAX_STREAM_BYTES
    assert bob.open(data) == ("alice", body)


@pytest.mark.parametrize(
    ("sender", "epoch", "error"),
    [
        ("", 0, ValueError),
        ("x" * 129, 0, ValueError),
        ("a", -1, ValueError),
        ("a", 2**64, ValueError),
        ("a", True, TypeError),
        ("a", 1.5, TypeError),
    ],
)
def test_the_constructor_validates_sender_and_epoch(
    sender: str, epoch: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        SecureChannel(Keyring([KEY]), sender, epoch, random.Random(0))


# --- drops, before authentication --------------------------------------------------------------


def test_oversize_input_is_dropped_before_anything_else() -> None:
    bob = channel("bob")
    assert drop_reason(bob, bytes((VERSION,)) + b"\0" * MAX_STREAM_BYTES) == "oversize"
    assert drop_reason(bob, b"\x09" * (MAX_STREAM_BYTES + 1)) == "oversize"
    assert bob.drops == {"oversize": 2}


@pytest.mark.parametrize("cut", [0, 1, 13, MIN_SEALED_BYTES - 1])
def test_truncated_input_is_malformed(cut: int) -> None:
    data = channel("alice").seal(b"hello")
    assert drop_reason(channel("bob"), data[:cut]) == "malformed"


def test_truncation_that_keeps_the_minimal_length_fails_authentication() -> None:
    data = channel("alice").seal(b"hello")
    assert drop_reason(channel("bob"), data[:-1]) == "bad_key"
    assert drop_reason(channel("bob"), data[:MIN_SEALED_BYTES]) == "bad_key"


@pytest.mark.parametrize("version", [0, 2, 255])
def test_an_unknown_version_byte_is_dropped(version: int) -> None:
    data = channel("alice").seal(b"hello")
    assert drop_reason(channel("bob"), bytes((version,)) + data[1:]) == "version"
    # A future version may be shorter than this one's minimum: still "version".
    assert drop_reason(channel("bob"), bytes((version,))) == "version"


def test_input_that_is_not_bytes_is_malformed() -> None:
    bob = channel("bob")
    for data in (None, "text", 12):
        assert drop_reason(bob, data) == "malformed"  # type: ignore[arg-type]


def test_a_datagram_sealed_with_a_key_not_installed_is_bad_key() -> None:
    data = channel("alice", key=OTHER_KEY).seal(b"hello")
    bob = channel("bob")
    assert drop_reason(bob, data) == "bad_key"
    assert bob.drops == {"bad_key": 1}


def test_every_single_bit_flip_is_dropped() -> None:
    data = channel("alice").seal(b"hello")
    bob = channel("bob")
    for index in range(len(data)):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[index] ^= 1 << bit
            expected = "version" if index == 0 else "bad_key"  # nonce, ciphertext and tag alike
            assert drop_reason(bob, bytes(mutated)) == expected, (index, bit)
    assert bob.opened == 0
    assert bob.open(data) == ("alice", b"hello")  # the original was never consumed


def test_unauthenticated_input_never_reaches_msgpack(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = msgpack.unpackb

    def spy(data: bytes, **kwargs: Any) -> Any:
        calls.append(bytes(data))
        return real(data, **kwargs)

    monkeypatch.setattr(msgpack, "unpackb", spy)
    bob = channel("bob")
    good = channel("alice").seal(b"x")
    for bad in (good[:-1], good[:20] + b"\0" + good[21:], channel("c", key=OTHER_KEY).seal(b"x")):
        drop_reason(bob, bad)
    assert calls == []
    bob.open(good)
    assert len(calls) == 1


# --- drops, after authentication: the plaintext's shape ---------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x94\xa1a\x01\x02",  # a 4-list cut short
        msgpack.packb(["alice", 1, 2, b"x"]) + b"\x00",  # trailing data
        ["alice", 1, 2],
        ["alice", 1, 2, b"x", b"y"],
        ("alice", 1, 2, b"x", None),
        {"sender": "alice"},
        "alice",
        ["", 1, 2, b"x"],
        ["x" * 129, 1, 2, b"x"],
        [b"alice", 1, 2, b"x"],
        [7, 1, 2, b"x"],
        ["alice", -1, 2, b"x"],
        ["alice", 1, -2, b"x"],
        ["alice", True, 2, b"x"],
        ["alice", 1, False, b"x"],
        ["alice", 1.0, 2, b"x"],
        ["alice", 1, 2.0, b"x"],
        ["alice", None, 2, b"x"],
        ["alice", 1, 2, "x"],
        ["alice", 1, 2, None],
        ["alice", 1, 2, [b"x"]],
        b"\x94\xa5alice\x01\x02\xc7\x01\x05x",  # body is an ext type
        b"\x94\xa2\xff\xfe\x01\x02\xc4\x00",  # sender is not UTF-8
        b"\x91" * 5000 + b"\xc0",  # nesting deeper than msgpack's stack
    ],
)
def test_authenticated_plaintext_of_the_wrong_shape_is_malformed(message: Any) -> None:
    bob = channel("bob")
    assert drop_reason(bob, craft(message)) == "malformed"
    assert bob.drops == {"malformed": 1}
    assert bob.tracked_senders == 0


def test_a_name_of_128_characters_is_accepted() -> None:
    name = "n" * 128
    assert channel("bob").open(craft([name, 1, 0, b""])) == (name, b"")


# --- replay protection --------------------------------------------------------------------------


def test_the_same_datagram_twice_is_a_replay() -> None:
    data = channel("alice").seal(b"once")
    bob = channel("bob")
    assert bob.open(data) == ("alice", b"once")
    assert drop_reason(bob, data) == "replay"
    assert bob.drops == {"replay": 1}


def test_a_channel_refuses_its_own_datagrams_coming_back() -> None:
    alice = channel("alice")
    assert drop_reason(alice, alice.seal(b"reflected")) == "replay"
    other_life = channel("alice", epoch=EPOCH + 1)
    assert drop_reason(alice, other_life.seal(b"same name")) == "replay"


def test_out_of_order_within_the_window_is_accepted_once_each() -> None:
    alice, bob = channel("alice"), channel("bob")
    sealed = [alice.seal(str(seq).encode()) for seq in range(12)]
    order = [5, 2, 9, 0, 11, 1, 3, 4, 10, 6, 8, 7]
    for seq in order:
        assert bob.open(sealed[seq]) == ("alice", str(seq).encode())
    for seq in order:
        assert drop_reason(bob, sealed[seq]) == "replay"
    assert bob.opened == 12


def test_the_oldest_seq_still_in_the_window_opens_and_one_past_it_is_a_replay() -> None:
    alice, bob = channel("alice"), channel("bob")
    sealed = [alice.seal(b"") for _ in range(WINDOW_SEQS + 1)]
    bob.open(sealed[WINDOW_SEQS])  # top = 1024: the window covers seqs 1..1024
    assert drop_reason(bob, sealed[0]) == "replay"  # older than the window, never seen
    bob.open(sealed[1])  # the window's oldest seq
    assert drop_reason(bob, sealed[1]) == "replay"


def test_a_jump_wider_than_the_window_clears_it() -> None:
    bob = channel("bob")
    bob.open(craft(["alice", 1, 3, b""]))
    bob.open(craft(["alice", 1, 3 + 5 * WINDOW_SEQS, b""]))
    assert drop_reason(bob, craft(["alice", 1, 3, b""])) == "replay"
    bob.open(craft(["alice", 1, 3 + 5 * WINDOW_SEQS - 1, b""]))


def test_an_older_epoch_after_a_newer_one_is_stale() -> None:
    old_life, new_life = channel("alice", epoch=EPOCH), channel("alice", epoch=EPOCH + 10)
    bob = channel("bob")
    never_delivered = old_life.seal(b"late")
    bob.open(new_life.seal(b"rebooted"))
    assert drop_reason(bob, never_delivered) == "stale"
    assert drop_reason(bob, old_life.seal(b"old process still talking")) == "stale"
    assert bob.drops == {"stale": 2}


def test_a_newer_epoch_is_accepted_and_resets_the_window() -> None:
    old_life = channel("alice", epoch=EPOCH)
    bob = channel("bob")
    for _ in range(3 * WINDOW_SEQS):  # the old life got far along
        bob.open(old_life.seal(b""))
    new_life = channel("alice", epoch=EPOCH + 1)
    first = new_life.seal(b"seq 0 again")
    second = new_life.seal(b"seq 1")
    third = new_life.seal(b"seq 2")
    assert bob.open(third) == ("alice", b"seq 2")
    assert bob.open(first) == ("alice", b"seq 0 again")
    assert bob.open(second) == ("alice", b"seq 1")
    assert drop_reason(bob, first) == "replay"


def test_senders_have_independent_windows() -> None:
    bob = channel("bob")
    bob.open(craft(["alice", 1, 5000, b""]))
    assert bob.open(craft(["carol", 1, 0, b""])) == ("carol", b"")
    assert bob.open(craft(["dave", 0, 0, b""])) == ("dave", b"")
    assert bob.tracked_senders == 3


def test_forget_drops_a_senders_state() -> None:
    bob = channel("bob")
    data = craft(["alice", 1, 0, b"x"])
    bob.open(data)
    assert bob.tracked_senders == 1
    bob.forget("alice")
    bob.forget("never seen")
    assert bob.tracked_senders == 0
    assert bob.open(data) == ("alice", b"x")  # the sender starts over: see replay.py


def test_the_guard_evicts_the_least_recently_seen_sender() -> None:
    guard = ReplayGuard(max_senders=3)
    for name in ("a", "b", "c"):
        assert guard.admit(name, 1, 0) is None
    assert guard.admit("a", 1, 1) is None  # a is now the most recent; b the least
    assert guard.admit("d", 1, 0) is None
    assert len(guard) == 3
    assert "b" not in guard
    assert {"a", "c", "d"} == {name for name in "abcd" if name in guard}
    assert guard.admit("a", 1, 1) == "replay"  # a's window survived


def test_refused_messages_do_not_keep_a_sender_recent() -> None:
    guard = ReplayGuard(max_senders=2)
    guard.admit("a", 5, 0)
    guard.admit("b", 5, 0)
    assert guard.admit("a", 4, 0) == "stale"
    guard.admit("c", 5, 0)
    assert "a" not in guard
    assert "b" in guard


def test_the_guards_defaults_and_validation() -> None:
    guard = ReplayGuard()
    assert guard.max_senders == MAX_TRACKED_SENDERS == 65_536
    assert guard.window == WINDOW_SEQS == 1024
    with pytest.raises(ValueError, match="max_senders"):
        ReplayGuard(max_senders=0)
    with pytest.raises(ValueError, match="window"):
        ReplayGuard(window=0)


def test_the_guard_matches_a_set_based_model() -> None:
    rng = random.Random(3)
    guard = ReplayGuard(window=64)
    seen: set[int] = set()
    top = -1
    for _ in range(5000):
        seq = max(0, top + rng.randint(-80, 20))
        verdict = guard.admit("a", 1, seq)
        fresh = seq not in seen and (top < 0 or seq > top - 64)
        assert (verdict is None) == fresh, seq
        if fresh:
            seen.add(seq)
            top = max(top, seq)


# --- key rotation -------------------------------------------------------------------------------


def test_key_rotation_across_three_channels_loses_no_message() -> None:
    nodes = [channel(name) for name in ("a", "b", "c")]
    in_flight: list[tuple[SecureChannel, SecureChannel, bytes, bytes]] = []

    def exchange() -> None:
        # Deliver what was sealed before the last step, then a fresh message between every pair.
        for receiver, _sender, data, body in in_flight:
            assert receiver.open(data)[1] == body
        in_flight.clear()
        for sender in nodes:
            for receiver in nodes:
                if sender is not receiver:
                    body = f"{sender.sender}->{receiver.sender}@{sender.seq}".encode()
                    assert receiver.open(sender.seal(body)) == (sender.sender, body)
                    in_flight.append((receiver, sender, sender.seal(body), body))

    steps: list[Callable[[Keyring], None]] = [
        lambda ring: ring.install(NEW_KEY),
        lambda ring: ring.use(NEW_KEY),
        lambda ring: ring.remove(KEY),
    ]
    exchange()
    for step in steps:
        for node in nodes:  # one node at a time: the others lag a step behind
            step(node.keyring)
            exchange()
    for node in nodes:
        assert node.keyring.keys == (NEW_KEY,)
        assert not node.drops
    assert drop_reason(nodes[0], channel("old", key=KEY).seal(b"old key")) == "bad_key"


def test_after_use_a_channel_seals_with_the_new_key() -> None:
    alice = channel("alice")
    alice.keyring.install(NEW_KEY)
    assert channel("bob", key=KEY).open(alice.seal(b"1")) == ("alice", b"1")
    alice.keyring.use(NEW_KEY)
    data = alice.seal(b"2")
    assert drop_reason(channel("bob", key=KEY), data) == "bad_key"
    assert channel("bob", key=NEW_KEY).open(data) == ("alice", b"2")


def test_after_remove_the_old_key_is_bad_key() -> None:
    bob = SecureChannel(Keyring([NEW_KEY, KEY]), "bob", 1, random.Random(0))
    old = channel("alice", key=KEY)
    assert bob.open(old.seal(b"accepted")) == ("alice", b"accepted")
    bob.keyring.remove(KEY)
    assert drop_reason(bob, old.seal(b"refused")) == "bad_key"


# --- fuzzing ------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_are_only_ever_dropped(data: bytes) -> None:
    bob = channel("bob")
    with pytest.raises(Dropped) as info:
        bob.open(data)
    assert info.value.reason in {"malformed", "version", "bad_key"}
    assert sum(bob.drops.values()) == 1
    alice = channel("alice")
    assert bob.open(alice.seal(b"after garbage")) == ("alice", b"after garbage")


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("append"), st.integers(1, 64), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.just(0)),
)


def mutate(data: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in steps:
        at = where % (len(out) + 1)
        if kind == "flip" and out:
            out[at % len(out)] ^= value
        elif kind == "cut":
            del out[at:]
        elif kind == "append":
            out += bytes([value]) * where
        elif kind == "insert":
            out.insert(at, value)
        elif kind == "delete" and out:
            del out[at % len(out)]
    return bytes(out)


@FUZZ
@given(body=st.binary(max_size=300), steps=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_datagrams_are_dropped_and_state_stays_consistent(
    body: bytes, steps: list[tuple[str, int, int]]
) -> None:
    alice, bob = channel("alice"), channel("bob")
    first = alice.seal(body)
    second = alice.seal(body)
    mutated = mutate(first, steps)
    try:
        sender, opened = bob.open(mutated)
    except Dropped as drop:
        assert drop.reason in DROP_REASONS
        assert sum(bob.drops.values()) == 1
        if mutated != first:
            assert bob.open(first) == ("alice", body)  # the genuine one was never consumed
    else:
        assert mutated == first  # only the untouched datagram may open
        assert (sender, opened) == ("alice", body)
    assert bob.open(second) == ("alice", body)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=140)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=12,
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300), msgpack_values, st.lists(msgpack_values, min_size=4, max_size=4)
    )
)
def test_any_authenticated_plaintext_opens_or_is_dropped(message: Any) -> None:
    bob = channel("bob")
    try:
        sender, body = bob.open(craft(message))
    except Dropped as drop:
        assert drop.reason in {"malformed", "replay"}  # "replay": it named "bob" itself
    else:
        assert type(sender) is str
        assert type(body) is bytes
    assert bob.open(channel("alice").seal(b"next")) == ("alice", b"next")
