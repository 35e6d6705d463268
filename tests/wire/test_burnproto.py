"""The burn protocol core: every verb round-trips, any split of the input decodes the same, and
each malformed frame gives its typed error while decoding carries on."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import burnproto as bp
from wire.burnproto import (
    MAX_FRAME,
    AskCapab,
    Burn,
    Cap,
    Capab,
    Capability,
    ClientType,
    Decoder,
    Error,
    Id,
    Ident,
    Info,
    Message,
    Name,
    Open,
    QClear,
    QList,
    QOk,
    QReport,
    Queue,
    SList,
    SListEntry,
    SReport,
    Stats,
    Status,
    StatusKind,
    StatusValue,
    WhatIs,
)

MD5 = "0123456789abcdef0123456789abcdef"
MD5_B = "fedcba9876543210fedcba9876543210"
UID = "00112233445566778899aabbccddeeff"


def decode_all(data: bytes) -> list[bp.Event]:
    return Decoder().feed(data)


# ---------------------------------------------------------------------------------------------
# Strategies

hex32 = st.text("0123456789abcdefABCDEF", min_size=32, max_size=32)
# Free text: anything but a tab, biased towards the characters the framing cares about.
plain = st.text(st.characters(codec="utf-8", exclude_characters="\t"), max_size=20)
free_text = st.lists(
    st.one_of(st.sampled_from(["\r\n", "\r\n\r\n", " ", "  ", "\r", "\n", "=", "é"]), plain),
    max_size=12,
).map("".join)
status_values = st.one_of(
    st.builds(StatusValue.progress, st.integers(0, 100)),
    st.sampled_from([StatusValue(k) for k in StatusKind if k is not StatusKind.PROGRESS]),
)
counts = st.integers(0, bp.MAX_NUMBER)
credentials = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Ident, st.integers(1, 9999)),
    st.builds(
        Id,
        st.sampled_from(ClientType),
        hex32,
        st.none() | credentials,
        st.integers(1, 9999),
    ),
    st.just(Capab()),
    st.builds(
        Cap,
        st.lists(st.sampled_from(Capability)).map(tuple),
        st.lists(hex32).map(tuple),
    ),
    st.builds(Status, status_values),
    st.builds(Burn, hex32),
    st.builds(Open, st.none() | hex32),
    st.builds(WhatIs, hex32),
    st.builds(Info, hex32, free_text, st.integers(0, 10**19 - 1), free_text),
    st.builds(Queue, hex32, st.integers(1, bp.MAX_QUEUE_COUNT)),
    st.just(QOk()),
    st.just(QReport()),
    st.builds(QList, st.lists(hex32).map(tuple)),
    st.just(SReport()),
    st.builds(SList, st.lists(st.builds(SListEntry, hex32, free_text, status_values)).map(tuple)),
    st.just(AskCapab()),
    st.builds(Name, hex32, free_text),
    st.just(QClear()),
    st.builds(Stats, st.none() | hex32, counts, counts, st.none() | counts),
    st.builds(Error, st.sampled_from(bp.ERROR_CODES), free_text),
)

# One of each verb, with the awkward cases in the free text.
ONE_OF_EACH: list[Message] = [
    Ident(),
    Id(ClientType.BURNER, UID, "s3cret-token"),
    Capab(),
    Cap((Capability.BURNCDR, Capability.BURNDVDR), (MD5, MD5_B)),
    Status(StatusValue.progress(42)),
    Burn(MD5),
    Open(UID),
    WhatIs(MD5),
    Info(MD5, "Ubuntu 26.04 Desktop", 5_900_000_000, "Line one\r\n\r\nLine three\r\n"),
    Queue(MD5, 3),
    QOk(),
    QReport(),
    QList((MD5, MD5_B)),
    SReport(),
    SList((SListEntry(UID, "left = front", StatusValue(StatusKind.AVAIL)),)),
    AskCapab(),
    Name(UID, "Booth 1, left"),
    QClear(),
    Stats(UID, 12, 3, 1_843_200),
    Error("UNKNOWN_IMAGE", "no burner holds that image"),
]


def test_the_sample_stream_covers_every_verb() -> None:
    assert sorted(m.VERB for m in ONE_OF_EACH) == sorted(bp.VERBS)
    assert len(set(bp.VERBS)) == 20
    assert len(set(bp.ERROR_CODES)) == len(bp.ERROR_CODES)


# ---------------------------------------------------------------------------------------------
# Round trips


@settings(max_examples=400)
@given(messages)
def test_every_verb_round_trips(message: Message) -> None:
    data = bp.encode(message)
    assert data.endswith(b"\r\n\r\n")
    assert data.count(b"\r\n\r\n") == 1, "a field leaked a frame terminator"
    assert decode_all(data) == [message]


@given(free_text)
def test_free_text_survives_escaping(text: str) -> None:
    wire = bp.escape_field(text)
    assert "\r\n\r\n" not in wire
    assert not wire.endswith("\r\n")
    assert bp.unescape_field(wire) == text


def test_a_blank_line_travels_as_crlf_space_crlf() -> None:
    data = bp.encode(Info(MD5, "n", 1, "a\r\n\r\nb"))
    assert data == f"INFO\t{MD5}\tn\t1\ta\r\n \r\nb\r\n\r\n".encode()
    # A peer following the seed's convention is understood the same way.
    assert decode_all(data) == [Info(MD5, "n", 1, "a\r\n\r\nb")]


def test_a_line_of_spaces_keeps_its_spaces() -> None:
    text = "a\r\n \r\n  \r\nb"
    assert bp.escape_field(text) == "a\r\n  \r\n   \r\nb"
    assert decode_all(bp.encode(Name(UID, text))) == [Name(UID, text)]


def test_a_non_final_field_ending_in_crlf_decodes() -> None:
    # Not what we send (we send "a\r\n "), but unambiguous when a peer does.
    frame = f"INFO\t{MD5}\ta\r\n\t7\td\r\n\r\n".encode()
    assert decode_all(frame) == [Info(MD5, "a\r\n", 7, "d")]


def test_uppercase_hashes_are_accepted_and_lowercased() -> None:
    frame = f"QUEUE\t{MD5.upper()}\t2\r\n\r\nCAP\tIMG:{MD5_B.upper()}\tBLOCK\r\n\r\n".encode()
    assert decode_all(frame) == [Queue(MD5, 2), Cap((Capability.BLOCK,), (MD5_B,))]
    assert bp.encode(Burn(MD5.upper())) == f"BURN\t{MD5}\r\n\r\n".encode()


def test_queue_count_one_is_the_default_and_not_sent() -> None:
    assert bp.encode(Queue(MD5)) == f"QUEUE\t{MD5}\r\n\r\n".encode()
    assert decode_all(f"QUEUE\t{MD5}\t1\r\n\r\n".encode()) == [Queue(MD5, 1)]


def test_empty_lists_travel_as_the_bare_verb() -> None:
    assert bp.encode(QList()) == b"QLIST\r\n\r\n"
    assert bp.encode(SList()) == b"SLIST\r\n\r\n"
    assert bp.encode(Cap()) == b"CAP\r\n\r\n"


def test_slist_names_may_contain_equals_signs() -> None:
    frame = f"SLIST\t{UID}=a=b=c=42%\t{MD5}==IDLE\r\n\r\n".encode()
    assert decode_all(frame) == [
        SList(
            (
                SListEntry(UID, "a=b=c", StatusValue.progress(42)),
                SListEntry(MD5, "", StatusValue(StatusKind.IDLE)),
            )
        )
    ]


def test_id_with_and_without_credential() -> None:
    plain_id = f"ID\tV1\tDISPLAY\t{UID}\r\n\r\n".encode()
    assert decode_all(plain_id) == [Id(ClientType.DISPLAY, UID)]
    with_token = f"ID\tV1\tCOMMAND\t{UID}\tabc.DEF-123\r\n\r\n".encode()
    [event] = decode_all(with_token)
    assert event == Id(ClientType.COMMAND, UID, "abc.DEF-123")
    assert isinstance(event, Id)
    assert event.credential == "abc.DEF-123"
    assert "abc.DEF-123" not in repr(event)


def test_open_is_bare_to_a_burner_and_names_the_burner_from_a_command() -> None:
    assert bp.encode(Open()) == b"OPEN\r\n\r\n"
    assert decode_all(b"OPEN\r\n\r\n") == [Open()]
    assert Open().uid is None
    upper = UID.upper()
    assert decode_all(f"OPEN\t{upper}\r\n\r\n".encode()) == [Open(UID)]
    assert bp.encode(Open(upper)) == f"OPEN\t{UID}\r\n\r\n".encode()


def test_stats_for_a_burner_and_for_the_session_totals() -> None:
    burner = f"STATS\t{UID}\t12\t3\t1843200\r\n\r\n".encode()
    totals = b"STATS\t*\t40\t5\t-\r\n\r\n"
    assert decode_all(burner + totals) == [
        Stats(UID, 12, 3, 1_843_200),
        Stats(None, 40, 5, None),
    ]
    assert bp.encode(Stats(UID, 12, 3, 1_843_200)) == burner
    assert bp.encode(Stats(None, 40, 5)) == totals
    assert Stats(None, 0, 0).is_total
    assert not Stats(UID, 0, 0).is_total


def test_client_type_may_be_given_as_text() -> None:
    assert Id("BURNER", UID).client_type is ClientType.BURNER  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Splitting


STREAM = b"".join(bp.encode(m) for m in ONE_OF_EACH) + b"BOGUS\tx\r\n\r\n"
EXPECTED: list[bp.Event] = [*ONE_OF_EACH, bp.UnknownVerb("unknown verb 'BOGUS'", b"BOGUS\tx")]


def test_whole_stream_decodes_to_one_event_per_frame() -> None:
    assert decode_all(STREAM) == EXPECTED


def test_one_byte_feeds_give_the_same_events() -> None:
    decoder = Decoder()
    events = [e for i in range(len(STREAM)) for e in decoder.feed(STREAM[i : i + 1])]
    assert events == EXPECTED
    assert decoder.pending == 0


def test_every_two_way_split_gives_the_same_events() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = Decoder()
        events = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert events == EXPECTED, f"split at byte {cut}"


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_random_splits_give_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    decoder = Decoder()
    events = [e for a, b in itertools.pairwise(points) for e in decoder.feed(STREAM[a:b])]
    assert events == EXPECTED


@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_random_messages_with_random_splits(msgs: list[Message], data: st.DataObject) -> None:
    stream = b"".join(bp.encode(m) for m in msgs)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    points = [0, *sorted(cuts), len(stream)]
    decoder = Decoder()
    events = [e for a, b in itertools.pairwise(points) for e in decoder.feed(stream[a:b])]
    assert events == msgs


# ---------------------------------------------------------------------------------------------
# Malformed frames: a typed error, then the next good frame still decodes

MALFORMED: list[tuple[bytes, type[bp.ProtocolError], str]] = [
    (b"", bp.EmptyFrame, "empty frame"),
    (b"QOK\xff\xfe", bp.BadUtf8, "UTF-8"),
    (b"FETCH\tx", bp.UnknownVerb, "unknown verb 'FETCH'"),
    (b"queue\t" + MD5.encode(), bp.UnknownVerb, "unknown verb 'queue'"),
    (b"QOK\textra", bp.FieldCount, "QOK takes 0 field"),
    (b"QUEUE", bp.FieldCount, "QUEUE takes 1 or 2 field"),
    (b"QUEUE\t" + MD5.encode() + b"\t2\t3", bp.FieldCount, "got 3"),
    (b"INFO\t" + MD5.encode() + b"\tname", bp.FieldCount, "INFO takes 4 field"),
    (b"IDENT\tV1\tV2", bp.FieldCount, "IDENT takes 1 field"),
    (b"IDENT\t1", bp.BadVersion, "not a protocol version"),
    (b"IDENT\tV0", bp.BadVersion, "not a protocol version"),
    (b"ID\tversion1\tBURNER\t" + UID.encode(), bp.BadVersion, "not a protocol version"),
    (b"ID\tV1\tTOASTER\t" + UID.encode(), bp.BadClientType, "'TOASTER' is not a client type"),
    (b"ID\tV1\tBURNER\tnot-a-uid", bp.BadUid, "not a client uid"),
    (b"ID\tV1\tBURNER\t" + UID.encode() + b"\tsp ace", bp.BadToken, "credential"),
    (b"NAME\t" + UID[:31].encode() + b"\tx", bp.BadUid, "not a client uid"),
    (b"BURN\t" + MD5[:31].encode() + b"g", bp.BadHash, "not an md5 hash"),
    (b"WHATIS\tabc", bp.BadHash, "not an md5 hash"),
    (b"QLIST\t" + MD5.encode() + b"\tnope", bp.BadHash, "'nope' is not an md5 hash"),
    (b"CAP\tIMG:xyz", bp.BadHash, "'xyz' is not an md5 hash"),
    (b"CAP\tBURNCDR\tLASER", bp.BadCapability, "'LASER' is not a capability"),
    (b"STATUS\tBUSY", bp.BadStatus, "'BUSY' is not a status"),
    (b"STATUS\tPROGRESS", bp.BadStatus, "is not a status"),
    (b"STATUS\t101%", bp.BadPercent, "0..100"),
    (b"STATUS\t-1%", bp.BadPercent, "not a percentage"),
    (b"STATUS\t4.5%", bp.BadPercent, "not a percentage"),
    (b"STATUS\t%", bp.BadPercent, "not a percentage"),
    (b"QUEUE\t" + MD5.encode() + b"\t0", bp.BadNumber, "queue count"),
    (b"QUEUE\t" + MD5.encode() + b"\tmany", bp.BadNumber, "queue count"),
    (b"INFO\t" + MD5.encode() + b"\tn\t-5\td", bp.BadNumber, "image size"),
    (b"SLIST\t" + UID.encode() + b"-IDLE", bp.BadEntry, "not a burner entry"),
    (b"SLIST\t" + UID.encode() + b"=IDLE", bp.BadEntry, "not a burner entry"),
    (b"SLIST\tzz=name=IDLE", bp.BadUid, "not a client uid"),
    (b"SLIST\t" + UID.encode() + b"=n=SLEEPY", bp.BadStatus, "'SLEEPY' is not a status"),
    (b"ERROR\tbad code\ttext", bp.BadToken, "not an error code"),
    (b"OPEN\tbooth-1", bp.BadUid, "'booth-1' is not a client uid"),
    (b"OPEN\t" + UID.encode() + b"\tnow", bp.FieldCount, "OPEN takes 0 or 1 field"),
    (b"STATS\t" + UID.encode() + b"\t1\t0", bp.FieldCount, "STATS takes 4 field"),
    (b"STATS\tall\t1\t0\t-", bp.BadUid, "'all' is not a client uid"),
    (b"STATS\t*\t-1\t0\t-", bp.BadNumber, "burned count"),
    (b"STATS\t*\t1\tnone\t-", bp.BadNumber, "failed count"),
    (b"STATS\t*\t1\t0\t1.5", bp.BadNumber, "mean speed"),
    (b"STATS\t*\t1\t0\t", bp.BadNumber, "mean speed"),
]


@pytest.mark.parametrize(
    ("frame", "error", "text"),
    MALFORMED,
    ids=[m[1].__name__ + ":" + repr(m[0])[:30] for m in MALFORMED],
)
def test_malformed_frame_gives_typed_error_and_decoding_continues(
    frame: bytes, error: type[bp.ProtocolError], text: str
) -> None:
    events = decode_all(frame + b"\r\n\r\n" + b"QOK\r\n\r\n")
    assert len(events) == 2
    first = events[0]
    assert type(first) is error
    assert text in first.text
    assert first.frame == frame
    assert first.code in bp.ERROR_CODES
    assert events[1] == QOk()
    # The server's answer to it is a well-formed ERROR frame carrying the same code and text.
    reply = bp.encode(bp.ErrorReply(first))
    assert decode_all(reply) == [Error(first.code, first.text)]


def test_error_codes_are_distinct_per_error_type() -> None:
    kinds = {err for _, err, _ in MALFORMED} | {bp.FrameTooLarge, bp.Truncated}
    assert len({k.code for k in kinds}) == len(kinds)


def test_a_credential_is_never_echoed_in_the_error() -> None:
    secret = "hunter 2"
    [event] = decode_all(f"ID\tV1\tBURNER\t{UID}\t{secret}\r\n\r\n".encode())
    assert isinstance(event, bp.BadToken)
    assert secret not in event.text
    assert secret not in repr(event)


def test_error_text_quotes_long_fields_shortened() -> None:
    [event] = decode_all(b"X" * 5000 + b"\r\n\r\n")
    assert isinstance(event, bp.UnknownVerb)
    assert len(event.text) < 100


def test_errors_compare_by_type_text_and_frame() -> None:
    assert bp.BadHash("x", b"f") == bp.BadHash("x", b"f")
    assert bp.BadHash("x", b"f") != bp.BadUid("x", b"f")
    assert bp.BadHash("x", b"f") != bp.BadHash("x", b"g")
    assert len({bp.BadHash("x"), bp.BadHash("x")}) == 1


# ---------------------------------------------------------------------------------------------
# The 64 KiB frame limit


def _frame_of(size: int) -> bytes:
    head = b"ERROR\tX\t"
    return head + b"a" * (size - len(head))


def test_a_frame_exactly_at_the_limit_is_accepted() -> None:
    body = _frame_of(MAX_FRAME)
    assert len(body) == MAX_FRAME
    decoder = Decoder()
    assert decoder.feed(body + b"\r\n\r\nQOK\r\n\r\n") == [
        Error("X", "a" * (MAX_FRAME - 8)),
        QOk(),
    ]
    assert not decoder.closed


def test_a_frame_at_the_limit_with_a_slow_terminator_is_accepted() -> None:
    decoder = Decoder()
    assert decoder.feed(_frame_of(MAX_FRAME)) == []
    for byte in b"\r\n\r":
        assert decoder.feed(bytes([byte])) == []
    assert decoder.feed(b"\n") == [Error("X", "a" * (MAX_FRAME - 8))]


def test_one_byte_over_the_limit_is_refused_before_any_terminator() -> None:
    decoder = Decoder()
    body = _frame_of(MAX_FRAME + 1)
    assert decoder.feed(body[:-1]) == []
    [event] = decoder.feed(body[-1:])
    assert isinstance(event, bp.FrameTooLarge)
    assert event.code == "FRAME_TOO_LARGE"
    assert decoder.closed
    assert decoder.pending == 0
    with pytest.raises(bp.DecoderClosedError):
        decoder.feed(b"\r\n\r\nQOK\r\n\r\n")


def test_one_byte_feeds_never_buffer_past_the_limit() -> None:
    decoder = Decoder()
    seen: list[bp.Event] = []
    fed = 0
    while not seen and fed < 2 * MAX_FRAME:
        # Half-arrived terminators at the end keep the decoder honest about what is body.
        seen = decoder.feed(b"a\r\n\r"[fed % 4 : fed % 4 + 1])
        fed += 1
        assert decoder.pending <= MAX_FRAME + 3
    assert MAX_FRAME < fed <= MAX_FRAME + 4
    assert isinstance(seen[0], bp.FrameTooLarge)


def test_an_oversized_frame_arriving_whole_is_refused_after_earlier_frames() -> None:
    decoder = Decoder()
    events = decoder.feed(b"QOK\r\n\r\n" + _frame_of(MAX_FRAME + 1) + b"\r\n\r\nQOK\r\n\r\n")
    assert events[0] == QOk()
    assert isinstance(events[1], bp.FrameTooLarge)
    assert len(events) == 2
    assert decoder.closed
    reply = bp.encode(bp.ErrorReply(events[1]))
    assert reply.startswith(b"ERROR\tFRAME_TOO_LARGE\t")


def test_encoding_refuses_a_frame_the_peer_would_refuse() -> None:
    assert bp.encode(Error("X", "a" * (MAX_FRAME - 8)))
    with pytest.raises(bp.EncodeError, match="limit is 65536"):
        bp.encode(Error("X", "a" * (MAX_FRAME - 7)))


# ---------------------------------------------------------------------------------------------
# Encoding and construction refuse what cannot travel


@pytest.mark.parametrize(
    "message",
    [
        Info(MD5, "tab\there", 1, ""),
        Info(MD5, "n", 1, "desc\twith tab"),
        Name(UID, "Booth\t1"),
        Error("X", "a\tb"),
        SList((SListEntry(UID, "a\tb", StatusValue(StatusKind.IDLE)),)),
    ],
)
def test_encoding_a_tab_in_a_field_is_refused(message: Message) -> None:
    with pytest.raises(bp.EncodeError, match="contains a tab"):
        bp.encode(message)


def test_encoding_refuses_text_that_is_not_unicode() -> None:
    with pytest.raises(bp.EncodeError, match="not valid Unicode"):
        bp.encode(Name(UID, "\udcff"))


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Burn("xyz"), bp.BadHash),
        (lambda: Name("short", "n"), bp.BadUid),
        (lambda: StatusValue.progress(101), bp.BadPercent),
        (lambda: StatusValue.progress(True), bp.BadPercent),
        (lambda: StatusValue(StatusKind.PROGRESS), bp.BadPercent),
        (lambda: StatusValue(StatusKind.IDLE, 5), bp.BadStatus),
        (lambda: Queue(MD5, 0), bp.BadNumber),
        (lambda: Queue(MD5, bp.MAX_QUEUE_COUNT + 1), bp.BadNumber),
        (lambda: Info(MD5, "n", -1), bp.BadNumber),
        (lambda: Info(MD5, "n", 10**19), bp.BadNumber),
        (lambda: Ident(0), bp.BadVersion),
        (lambda: Ident(True), bp.BadVersion),
        (lambda: Id(ClientType.BURNER, UID, ""), bp.BadToken),
        (lambda: Id(ClientType.BURNER, UID, "x" * 513), bp.BadToken),
        (lambda: Cap(("LASER",)), bp.BadCapability),  # type: ignore[arg-type]
        (lambda: Error("", "t"), bp.BadToken),
        (lambda: Open("booth-1"), bp.BadUid),
        (lambda: Stats("booth-1", 0, 0), bp.BadUid),
        (lambda: Stats(None, -1, 0), bp.BadNumber),
        (lambda: Stats(None, 0, True), bp.BadNumber),
        (lambda: Stats(None, 0, 0, bp.MAX_NUMBER + 1), bp.BadNumber),
        (lambda: Stats(None, 0, 0, 1.5), bp.BadNumber),  # type: ignore[arg-type]
    ],
)
def test_constructing_an_invalid_message_raises_its_typed_error(
    build: object, error: type[bp.ProtocolError]
) -> None:
    assert callable(build)
    with pytest.raises(error):
        build()


def test_status_values_print_as_on_the_wire() -> None:
    assert str(StatusValue.progress(7)) == "7%"
    assert str(StatusValue(StatusKind.MD5FAIL)) == "MD5FAIL"
    assert bp.encode(Status(StatusValue(StatusKind.TRAYOPEN))) == b"STATUS\tTRAYOPEN\r\n\r\n"


# ---------------------------------------------------------------------------------------------
# End of stream and a closed decoder


def test_end_of_stream_reports_a_cut_off_frame_without_losing_it() -> None:
    decoder = Decoder()
    assert decoder.feed(b"QOK\r\n\r\nSTATUS\t5") == [QOk()]
    [event] = decoder.end_of_stream()
    assert isinstance(event, bp.Truncated)
    assert event.frame == b"STATUS\t5"
    assert decoder.closed
    assert decoder.end_of_stream() == []
    with pytest.raises(bp.DecoderClosedError):
        decoder.feed(b"QOK\r\n\r\n")


def test_clean_end_of_stream_reports_nothing() -> None:
    decoder = Decoder()
    assert decoder.feed(b"QOK\r\n\r\n") == [QOk()]
    assert decoder.end_of_stream() == []


# ---------------------------------------------------------------------------------------------
# Client uid


def test_client_uid_is_md5_of_mac_and_device_path() -> None:
    uid = bp.client_uid("AA-BB-CC-DD-EE-FF", "/dev/sr0")
    assert uid == hashlib.md5(b"aa:bb:cc:dd:ee:ff/dev/sr0", usedforsecurity=False).hexdigest()
    assert uid == bp.client_uid("aa:bb:cc:dd:ee:ff", "/dev/sr0")
    assert uid == bp.client_uid("aabbccddeeff", "/dev/sr0")
    assert uid != bp.client_uid("aa:bb:cc:dd:ee:ff", "/dev/sr1")
    # It is a valid uid for ID.
    assert Id(ClientType.BURNER, uid).uid == uid


@pytest.mark.parametrize(
    ("mac", "path"),
    [
        ("aa:bb:cc:dd:ee", "/dev/sr0"),
        ("aa:bb-cc:dd:ee:ff", "/dev/sr0"),
        ("zz" * 6, "/dev/sr0"),
        ("aa:bb:cc:dd:ee:ff", ""),
    ],
)
def test_client_uid_refuses_bad_input(mac: str, path: str) -> None:
    with pytest.raises(ValueError, match=r"MAC address|device path"):
        bp.client_uid(mac, path)


# ---------------------------------------------------------------------------------------------
# A whole exchange from the seed, driven back to back


def test_scripted_burner_session_from_the_seed() -> None:
    server, burner = Decoder(), Decoder()
    burner_uid = bp.client_uid("b8:27:eb:12:34:56", "/dev/sr0")

    def to_burner(*msgs: Message) -> list[bp.Event]:
        data = b"".join(bp.encode(m) for m in msgs)
        return [e for i in range(len(data)) for e in burner.feed(data[i : i + 1])]

    def to_server(*msgs: Message) -> list[bp.Event]:
        return server.feed(b"".join(bp.encode(m) for m in msgs))

    assert to_burner(Ident()) == [Ident(1)]
    assert to_server(Id(ClientType.BURNER, burner_uid, "fleet-token")) == [
        Id(ClientType.BURNER, burner_uid, "fleet-token", 1)
    ]
    assert to_burner(Capab()) == [Capab()]
    caps = Cap((Capability.BURNCDR, Capability.BURNDVDR), (MD5,))
    assert to_server(caps) == [caps]

    idle = Status(StatusValue(StatusKind.IDLE))
    assert to_server(idle, idle) == [idle, idle]
    assert to_burner(Burn(MD5)) == [Burn(MD5)]
    progress = [Status(StatusValue.progress(p)) for p in (0, 50, 100)]
    done = [
        Status(StatusValue(StatusKind.MD5PASS)),
        Status(StatusValue(StatusKind.TRAYOPEN)),
        Status(StatusValue(StatusKind.AVAIL)),
    ]
    # The literal bytes a legacy burner sends decode to the same thing.
    raw = (
        b"STATUS\t0%\r\n\r\nSTATUS\t50%\r\n\r\nSTATUS\t100%\r\n\r\n"
        b"STATUS\tMD5PASS\r\n\r\nSTATUS\tTRAYOPEN\r\n\r\nSTATUS\tAVAIL\r\n\r\n"
    )
    assert b"".join(bp.encode(m) for m in progress + done) == raw
    events = server.feed(raw)
    assert events == progress + done
    kinds = [e.value.kind for e in events if isinstance(e, Status)]
    assert kinds[-3:] == [StatusKind.MD5PASS, StatusKind.TRAYOPEN, StatusKind.AVAIL]
    assert to_burner(Open()) == [Open()]
    assert to_server(Status(StatusValue(StatusKind.EMPTY))) == [
        Status(StatusValue(StatusKind.EMPTY))
    ]
    assert to_burner(WhatIs(MD5)) == [WhatIs(MD5)]
    info = Info(MD5, "ubuntu-26.04-desktop-amd64.iso", 6_114_656_256, "Desktop\r\n\r\namd64")
    assert to_server(info) == [info]


def test_scripted_command_session_from_the_seed() -> None:
    server = Decoder()
    client = Decoder()
    command = Id(ClientType.COMMAND, bp.client_uid("00:11:22:33:44:55", "tty1"), "op-token")
    assert server.feed(bp.encode(command)) == [command]
    assert server.feed(bp.encode(Queue(MD5, 2)) + bp.encode(QReport())) == [
        Queue(MD5, 2),
        QReport(),
    ]
    assert client.feed(bp.encode(QOk()) + bp.encode(QList((MD5, MD5)))) == [
        QOk(),
        QList((MD5, MD5)),
    ]
    assert server.feed(b"SREPORT\r\n\r\n") == [SReport()]
    slist = SList((SListEntry(UID, "Left", StatusValue.progress(12)),))
    assert client.feed(f"SLIST\t{UID}=Left=12%\r\n\r\n".encode()) == [slist]
    assert server.feed(bp.encode(Name(UID, "Left")) + b"QCLEAR\r\n\r\nASKCAPAB\r\n\r\n") == [
        Name(UID, "Left"),
        QClear(),
        AskCapab(),
    ]
    # An unknown verb is answered with ERROR and the connection goes on.
    [bad] = server.feed(b"SHUTDOWN\r\n\r\n")
    assert isinstance(bad, bp.ProtocolError)
    assert client.feed(bp.encode(bp.ErrorReply(bad))) == [
        Error("UNKNOWN_VERB", "unknown verb 'SHUTDOWN'")
    ]
    assert server.feed(b"QREPORT\r\n\r\n") == [QReport()]
    # Finding the physical box: the command names it, the server opens that tray.
    assert server.feed(f"OPEN\t{UID}\r\n\r\n".encode()) == [Open(UID)]
    assert client.feed(
        f"STATS\t{UID}\t1\t0\t2400000\r\n\r\nSTATS\t*\t1\t0\t2400000\r\n\r\n".encode()
    ) == [
        Stats(UID, 1, 0, 2_400_000),
        Stats(None, 1, 0, 2_400_000),
    ]
