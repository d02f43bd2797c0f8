"""Every Jute record (and the multi records) survives encode -> decode; garbage only raises JuteError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trizab.tree.snapshot import DataNodeRecord
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import JuteError, decode, encode
from trizab.wire.requests import (
    REQUEST_RECORD,
    MultiOp,
    MultiResponse,
    OpResult,
    decode_multi,
    decode_request,
    encode_multi,
)

RECORDS = sorted(
    {v for v in vars(r).values() if isinstance(v, type) and hasattr(v, "jute_fields")} | {DataNodeRecord},
    key=lambda c: c.__name__,
)

INT = st.integers(-(2**31), 2**31 - 1)
LONG = st.integers(-(2**63), 2**63 - 1)
# Text that encodes to UTF-8 and back (no lone surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


def strategy_for(jtype: Any) -> st.SearchStrategy[Any]:
    if jtype is jute.INT:
        return INT
    if jtype is jute.LONG:
        return LONG
    if jtype is jute.BOOL:
        return st.booleans()
    if jtype is jute.BUFFER:
        return st.none() | st.binary(max_size=40)
    if jtype is jute.USTRING:
        return st.none() | TEXT
    if isinstance(jtype, jute.Vector):
        return st.none() | st.lists(strategy_for(jtype.element), max_size=4)
    return record_strategy(jtype)


def record_strategy(cls: type) -> st.SearchStrategy[Any]:
    fields = cls.jute_fields  # type: ignore[attr-defined]
    return st.builds(cls, *[strategy_for(t) for _, t in fields])


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=25, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(cls: type, data: st.DataObject) -> None:
    rec = data.draw(record_strategy(cls))
    raw = encode(rec)
    assert decode(cls, raw) == rec


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=25, derandomize=True)
@given(data=st.data())
def test_garbage_raises_only_jute_error(cls: type, data: st.DataObject) -> None:
    rec = data.draw(record_strategy(cls))
    raw = bytearray(encode(rec))
    # Truncate, flip some bytes, or append junk.
    mode = data.draw(st.sampled_from(["truncate", "mutate", "random"]))
    if mode == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif mode == "mutate" and raw:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    else:
        raw = bytearray(data.draw(st.binary(max_size=80)))
    try:
        decode(cls, bytes(raw))
    except JuteError:
        pass


WRITE_OP = st.one_of(
    st.builds(
        lambda p, d, f: MultiOp(OpCode.CREATE, r.CreateRequest(p, d, [], f)),
        TEXT,
        st.binary(max_size=8),
        st.sampled_from([0, 1, 2, 3]),
    ),
    st.builds(lambda p, v: MultiOp(OpCode.DELETE, r.DeleteRequest(p, v)), TEXT, INT),
    st.builds(
        lambda p, d, v: MultiOp(OpCode.SET_DATA, r.SetDataRequest(p, d, v)), TEXT, st.binary(max_size=8), INT
    ),
    st.builds(lambda p, v: MultiOp(OpCode.CHECK, r.CheckVersionRequest(p, v)), TEXT, INT),
)
READ_OP = st.one_of(
    st.builds(lambda p, w: MultiOp(OpCode.GET_DATA, r.GetDataRequest(p, w)), TEXT, st.booleans()),
    st.builds(lambda p, w: MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest(p, w)), TEXT, st.booleans()),
)


@settings(max_examples=100, derandomize=True)
@given(st.lists(WRITE_OP, max_size=5))
def test_multi_write_roundtrip(ops: list[MultiOp]) -> None:
    assert decode_multi(encode_multi(ops), read=False) == ops


@settings(max_examples=100, derandomize=True)
@given(st.lists(READ_OP, min_size=1, max_size=5))
def test_multi_read_roundtrip_and_kind_check(ops: list[MultiOp]) -> None:
    raw = encode_multi(ops)
    assert decode_multi(raw, read=True) == ops
    with pytest.raises(JuteError):
        decode_multi(raw, read=False)


def test_mixed_multi_rejected() -> None:
    ops = [
        MultiOp(OpCode.GET_DATA, r.GetDataRequest("/a", False)),
        MultiOp(OpCode.DELETE, r.DeleteRequest("/a", -1)),
    ]
    with pytest.raises(JuteError):
        decode_multi(encode_multi(ops), read=False)


def test_multi_create_flags_rewrite_type() -> None:
    """Op.create: a create2 in a multi becomes a create, container flags a createContainer."""
    ops = [
        MultiOp(OpCode.CREATE2, r.CreateRequest("/a", b"", [], 0)),
        MultiOp(OpCode.CREATE, r.CreateRequest("/b", b"", [], 4)),
    ]
    got = decode_multi(encode_multi(ops), read=False)
    assert [o.type for o in got] == [OpCode.CREATE, OpCode.CREATE_CONTAINER]


RESULT = st.one_of(
    st.builds(lambda p: OpResult(OpCode.CREATE, 0, r.CreateResponse(p)), TEXT),
    st.builds(lambda s: OpResult(OpCode.SET_DATA, 0, r.SetDataResponse(s)), record_strategy(r.Stat)),
    st.just(OpResult(OpCode.DELETE)),
    st.just(OpResult(OpCode.CHECK)),
    st.builds(lambda e: OpResult(OpCode.ERROR, e), INT),
    st.builds(
        lambda p, s: OpResult(OpCode.CREATE2, 0, r.Create2Response(p, s)), TEXT, record_strategy(r.Stat)
    ),
    st.builds(
        lambda d, s: OpResult(OpCode.GET_DATA, 0, r.GetDataResponse(d, s)),
        st.binary(max_size=9),
        record_strategy(r.Stat),
    ),
)


@settings(max_examples=100, derandomize=True)
@given(st.lists(RESULT, max_size=6))
def test_multi_response_roundtrip(results: list[OpResult]) -> None:
    resp = MultiResponse(results)
    out = bytearray()
    resp.jute_encode(out)
    assert MultiResponse.decode(bytes(out)) == resp


@settings(max_examples=300, derandomize=True)
@given(st.sampled_from(sorted(REQUEST_RECORD)), st.binary(max_size=64))
def test_request_decoding_of_garbage(opcode: int, payload: bytes) -> None:
    try:
        decode_request(opcode, payload)
    except JuteError:
        pass


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=96), st.booleans())
def test_multi_decoding_of_garbage(payload: bytes, read: bool) -> None:
    try:
        decode_multi(payload, read=read)
    except JuteError:
        pass


def one_string_at_a_time(values: list[str | None]) -> bytes:
    """``vector<ustring>`` as BinaryOutputArchive writes it: the count, then each string."""
    out = bytearray(len(values).to_bytes(4, "big"))
    for value in values:
        jute._write_ustring(out, value)
    return bytes(out)


def uniform_vectors() -> st.SearchStrategy[list[str | None]]:
    """Vectors long enough for the one-length fast path, mostly of one length, sometimes spoilt."""
    lengths = st.sampled_from([0, 1, 5, 15, 127, 128, 200, 300])
    spoilers = st.sampled_from([None, "é", "\udcff", "ab", "", "\x7f"])

    @st.composite
    def build(draw: st.DrawFn) -> list[str | None]:
        length = draw(lengths)
        count = draw(st.integers(jute._UNIFORM_MIN - 1, 3 * jute._UNIFORM_MIN))
        alphabet = st.characters(min_codepoint=0, max_codepoint=0x7F)
        values: list[str | None] = [
            draw(st.text(alphabet, min_size=length, max_size=length)) for _ in range(count)
        ]
        for _ in range(draw(st.integers(0, 2))):
            values[draw(st.integers(0, count - 1))] = draw(spoilers)
        return values

    return build()


@settings(max_examples=200, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(values=uniform_vectors() | st.lists(st.none() | TEXT, max_size=80))
def test_string_vector_encoding_matches_one_string_at_a_time(values: list[str | None]) -> None:
    """The fast path for strings of one length writes exactly the bytes of the plain loop."""
    out = bytearray()
    jute._write_ustring_vector(out, values)
    assert bytes(out) == one_string_at_a_time(values)
    assert decode(r.GetChildrenResponse, bytes(out)).children == [
        v if v is None else v.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
        for v in values
    ]


def test_string_vector_fast_path_is_taken_for_sequential_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names like a sequential znode's are written in one go, never one string at a time."""
    names = [f"lock-{i:010d}" for i in range(100)]
    expected = one_string_at_a_time(names)

    def per_string(out: bytearray, value: str | None) -> None:
        raise AssertionError("wrote one string at a time")

    monkeypatch.setattr(jute, "_write_ustring", per_string)
    out = bytearray()
    jute._write_ustring_vector(out, names)
    assert bytes(out) == expected
