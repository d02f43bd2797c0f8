"""ServerCore.abandon: transactions the driver could not log (a full disk) never happened."""

from __future__ import annotations

from core_harness import Harness

from trizab.server.api import Connected, Reply
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode


def _abandon_uncommitted(h: Harness) -> None:
    batch, h.uncommitted = h.uncommitted, []
    h.core.abandon(batch, h.now)
    h.pump()


def test_abandoned_writes_are_answered_throttled_and_leave_no_trace(h: Harness) -> None:
    c, _ = h.session()
    assert h.create(c, "/a", b"0").header.err == 0
    h.auto_commit = False
    before = h.core.last_zxid
    set_xid = h.send(c, OpCode.SET_DATA, r.SetDataRequest("/a", b"lost", -1))
    create_xid = h.send(c, OpCode.CREATE, r.CreateRequest("/b", b"", list(OPEN_ACL_UNSAFE), 0))
    read_xid = h.send(c, OpCode.GET_DATA, r.GetDataRequest("/a", False))
    assert h.take(c) == []  # all wait behind the first write
    _abandon_uncommitted(h)
    replies = {o.header.xid: o for o in h.take(c) if isinstance(o, Reply)}
    assert replies[set_xid].header.err == Err.THROTTLED_OP
    assert replies[create_xid].header.err == Err.THROTTLED_OP
    # The read behind them is answered, in order, from the unchanged tree.
    assert list(replies) == [set_xid, create_xid, read_xid]
    assert replies[read_xid].body.data == b"0"
    assert h.core.last_zxid == before
    # The prepared changes are gone: /b can be created, and /a's version is still 0.
    h.auto_commit = True
    assert h.create(c, "/b").header.err == 0
    reply = h.call(c, OpCode.SET_DATA, r.SetDataRequest("/a", b"1", 0))
    assert reply.header.err == 0
    # The zxids go on from the last applied one: no gap where the abandoned ones were.
    assert [t.header.zxid for t in h.log][-2:] == [before + 1, before + 2]


def test_an_abandoned_create_session_closes_the_connection_without_an_answer(h: Harness) -> None:
    h.auto_commit = False
    c = h.connect()
    (txn,) = h.uncommitted
    _abandon_uncommitted(h)
    assert not [o for o in h.take(c) if isinstance(o, Connected)]
    assert c in h.closed
    assert txn.header.client_id not in h.core.tracker.sessions


def test_an_abandoned_expiry_leaves_the_session_alive_to_expire_again(h: Harness) -> None:
    c, resp = h.session(timeout=4000)
    sid = resp.session_id
    h.core.connection_lost(c, h.now)
    h.auto_commit = False
    h.advance(6000)
    assert [t.header.type for t in h.uncommitted] == [OpCode.CLOSE_SESSION]
    _abandon_uncommitted(h)
    assert h.core.tracker.is_live(sid)
    # It still expires (and this time the close is logged).
    h.auto_commit = True
    h.advance(6000)
    assert sid not in h.core.tracker.sessions
