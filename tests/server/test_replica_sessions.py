"""Session liveness on ensemble members, sans I/O: what a learner reports and how a reconnect resumes.

The scenarios of the two session bugs found under real faults (a session expired by the
ensemble came back on a follower that caught up by SNAP; a half-open connection kept its
session alive), reduced to the cores.  tests/chaos/test_session_regressions.py runs the
same scenarios with real processes, partitions and kazoo.
"""

from __future__ import annotations

from typing import Any

from trizab.server.api import Connected
from trizab.server.core import CoreConfig
from trizab.server.replica import Mode, ReplicaCore, ReplicaReady
from trizab.server.sessions import generate_password
from trizab.storage import Recovered
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode

T0 = 1_700_000_000_000
TIMEOUT = 6_000


def learner() -> ReplicaCore:
    core = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    core.set_mode(Mode.LEARNER, T0)
    return core


def create_session_txn(sid: int, zxid: int) -> Txn:
    header = r.TxnHeader(sid, 0, zxid, T0, int(OpCode.CREATE_SESSION))
    return Txn(header, r.CreateSessionTxn(TIMEOUT))


def close_session_txn(sid: int, zxid: int) -> Txn:
    return Txn(r.TxnHeader(sid, 0, zxid, T0, int(OpCode.CLOSE_SESSION)), None)


def reconnect(core: ReplicaCore, conn_id: int, sid: int, now: int = T0) -> ReplicaReady:
    req = r.ConnectRequest(0, 0, TIMEOUT, sid, generate_password(sid), False)
    core.connect(conn_id, req, has_read_only_flag=False, client_addr="127.0.0.1:4000", now_ms=now)
    return core.ready()


def connected(outputs: list[Any], conn_id: int) -> r.ConnectResponse:
    answers = [o.response for c, o in outputs if c == conn_id and isinstance(o, Connected)]
    assert len(answers) == 1, outputs
    return answers[0]


SID = 0x100000000000001


def test_load_forgets_sessions_the_snapshot_does_not_have() -> None:
    """Bug 1's cause: a SNAP must replace the session table, not add to it."""
    core = learner()
    core.committed([create_session_txn(SID, 1)], T0)
    assert SID in core.tracker.sessions
    # Meanwhile the leader expired the session; the learner catches up from a snapshot
    # taken after the closeSession.
    other = ReplicaCore(CoreConfig(tick_time_ms=2000), now_ms=T0)
    other.committed([create_session_txn(SID, 1), close_session_txn(SID, 2)], T0)
    core.load(Recovered(other.snapshot(), other.last_zxid, [], 0, 0))
    assert SID not in core.tracker.sessions
    assert not core.tracker.is_live(SID)


def test_a_learner_resumes_a_session_only_on_the_leaders_word() -> None:
    core = learner()
    core.committed([create_session_txn(SID, 1)], T0)
    rd = reconnect(core, 7, SID)
    # Nothing is answered until the leader revalidated the session.
    assert not [o for o in rd.outputs if isinstance(o[1], Connected)]
    assert rd.revalidations == [(SID, TIMEOUT)]
    core.revalidated(SID, False, T0)
    rd = core.ready()
    resp = connected(rd.outputs, 7)
    assert (resp.time_out, resp.session_id) == (0, 0)  # the expired answer
    assert 7 in rd.close


def test_a_valid_session_resumes_even_before_its_create_session_arrives() -> None:
    core = learner()
    assert reconnect(core, 7, SID).revalidations == [(SID, TIMEOUT)]
    core.revalidated(SID, True, T0)
    resp = connected(core.ready().outputs, 7)
    assert (resp.time_out, resp.session_id) == (TIMEOUT, SID)
    assert core.session_conn[SID].conn_id == 7


def test_the_leader_revalidates_by_its_own_session_table() -> None:
    leader = ReplicaCore(CoreConfig(tick_time_ms=2000), now_ms=T0)
    leader.set_mode(Mode.LEADER, T0)
    leader.committed([create_session_txn(SID, 1)], T0)
    assert leader.revalidate(SID, TIMEOUT, T0 + 1000)
    assert not leader.revalidate(SID + 1, TIMEOUT, T0 + 1000)


def test_a_learner_reports_only_sessions_that_sent_something() -> None:
    """Bug 2's cause: an open but silent (half-open) connection must keep nothing alive."""
    core = learner()
    core.committed([create_session_txn(SID, 1)], T0)
    reconnect(core, 7, SID)
    core.revalidated(SID, True, T0)
    core.ready()
    core.receive(7, -2, OpCode.PING, b"", T0 + 100)
    assert core.session_report() == [(SID, TIMEOUT)]
    # Silence: the connection is still open, but the next reports no longer name it.
    assert SID in core.session_conn
    assert core.session_report() == []
    core.receive(7, -2, OpCode.PING, b"", T0 + 3000)
    assert core.session_report() == [(SID, TIMEOUT)]


def test_a_leader_expires_a_session_its_learners_stop_reporting() -> None:
    leader = ReplicaCore(CoreConfig(tick_time_ms=2000), now_ms=T0)
    leader.set_mode(Mode.LEADER, T0)
    leader.committed([create_session_txn(SID, 1)], T0)
    now = T0
    for _ in range(3):  # reported while the client pings
        now += 1000
        leader.touch_reported([(SID, TIMEOUT)], now)
        leader.tick(now)
    assert not [t for t in leader.ready().to_log if t.header.type == OpCode.CLOSE_SESSION]
    closes: list[Txn] = []
    while now < T0 + 3000 + TIMEOUT + 2 * 2000:  # then silence: expired within timeout + a tick
        now += 1000
        leader.touch_reported([], now)
        leader.tick(now)
        closes += [t for t in leader.ready().to_log if t.header.type == OpCode.CLOSE_SESSION]
    assert [t.header.client_id for t in closes] == [SID]
