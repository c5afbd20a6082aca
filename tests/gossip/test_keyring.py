"""The keyring: validation with clear messages, base64 loading, and the rotation operations."""

from __future__ import annotations

import base64

import pytest

from hubhop.core.keyring import Keyring, fingerprint

K16 = bytes(range(16))
K24 = bytes(range(24))
K32 = bytes(range(32))
OTHER = bytes(range(100, 132))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.mark.parametrize("key", [K16, K24, K32])
def test_every_aes_key_size_is_accepted(key: bytes) -> None:
    ring = Keyring([key])
    assert ring.primary == key
    assert ring.keys == (key,)
    assert len(ring.aeads) == 1


@pytest.mark.parametrize("size", [0, 1, 15, 17, 20, 31, 33, 64])
def test_a_key_of_the_wrong_length_is_refused_with_its_position_and_size(size: int) -> None:
    with pytest.raises(ValueError, match=rf"key 1 is {size} bytes; AES-GCM keys are 16, 24 or 32"):
        Keyring([K32, b"x" * size])


def test_an_empty_keyring_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Keyring([])


def test_a_duplicate_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key 2 is the same as key 0"):
        Keyring([K32, OTHER, K32])


@pytest.mark.parametrize("primary", [-1, 2, 5])
def test_a_primary_index_out_of_range_is_refused(primary: int) -> None:
    with pytest.raises(ValueError, match=rf"primary index {primary} is out of range for 2 key"):
        Keyring([K32, OTHER], primary=primary)


def test_a_key_that_is_not_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="key 0 must be bytes, not str"):
        Keyring(["not bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of keys"):
        Keyring(K32)  # type: ignore[arg-type]


def test_primary_can_be_any_installed_key_and_is_tried_first() -> None:
    ring = Keyring([K16, K32, OTHER], primary=1)
    assert ring.primary == K32
    assert ring.keys == (K16, K32, OTHER)
    assert ring.aeads[0] is ring.primary_aead
    assert len(ring.aeads) == 3


def test_from_base64_decodes_in_order_with_the_first_as_primary() -> None:
    ring = Keyring.from_base64([b64(K32), f"  {b64(K16)}\n"])
    assert ring.primary == K32
    assert ring.keys == (K32, K16)


@pytest.mark.parametrize("text", ["not base64!", "AAA", "QUJD=RA==", "@@@@"])
def test_from_base64_refuses_bad_base64_without_echoing_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="key 1 is not valid base64") as info:
        Keyring.from_base64([b64(K32), text])
    assert text not in str(info.value)


def test_from_base64_refuses_a_well_formed_key_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="key 0 is 10 bytes"):
        Keyring.from_base64([b64(b"0123456789")])


def test_from_base64_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Keyring.from_base64([])


def test_install_adds_a_key_without_changing_the_primary_and_is_idempotent() -> None:
    ring = Keyring([K32])
    ring.install(OTHER)
    ring.install(OTHER)
    assert ring.keys == (K32, OTHER)
    assert ring.primary == K32
    assert OTHER in ring
    assert len(ring) == 2


def test_install_validates_the_key() -> None:
    ring = Keyring([K32])
    with pytest.raises(ValueError, match="key is 5 bytes"):
        ring.install(b"short")


def test_use_makes_an_installed_key_primary() -> None:
    ring = Keyring([K32, OTHER])
    before = ring.aeads
    ring.use(OTHER)
    assert ring.primary == OTHER
    assert ring.aeads == (before[1], before[0])  # the same AESGCM objects, reordered


def test_using_a_key_that_is_not_installed_is_refused() -> None:
    ring = Keyring([K32])
    with pytest.raises(ValueError, match=rf"key {fingerprint(OTHER)} is not installed; install"):
        ring.use(OTHER)
    assert ring.primary == K32


def test_removing_the_primary_is_refused() -> None:
    ring = Keyring([K32, OTHER])
    with pytest.raises(ValueError, match="is the primary key; use another key before removing"):
        ring.remove(K32)
    assert ring.keys == (K32, OTHER)


def test_removing_a_key_that_is_not_installed_is_refused() -> None:
    ring = Keyring([K32])
    with pytest.raises(ValueError, match="is not installed, so it cannot be removed"):
        ring.remove(OTHER)


def test_remove_drops_a_secondary_key() -> None:
    ring = Keyring([K32, OTHER])
    ring.remove(OTHER)
    assert ring.keys == (K32,)
    assert OTHER not in ring
    assert len(ring.aeads) == 1


def test_repr_names_keys_by_fingerprint_never_by_their_bytes() -> None:
    ring = Keyring([K32, OTHER])
    text = repr(ring)
    assert fingerprint(K32) in text
    assert fingerprint(OTHER) in text
    assert K32.hex() not in text
    assert b64(K32) not in text
    assert repr(K32) not in text
