"""HTTP/1.1 messages to and from an upstream, without the connection: the request head this
proxy writes, the framing of a streamed request body, and the answer read back with httptools
(Python bindings of llhttp, Node.js's parser).

Rules:
- A request head is the request line, `Host` (the upstream's, from its URL), the headers the
  caller passes (it has already dropped the hop-by-hop ones: hubhop.core.headers), then the
  framing: `Content-Length` for a body of known length, `Transfer-Encoding: chunked` for a body
  streamed without one, `Content-Length: 0` for a method that carries a body but has none, and
  nothing for a body-less GET, HEAD, OPTIONS, TRACE or DELETE.
- A CR or LF in the target or in a header would split the head: such a head is refused
  (ValueError), never written.
- Header text is decoded and encoded as UTF-8 with surrogate escapes, as aiohttp's server
  decodes it, so whatever bytes a client or an upstream sent pass on unchanged.
- Informational answers (1xx) are skipped: the final answer is the one that counts. A 101
  (switching protocols) is a broken answer: this proxy never asks for an upgrade.
- An answer's head is bounded (MAX_HEAD_BYTES); a longer one is a broken answer.
- An answer ends at its Content-Length, at its last chunk, or, with neither, where the
  connection ends; the answer to a HEAD request ends with its head.
- The connection may carry another exchange only when the answer ended where its framing said,
  allowed keep-alive, and nothing followed it.
"""

from __future__ import annotations

from collections.abc import Iterable

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

# aiohttp's server and client refuse a header line longer than 8 KiB; a whole head of 64 KiB
# holds dozens of such lines, so a longer one is a broken or hostile upstream, not a real answer.
MAX_HEAD_BYTES = 64 * 1024

# Methods whose requests carry no body when none is given: no framing header is sent (as curl
# and aiohttp do). Every other method gets `Content-Length: 0` so the upstream knows at once.
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "DELETE"})

LAST_CHUNK = b"0\r\n\r\n"
CHUNK_END = b"\r\n"


