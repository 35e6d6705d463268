"""Framing of the burn protocol: the blank-line terminator, escaping inside free text, `encode`,
and the per-connection `Decoder` that turns received bytes into messages or errors."""

from __future__ import annotations

from wire.burnproto.errors import (
    BadUtf8,
    DecoderClosedError,
    EmptyFrame,
    EncodeError,
    FieldCount,
    FrameTooLarge,
    ProtocolError,
    Truncated,
    UnknownVerb,
)
from wire.burnproto.fields import MAX_FRAME, TERMINATOR, _shown
from wire.burnproto.messages import _BY_VERB, Event, Message


def escape_field(text: str) -> str:
    """Make free text safe inside a frame.

    A blank line would end the frame, so after every CRLF a line made only of spaces (including
    the empty line) gets one more space: a blank line travels as `\\r\\n \\r\\n` (seed 004) and
    a line that really was one space travels as two, which keeps the round trip exact.
    """
    if "\r\n" not in text:
        return text
    lines = text.split("\r\n")
    for i in range(1, len(lines)):
        if not lines[i].strip(" "):
            lines[i] += " "
    return "\r\n".join(lines)


def unescape_field(text: str) -> str:
    """Reverse `escape_field`: a space-only line after a CRLF loses one space."""
    if "\r\n" not in text:
        return text
    lines = text.split("\r\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if line and not line.strip(" "):
            lines[i] = line[:-1]
    return "\r\n".join(lines)


def encode(message: Message) -> bytes:
    """The bytes of one frame, terminator included.

    Raises `EncodeError` for a field holding a tab (the protocol has no way to carry one), for
    text that is not valid Unicode, and for a frame larger than `MAX_FRAME`, which the peer
    would refuse.
    """
    parts = [message.VERB]
    for index, arg in enumerate(message._args(), start=1):
        if "\t" in arg:
            raise EncodeError(
                f"{message.VERB} field {index} contains a tab, which the burn protocol "
                "cannot carry; replace it before sending"
            )
        parts.append(escape_field(arg))
    try:
        body = "\t".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{message.VERB} holds text that is not valid Unicode: {exc}") from None
    if len(body) > MAX_FRAME:
        raise EncodeError(f"{message.VERB} frame is {len(body)} bytes; the limit is {MAX_FRAME}")
    return body + TERMINATOR


def parse_frame(frame: bytes) -> Event:
    """One frame body (terminator removed) as a message, or the `ProtocolError` it deserves."""
    try:
        return _parse(frame)
    except ProtocolError as error:
        error.frame = frame
        return error


def _parse(frame: bytes) -> Message:
    if not frame:
        raise EmptyFrame("empty frame: a blank line with no verb before it")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUtf8(f"frame is not valid UTF-8 (byte {exc.start})") from None
    verb, *raw = text.split("\t")
    cls = _BY_VERB.get(verb)
    if cls is None:
        raise UnknownVerb(f"unknown verb {_shown(verb)}")
    fewest, most = cls.ARITY
    if len(raw) < fewest or (most is not None and len(raw) > most):
        # Only fixed-size verbs get here: every variadic verb takes zero fields or more.
        wanted = str(fewest) if fewest == most else f"{fewest} or {most}"
        raise FieldCount(f"{verb} takes {wanted} field(s) after the verb, got {len(raw)}")
    return cls._from_args([unescape_field(a) for a in raw])


def _partial_terminator(buf: bytearray) -> int:
    """How many bytes at the end of `buf` could be the start of a terminator still arriving."""
    if buf.endswith(b"\r\n\r"):
        return 3
    if buf.endswith(b"\r\n"):
        return 2
    if buf.endswith(b"\r"):
        return 1
    return 0


class Decoder:
    """Turns the bytes of one connection into events, whatever way the bytes are split.

    Malformed frames become `ProtocolError` events and decoding goes on with the next frame.
    A frame body over `MAX_FRAME` bytes becomes one `FrameTooLarge` event as soon as that is
    certain (without waiting for a terminator); the decoder is then closed, and any later
    `feed` raises `DecoderClosedError`, because the server answers ERROR and hangs up.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max_frame = max_frame
        self._buf = bytearray()
        # Where the terminator search resumes, so small feeds never rescan the buffer.
        self._scan = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes held for a frame whose terminator has not arrived yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        if self._closed:
            raise DecoderClosedError("the decoder is closed; the connection should be too")
        buf = self._buf
        buf += data
        events: list[Event] = []
        start = 0
        scan = self._scan
        while (end := buf.find(TERMINATOR, scan)) >= 0:
            if end - start > self._max_frame:
                events.append(self._too_large(end - start))
                return events
            events.append(parse_frame(bytes(buf[start:end])))
            start = scan = end + len(TERMINATOR)
        # At least this much of the pending frame is body, even if a terminator is half-arrived.
        if len(buf) - start - _partial_terminator(buf) > self._max_frame:
            events.append(self._too_large(len(buf) - start - _partial_terminator(buf)))
            return events
        del buf[:start]
        self._scan = max(0, len(buf) - (len(TERMINATOR) - 1))
        return events

    def end_of_stream(self) -> list[Event]:
        """The peer closed: a `Truncated` event if a frame was cut off, and the decoder closes."""
        if self._closed:
            return []
        self._closed = True
        rest = bytes(self._buf)
        self._buf.clear()
        if not rest:
            return []
        text = f"connection ended inside a frame ({len(rest)} bytes without terminator)"
        return [Truncated(text, rest)]

    def _too_large(self, size: int) -> FrameTooLarge:
        self._closed = True
        self._buf.clear()
        return FrameTooLarge(
            f"frame is over {self._max_frame} bytes ({size}+ received); closing the connection"
        )
