"""The socket reader's epoll set: level-triggered reports, and entries that cannot go stale."""

from __future__ import annotations

import socket

import pytest
import trio

from trizab.runtime.ready_sockets import ReadySockets, open_ready_sockets


def _open() -> ReadySockets[str]:
    ready = open_ready_sockets()
    if ready is None:  # pragma: no cover - the project's platforms all have epoll
        pytest.fail("no epoll on this platform: the server would fall back to a task per connection")
    return ready  # type: ignore[return-value]


async def test_reports_only_sockets_with_input_until_it_is_read() -> None:
    ready = _open()
    a, a_peer = socket.socketpair()
    b, b_peer = socket.socketpair()
    try:
        for s in (a, b):
            s.setblocking(False)
        ready.watch(a.fileno(), "a")
        ready.watch(b.fileno(), "b")
        b_peer.send(b"hello")
        with trio.fail_after(5):
            assert await ready.wait() == [(b.fileno(), "b")]
        assert b.recv(2) == b"he"
        with trio.fail_after(5):  # level-triggered: what is left is reported again
            assert await ready.wait() == [(b.fileno(), "b")]
        assert b.recv(10) == b"llo"
        a_peer.send(b"x")
        with trio.fail_after(5):
            assert await ready.wait() == [(a.fileno(), "a")]
    finally:
        ready.close()
        for s in (a, a_peer, b, b_peer):
            s.close()


async def test_an_entry_for_a_closed_and_reused_descriptor_is_not_held() -> None:
    ready = _open()
    old, old_peer = socket.socketpair()
    try:
        fd = old.fileno()
        ready.watch(fd, "old")
        old_peer.send(b"x")
        with trio.fail_after(5):
            batch = await ready.wait()
        assert batch == [(fd, "old")]
        # The connection ends before the caller reaches this entry, and a new socket gets its
        # number: the stale entry must not be read as if it were the old connection.
        ready.unwatch(fd, "old")
        old.close()
        new, new_peer = socket.socketpair()
        try:
            assert new.fileno() == fd  # POSIX: the lowest free number
            ready.watch(fd, "new")
            assert ready.holds(fd, "new")
            assert not ready.holds(fd, "old")
            ready.unwatch(fd, "old")  # the old owner's late unwatch leaves the new one alone
            assert ready.holds(fd, "new")
        finally:
            new.close()
            new_peer.close()
    finally:
        ready.close()
        old_peer.close()
