"""The members' SASL step (trizab.runtime.quorum_auth) over in-memory streams."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from trizab.runtime.quorum_auth import (
    IN_PROGRESS,
    MAGIC,
    SUCCESS,
    QuorumAuthError,
    QuorumSasl,
    encode_auth_packet,
    parse_auth_packet,
)

USERS = {"test": "test-secret"}


def sasl(password: str = "test-secret", *, learner: bool = True, server: bool = True) -> QuorumSasl:
    return QuorumSasl(learner, server, USERS, ("test", password), random_bytes=lambda n: b"r" * n)


async def exchange(learner: QuorumSasl, server: QuorumSasl, after: bytes = b"") -> tuple[Any, bool, bytes]:
    """Run both sides; (the learner's error or None, the server's verdict, what the server read past it)."""
    left, right = trio.testing.memory_stream_pair()
    result: dict[str, Any] = {}

    async def learn() -> None:
        try:
            await learner.as_learner(left, bytearray(), "test link")
            result["learner"] = None
            await left.send_all(after)
        except QuorumAuthError as exc:
            result["learner"] = exc

    async def serve() -> None:
        buf = bytearray()
        result["server"] = await server.as_server(right, buf, "test link", timeout=5)
        while len(buf) < len(after) and result["server"]:
            buf += await right.receive_some()
        result["rest"] = bytes(buf)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(learn)
            nursery.start_soon(serve)
    return result["learner"], result["server"], result["rest"]


async def test_right_password_and_the_bytes_after_it_stay_for_the_framing() -> None:
    err, ok, rest = await exchange(sasl(), sasl(), after=b"\x00\x00\x00\x05hello")
    assert err is None and ok and rest == b"\x00\x00\x00\x05hello"


async def test_wrong_password_is_refused_on_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        err, ok, _ = await exchange(sasl("guess"), sasl())
    assert isinstance(err, QuorumAuthError) and not ok
    refusals = [r for r in caplog.records if "refusing" in r.getMessage()]
    assert len(refusals) == 1 and "SASL authentication failed" in refusals[0].getMessage()
    assert "guess" not in caplog.text and "test-secret" not in caplog.text


async def test_not_required_lets_a_wrong_password_through_on_the_server_side() -> None:
    # serverRequireSasl=false (the rolling enable): the server keeps the connection, the
    # learner (which does require it) gives up on its own.
    err, ok, _ = await exchange(sasl("guess"), sasl(server=False))
    assert isinstance(err, QuorumAuthError) and ok


async def test_a_learner_that_does_not_authenticate() -> None:
    # learnerRequireSasl=false: nothing is sent; a requiring server refuses, another does not.
    err, ok, rest = await exchange(sasl(learner=False), sasl(server=False), after=b"\x00\x00\x00\x04abcd")
    assert err is None and ok and rest == b"\x00\x00\x00\x04abcd"
    err, ok, _ = await exchange(sasl(learner=False), sasl(), after=b"\x00\x00\x00\x04abcd")
    assert err is None and not ok


def test_packet_codec() -> None:
    # QuorumAuthPacket as Java writes it: long magic, int status, buffer token.
    data = encode_auth_packet(IN_PROGRESS, b"abc")
    assert data == bytes.fromhex("5f2435013501edcc") + b"\0\0\0\0" + b"\0\0\0\3abc"
    assert MAGIC == -(0xA0DBCAFECAFE1234 - (1 << 64))  # Java's -0xa0dbcafecafe1234L
    buf = bytearray(data[:-1])
    assert parse_auth_packet(buf) is None
    buf += data[-1:] + b"more"
    assert parse_auth_packet(buf) == (IN_PROGRESS, b"abc") and buf == b"more"
    assert parse_auth_packet(bytearray(encode_auth_packet(SUCCESS, None))) == (SUCCESS, None)
    with pytest.raises(QuorumAuthError):
        parse_auth_packet(bytearray(b"\0" * 16))


async def test_a_connection_that_breaks_before_its_first_bytes_is_closed_quietly() -> None:
    left, right = trio.testing.memory_stream_pair()
    await left.aclose()
    await right.aclose()  # the server's own side is unusable too: receive_some raises
    assert await sasl().as_server(right, bytearray(), "test link", timeout=5) is False
