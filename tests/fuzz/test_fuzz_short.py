"""A short deterministic fuzz pass over every parser a peer, a client or a config file reaches
(the long run is `make fuzz`), and the check that no parser allocates for a length it was told
but has not seen."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator

import msgpack
import pytest

from hubhop.core import swim_messages as wire
from hubhop.core.capacity import RecordError, decode_record
from hubhop.core.demo_protocol import KServeRequestError, parse_header_length
from hubhop.core.keyring import Keyring
from hubhop.core.secure_channel import MAX_STREAM_BYTES, Dropped, SecureChannel
from hubhop.io.gossip_transport import FRAME_HEADER, _read_frame
from hubhop.io.http1_messages import BrokenAnswer, ResponseReader
from tests.fuzz.gossip_targets import KEY, _channel
from tests.fuzz.runner import all_targets, run
from tests.fuzz.target import Target

# About 2,000 inputs per target: the whole pass takes some 4 s on one core.
INPUTS_PER_TARGET = 2000


def _names() -> list[str]:
    made = all_targets()
    for target in made:
        target.close()
    return [t.name for t in made]


NAMES = _names()


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, Target]]:
    made = all_targets()
    yield {t.name: t for t in made}
    for target in made:
        target.close()


@pytest.mark.parametrize("name", NAMES)
def test_a_short_fuzz_pass_finds_no_crash(targets: dict[str, Target], name: str) -> None:
    summary = run([targets[name]], inputs=INPUTS_PER_TARGET, seed=8)
    assert summary.targets[name].inputs == INPUTS_PER_TARGET
    crashes = [f"{key} x{c['count']}: {c['error']}\n  input {c['inputs_hex'][0][:400]}"
               for key, c in summary.crashes.items()]  # fmt: skip
    assert not crashes, "\n".join(crashes)


def _peak_bytes(parse: Callable[[], object]) -> int:
    """Bytes allocated at the peak of one call, above what was held before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        parse()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _refused(parse: Callable[[], object], *errors: type[BaseException]) -> Callable[[], None]:
    def call() -> None:
        with pytest.raises(errors):
            parse()

    return call


def _sealed_plaintext(plaintext: bytes) -> bytes:
    aead = Keyring([KEY]).primary_aead
    nonce = bytes(12)
    return b"\x01" + nonce + aead.encrypt(nonce, plaintext, b"\x01")


async def _frame(data: bytes) -> bytes:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await _read_frame(reader)


ARRAY_OF_2G = b"\xdd\x7f\xff\xff\xff"  # msgpack: an array of 2**31 - 1 items follows
BIN_OF_2G = b"\xc6\x7f\xff\xff\xff"  # msgpack: 2**31 - 1 bytes follow
LYING = {
    "record claims 2**31 fields": _refused(lambda: decode_record(ARRAY_OF_2G), RecordError),
    "record bin claims 2 GiB": _refused(lambda: decode_record(BIN_OF_2G + b"x"), RecordError),
    "datagram claims 2**31 messages": lambda: wire.decode_datagram(ARRAY_OF_2G, Counter()),
    "stream claims 2**31 states": _refused(
        lambda: wire.decode_stream(b"\x95\x0a\xc3" + ARRAY_OF_2G), wire.MessageError
    ),
    "sealed plaintext claims a 2 GiB body": _refused(
        lambda: _channel("me", 1).open(_sealed_plaintext(b"\x94\xa2p1\x01\x01" + BIN_OF_2G + b"x")),
        Dropped,
    ),
    "frame claims 32 MiB, sends 10 bytes": _refused(
        lambda: asyncio.run(_frame(FRAME_HEADER.pack(MAX_STREAM_BYTES) + bytes(10))),
        asyncio.IncompleteReadError,
    ),
    "kserve header claims 4 GiB": _refused(
        lambda: parse_header_length("4294967295", 100, 64 << 20), KServeRequestError
    ),
    "answer claims 10**18 body bytes": lambda: _answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\nabc"
    ),
}


def _answer(data: bytes) -> None:
    reader = ResponseReader()
    reader.feed(data)
    with pytest.raises(BrokenAnswer):
        reader.feed_eof()


@pytest.mark.parametrize("case", list(LYING))
def test_no_parser_allocates_for_a_length_it_has_not_seen(case: str) -> None:
    assert _peak_bytes(LYING[case]) < 1 << 20  # 1 MiB: the claims are 10 MiB to 2 GiB


def test_the_plaintext_case_reaches_the_decoder() -> None:
    """The lying plaintext above authenticates: its refusal is the decoder's ("malformed")."""
    channel = _channel("me", 1)
    with pytest.raises(Dropped) as caught:
        channel.open(_sealed_plaintext(b"\x94\xa2p1\x01\x01" + BIN_OF_2G + b"x"))
    assert caught.value.reason == "malformed"
    ok = msgpack.packb(["p1", 1, 1, b"body"])
    assert channel.open(_sealed_plaintext(ok)) == ("p1", b"body")
    assert isinstance(channel, SecureChannel)
