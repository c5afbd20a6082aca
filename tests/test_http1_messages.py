"""The upstream client's messages without a socket: the request heads it writes and how it reads
an answer fed in pieces, down to one byte at a time."""

from __future__ import annotations

import pytest

from hubhop.io.http1_messages import (
    LAST_CHUNK,
    MAX_HEAD_BYTES,
    BrokenAnswer,
    ResponseReader,
    chunk_header,
    request_head,
)


def lines(head: bytes) -> list[str]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].decode().split("\r\n")


def test_a_head_is_request_line_host_headers_in_order_then_framing() -> None:
    head = request_head(
        "POST",
        "/v1/chat/completions?x=1",
        "127.0.0.1:8000",
        [("traceparent", "00-ab-cd-01"), ("x-a", "1"), ("x-a", "2")],
        content_length=42,
    )
    assert lines(head) == [
        "POST /v1/chat/completions?x=1 HTTP/1.1",
        "Host: 127.0.0.1:8000",
        "traceparent: 00-ab-cd-01",
        "x-a: 1",
        "x-a: 2",
        "Content-Length: 42",
    ]


@pytest.mark.parametrize(
    ("method", "length", "chunked", "framing"),
    [
        ("POST", None, True, ["Transfer-Encoding: chunked"]),
        ("POST", 0, False, ["Content-Length: 0"]),
        ("POST", None, False, ["Content-Length: 0"]),  # a POST without a body says so
        ("PUT", None, False, ["Content-Length: 0"]),
        ("GET", None, False, []),  # a GET without a body says nothing
        ("HEAD", None, False, []),
        ("DELETE", None, False, []),
    ],
)
def test_the_body_framing_follows_what_the_caller_knows(
    method: str, length: int | None, chunked: bool, framing: list[str]
) -> None:
    head = request_head(method, "/", "h", [], content_length=length, chunked=chunked)
    assert lines(head)[2:] == framing


def test_bytes_a_client_sent_pass_on_unchanged() -> None:
    # aiohttp's server hands header values on decoded as UTF-8 with surrogate escapes.
    raw = "caf\u00e9 \udcff".encode("utf-8", "surrogateescape")
    value = raw.decode("utf-8", "surrogateescape")
    head = request_head("GET", "/", "h", [("x-name", value)])
    assert b"x-name: " + raw + b"\r\n" in head


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/", [("x-a", "1\r\nx-injected: 1")]),
        ("/", [("x-a", "1\nx-injected: 1")]),
        ("/", [("x-a", "1\r")]),
        ("/ HTTP/1.1\r\nx-injected: 1\r\n\r\nGET /", []),
    ],
)
def test_a_line_break_in_a_value_or_the_target_is_refused(
    target: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError, match="line break"):
        request_head("GET", target, "h", headers)


def test_chunk_framing() -> None:
    assert chunk_header(1) == b"1\r\n"
    assert chunk_header(65536) == b"10000\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


BODY = b'{"ok": true}'
ANSWER = (
    b"HTTP/1.1 201 Created Here\r\n"
    b"Content-Type: application/json\r\n"
    b"Set-Cookie: a=1\r\n"
    b"Set-Cookie: b=2\r\n"
    b"Connection: x-hop\r\n"
    b"Content-Length: 12\r\n"
    b"\r\n" + BODY
)


def feed_bytewise(reader: ResponseReader, data: bytes) -> bytes:
    body = b""
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        body += reader.take()
    return body


def test_an_answer_of_known_length_read_a_byte_at_a_time() -> None:
    reader = ResponseReader()
    body = feed_bytewise(reader, ANSWER)
    head = reader.head
    assert head is not None
    assert (head.status, head.reason, head.content_length) == (201, "Created Here", 12)
    assert head.headers[1:3] == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]  # repeats kept
    assert head.get("content-type") == "application/json"
    assert head.get("no-such") is None
    assert head.connection == ["x-hop"]
    assert body == BODY
    assert reader.complete and reader.reusable


def test_a_chunked_answer_gives_its_pieces_as_they_come() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    head = reader.head
    assert head is not None and head.content_length is None
    assert reader.take() == b"" and not reader.complete
    reader.feed(b"6\r\ndata: \r\n")
    assert reader.take() == b"data: "
    reader.feed(b"3\r\nab")  # part of a chunk is given at once: events keep their pacing
    assert reader.take() == b"ab"
    reader.feed(b"c\r\n0\r\n\r\n")
    assert reader.take() == b"c"
    assert reader.complete and reader.reusable


def test_informational_answers_are_skipped() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    assert reader.head is None
    reader.feed(b"HTTP/1.1 204 No Content\r\nx-final: 1\r\n\r\n")
    assert reader.head is not None and reader.head.status == 204
    assert reader.head.headers == [("x-final", "1")]
    assert reader.complete and reader.reusable


def test_an_answer_without_framing_ends_with_the_connection() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome")
    reader.feed(b" text")
    assert not reader.complete
    reader.feed_eof()
    assert reader.take() == b"some text"
    assert reader.complete and not reader.reusable


def test_the_answer_to_head_ends_with_its_head() -> None:
    reader = ResponseReader(head_request=True)
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert reader.complete and reader.reusable
    assert reader.take() == b""


@pytest.mark.parametrize(
    "answer",
    [
        ANSWER + b"HTTP/1.1 200 OK\r\n",  # a second answer to one request
        ANSWER + b"garbage",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_a_connection_is_not_reused_after_an_answer_that_does_not_allow_it(answer: bytes) -> None:
    reader = ResponseReader()
    reader.feed(answer)
    assert reader.complete and not reader.reusable


def test_bytes_after_the_answer_in_a_later_read_spoil_the_connection() -> None:
    reader = ResponseReader()
    reader.feed(ANSWER)
    assert reader.reusable
    reader.feed(b"x")
    assert not reader.reusable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SMTP ready\r\n", "unreadable"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "unreadable"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "unr"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "switched protocols"),
        (b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * MAX_HEAD_BYTES, "head over"),
    ],
)
def test_a_broken_answer_is_an_error(data: bytes, message: str) -> None:
    reader = ResponseReader()
    with pytest.raises(BrokenAnswer, match=message):
        reader.feed(data)


def test_an_answer_cut_short_is_an_error_that_says_whether_anything_came() -> None:
    reader = ResponseReader()
    with pytest.raises(BrokenAnswer) as nothing:
        reader.feed_eof()
    assert nothing.value.nothing_received
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(BrokenAnswer) as half_head:
        reader.feed_eof()
    assert not half_head.value.nothing_received
    reader = ResponseReader()
    reader.feed(ANSWER[:-3])
    with pytest.raises(BrokenAnswer, match="before its answer ended"):
        reader.feed_eof()