def request_head(
    method: str,
    target: str,
    host: str,
    headers: Iterable[tuple[str, str]],
    content_length: int | None = None,
    chunked: bool = False,
) -> bytes:
    """The request head for `method target` to `host` (its `Host` value, port included when
    not 80). `content_length`: the body's length when known; `chunked`: a body follows without
    one (framed with `chunk_header`/CHUNK_END and ended by LAST_CHUNK); neither: no body."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}\r\n")
    elif method not in BODYLESS_METHODS:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # Every line break is one this function wrote: a CR or LF smuggled in a value (or the target)
    # would add one. Counting both in C is cheaper than looking into every value.
    breaks = len(lines) + 1  # two on the request line (it carries Host), one per other line
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise ValueError("a request header or the target holds a line break")
    return text.encode("utf-8", "surrogateescape")


def chunk_header(size: int) -> bytes:
    """What goes before a chunk of `size` (> 0) bytes of a chunked body; CHUNK_END goes after."""
    return b"%x\r\n" % size


class BrokenAnswer(Exception):
    """The upstream's answer cannot be read to its end: the exchange failed.
    `nothing_received`: the upstream sent not one byte of an answer."""

    def __init__(self, message: str, nothing_received: bool = False) -> None:
        super().__init__(message)
        self.nothing_received = nothing_received


class AnswerHead:
    """The status line and headers of an upstream's final answer."""

    __slots__ = ("connection", "content_length", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        content_length: int | None,
        connection: list[str],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # in order, repeats kept
        self.content_length = content_length  # None: chunked or until the connection ends
        self.connection = connection  # the values of its Connection header(s)

    def get(self, name: str) -> str | None:
        """The first value of header `name` (given in lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class ResponseReader:
    """One upstream answer, read from the bytes `feed` is given (and `feed_eof` at the
    connection's end). What it read so far: `head` once the head is in, the body's bytes
    through `take`, `complete` once the answer ended, and then `reusable`."""

    __slots__ = (
        "_body",
        "_connection",
        "_head_bytes",
        "_headers",
        "_length",
        "_parser",
        "_reason",
        "_skip_body",
        "_until_eof",
        "buffered",
        "complete",
        "head",
        "reusable",
    )

    def __init__(self, head_request: bool = False) -> None:
        self._parser = HttpResponseParser(self)
        self._skip_body = head_request
        self._headers: list[tuple[str, str]] = []
        self._connection: list[str] = []
        self._length: int | None = None
        self._reason = b""
        self._head_bytes = 0
        self._until_eof = False
        self._body: list[bytes] = []
        self.buffered = 0  # body bytes received and not yet taken
        self.head: AnswerHead | None = None
        self.complete = False
        self.reusable = False

    def feed(self, data: bytes) -> None:
        """Read `data`, the next bytes from the upstream. Raises BrokenAnswer."""
        if self.complete:
            self.reusable = False  # bytes after the answer: the upstream is out of step
            return
        if self.head is None:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            if self.complete:  # what followed the answer is not ours to read
                self.reusable = False
                return
            cause = exc.__context__ if isinstance(exc.__context__, BrokenAnswer) else exc
            raise BrokenAnswer(f"unreadable answer: {cause}") from None
        if self.head is None and self._head_bytes > MAX_HEAD_BYTES:
            raise BrokenAnswer(f"answer head over {MAX_HEAD_BYTES} bytes")

    def feed_eof(self) -> None:
        """The upstream closed the connection. Raises BrokenAnswer unless that ended it."""
        if self.complete:
            return
        if self.head is not None and self._until_eof:
            self._end(reusable=False)
            return
        if self.head is None:
            raise BrokenAnswer(
                "the upstream closed the connection without answering",
                nothing_received=self._head_bytes == 0,
            )
        raise BrokenAnswer("the upstream closed the connection before its answer ended")

    @property
    def started(self) -> bool:
        """Some of the answer has come."""
        return self._head_bytes > 0 or self.head is not None

    def take(self) -> bytes:
        """The body bytes received since the last call (b"" if none)."""
        body = self._body
        if not body:
            return b""
        self._body = []
        self.buffered = 0
        return body[0] if len(body) == 1 else b"".join(body)

    # httptools callbacks (llhttp calls them while `feed` runs).

    def on_message_begin(self) -> None:
        if self.complete:
            self.reusable = False  # a second answer to one request

    def on_status(self, reason: bytes) -> None:
        self._reason += reason  # in pieces, as the bytes came

    def on_header(self, name: bytes, value: bytes) -> None:
        text = name.decode("utf-8", "surrogateescape")
        decoded = value.decode("utf-8", "surrogateescape")
        self._headers.append((text, decoded))
        # Two headers shape the message itself; the length test skips the rest cheaply.
        if len(name) == 14 and name.lower() == b"content-length":
            self._length = int(value)  # llhttp has checked it is a number, and only one
        elif len(name) == 10 and name.lower() == b"connection":
            self._connection.append(decoded)

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise BrokenAnswer("the upstream switched protocols, which was not asked for")
            self._headers, self._connection, self._length = [], [], None  # skipped
            self._reason = b""
            return
        length = self._length
        self._until_eof = (
            length is None
            and not self._skip_body
            and status not in (204, 304)
            and not any(
                k.lower() == "transfer-encoding" and v.lower().endswith("chunked")
                for k, v in self._headers
            )
        )
        reason = self._reason.decode("utf-8", "surrogateescape")
        self.head = AnswerHead(status, reason, self._headers, length, self._connection)
        if self._skip_body:
            self._end(reusable=self._parser.should_keep_alive())

    def on_body(self, data: bytes) -> None:
        if self.complete:  # a body after the head of an answer to HEAD
            self.reusable = False
            return
        self._body.append(data)
        self.buffered += len(data)

    def on_message_complete(self) -> None:
        if self.head is None or self.complete:
            return  # the end of a skipped 1xx answer, or what follows a HEAD answer
        self._end(reusable=self._parser.should_keep_alive())

    def _end(self, reusable: bool) -> None:
        self.complete = True
        self.reusable = reusable
