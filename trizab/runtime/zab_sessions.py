"""A member's client-facing duties that cross the quorum: forwarded writes, session owners, sync.

Theory of operation
-------------------
* **Forwarding**: a learner's core turns each write into a
  :class:`~trizab.server.replica.Forward`; it goes straight onto the leader's link
  (REQUEST) without waiting behind our own storage barrier (a REQUEST carries no
  ZAB state), and the leader preps and proposes it on arrival.
* **Session owner**: a client that reconnects to a learner with a session id
  waits while the learner asks the leader (REVALIDATE, as ZooKeeper's
  ``Learner.validateSession``): an expired session gets the expired answer
  whatever the learner's copy of the session table says.  The leader records the
  new owner and tells the previous one (REVALIDATE without data, the session id
  in the zxid field), which closes the session's old connection.
* **Touches**: a learner's reply to each leader ping carries the sessions its
  clients touched since the previous reply (ZooKeeper's touch table); only the
  leader's core expires, so a silent or half-open connection keeps nothing alive.
* **sync** is a barrier (etcd raft's ReadIndex, see :mod:`trizab.zab.peer`): a
  learner forwards it as ZooKeeper's do, a REQUEST of type sync; the leader records
  its last proposed zxid and ``Peer.read_index``; once a quorum has echoed a
  heartbeat round started after that, it answers SYNC with that zxid, behind every
  proposal it covers on the FIFO link; the learner replies to the client once it
  has applied that far (a ZooKeeper leader's SYNC says 0: then as far as the COMMITs
  received before it).  A sync from the leader's own client takes the same path
  without the link.  So a leader that was paused and replaced answers no sync from
  its stale state (ZooKeeper's does: ZOOKEEPER-1675).
"""

from __future__ import annotations

import collections
import logging
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trizab.runtime.quorum import Link
from trizab.server.replica import Forward, Mode, ReplicaReady, decode_forward, decode_report, encode_forward
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import encode
from trizab.zab.messages import Disconnected, Request, to_packet
from trizab.zab.peer import NotLeader
from trizab.zab.ready import Role

if TYPE_CHECKING:
    from trizab.runtime.zab_commit import ZabCommit

__all__ = ["ZabSessions"]

log = logging.getLogger("trizab.ensemble")

# REVALIDATE's data, as ZooKeeper's Learner.validateSession and LearnerHandler write it.
_REVALIDATE_ASK = struct.Struct(">qi")  # session id, timeout
_REVALIDATE_ANSWER = struct.Struct(">q?")  # session id, valid
_SYNC_ROOT = encode(r.SyncRequest("/"))


class ZabSessions:
    """See the module docstring.  Runs in the core task, like the rest of the ZAB path."""

    def __init__(self, zab: ZabCommit) -> None:
        self._zab = zab
        # The core's waiting syncs, in order: the zxid each must have applied before it is
        # answered (a learner: the leader's SYNC answers; the leader: confirmed read_index).
        self._sync_waits: collections.deque[int] = collections.deque()
        # Leader: which member each session's client is connected to.
        self._owners: dict[int, int] = {}

    # -- the core's Ready -------------------------------------------------------------

    def on_ready(self, rd: ReplicaReady) -> bool:
        """Carry out a member core's extra outputs; True if that fed the core again."""
        zab = self._zab
        core, peer = zab.core, zab.peer
        fed = False
        if rd.forwards:
            leader = peer.leader
            if core.mode == Mode.LEARNER and leader is not None and leader in zab.quorum.links:
                pkts = [to_packet(Request(zab.my_id, encode_forward(f), f.ids)) for f in rd.forwards]
                if not zab.quorum.send_many(leader, pkts, zab.ready_seq, connect=False):
                    peer.step(Disconnected(leader))
            else:
                for f in rd.forwards:
                    try:
                        peer.forward(encode_forward(f), f.ids)
                    except NotLeader:
                        break
        for session_id in rd.resumed:
            fed = self.session_moved(session_id, zab.my_id) or fed
        for session_id, timeout in rd.revalidations:
            if core.mode == Mode.LEARNER and peer.leader is not None:
                ask = _REVALIDATE_ASK.pack(session_id, timeout)
                zab.send_packet(peer.leader, r.QuorumPacket(int(T.REVALIDATE), -1, ask, None))
        for _ in range(rd.sync_requests):
            if core.mode == Mode.LEADER:
                # Our own client's sync: answered by reads_confirmed, as a learner's.
                try:
                    peer.read_index(("client", None, peer.last_zxid))
                except NotLeader:
                    pass  # stepping down: the core drops the client with the mode change
            elif peer.leader is not None:
                # ZooKeeper's learner forwards a sync as a REQUEST of type sync; the leader
                # answers with a SYNC packet (Leader.processSync).  Only the order matters to
                # the learner: the answers come back in the order of the requests.
                sync = Request(zab.my_id, encode_forward(Forward(0, 0, OpCode.SYNC, _SYNC_ROOT)))
                zab.send_packet(peer.leader, to_packet(sync))
        return fed

    def mode_changed(self) -> None:
        self._sync_waits.clear()  # set_mode drops the syncs waiting in the core

    # -- forwarded requests and reports --------------------------------------------

    def forwarded(
        self, sender: int, data: bytes, auth: tuple[r.Id, ...] = (), link: Link | None = None
    ) -> None:
        """Leader: a learner's client request (REQUEST): prep and propose it now."""
        try:
            f = decode_forward(data, auth)
        except ValueError as e:
            log.warning("bad forwarded request from %d: %s", sender, e)
            return
        if f.opcode == OpCode.SYNC:
            link = link if link is not None else self._zab.quorum.links.get(sender)
            if link is not None:
                self.sync_asked(link)
            return
        if f.opcode == OpCode.CREATE_SESSION:
            self._owners[f.session_id] = sender
        self._zab.core.receive_forwarded(f, self._zab.clock.now_ms())

    def reports(self, reports: Sequence[tuple[int, bytes]]) -> None:
        core = self._zab.core
        now = self._zab.clock.now_ms()
        for _sid, payload in reports:
            core.touch_reported(decode_report(payload), now)

    def prune_owners(self) -> None:
        live = self._zab.core.tracker.sessions
        if len(self._owners) > 2 * len(live) + 64:
            self._owners = {s: o for s, o in self._owners.items() if s in live}

    # -- session owners ---------------------------------------------------------------

    def on_revalidate(self, sender: int, pkt: r.QuorumPacket) -> None:
        """ZooKeeper's REVALIDATE, and trizab's session-moved notice.

        * learner -> leader, data ``(long session id, int timeout)``: a client resumes the
          session on the learner.  The leader answers ``(long session id, boolean
          valid)`` (``LearnerHandler``/``Learner.revalidate``), touching the session and
          recording the learner as its owner when it is valid.
        * leader -> learner with that data: the answer; the waiting connect finishes.
        * leader -> learner with ``(session id, false)`` and the session id in the zxid
          field (an answer echoes the request's -1): the session moved to another member;
          close its connection here.  A ZooKeeper learner takes it for an answer to a
          revalidation it is not waiting for and ignores it (``Learner.revalidate``).
        """
        zab = self._zab
        core = zab.core
        now = zab.clock.now_ms()
        data = pkt.data or b""
        if core.mode == Mode.LEADER:
            if len(data) < _REVALIDATE_ASK.size:
                return
            session_id, timeout = _REVALIDATE_ASK.unpack_from(data)
            valid = core.revalidate(session_id, timeout, now)
            if valid and self.session_moved(session_id, sender):
                zab.core_task.handle_ready()
            answer = _REVALIDATE_ANSWER.pack(session_id, valid)
            zab.send_packet(sender, r.QuorumPacket(int(T.REVALIDATE), pkt.zxid, answer, None))
        elif sender == zab.peer.leader:
            if len(data) < _REVALIDATE_ANSWER.size:
                return
            session_id, valid = _REVALIDATE_ANSWER.unpack_from(data)
            if pkt.zxid == session_id and not valid:
                core.drop_session_connection(session_id)
            else:
                core.revalidated(session_id, valid, now)
            zab.core_task.handle_ready()

    def session_moved(self, session_id: int, owner: int) -> bool:
        """Record ``owner``; have the previous owner drop its connection (True: we did)."""
        zab = self._zab
        previous = self._owners.get(session_id)
        self._owners[session_id] = owner
        if previous is None or previous == owner:
            return False
        if previous == zab.my_id:
            zab.core.drop_session_connection(session_id)
            return True
        moved = _REVALIDATE_ANSWER.pack(session_id, False)
        zab.send_packet(previous, r.QuorumPacket(int(T.REVALIDATE), session_id, moved, None))
        return False

    # -- sync ------------------------------------------------------------------------

    def sync_asked(self, link: Link) -> None:
        """Leader: a learner forwarded a client's sync (a REQUEST of type sync)."""
        peer = self._zab.peer
        if peer.role == Role.LEADING:
            # Answered once a quorum confirms we still lead (reads_confirmed); the zxid is
            # what the learner must apply first: everything proposed before the sync arrived.
            try:
                peer.read_index(("learner", link, peer.last_zxid))
            except NotLeader:
                pass  # not established: neither is the learner, and its link goes with this epoch

    def on_sync_packet(self, link: Link, pkt: r.QuorumPacket) -> None:
        """Learner: the leader's SYNC answers our oldest forwarded sync."""
        peer = self._zab.peer
        if peer.role != Role.LEADING and peer.leader == link.sid:
            # A trizab leader says how far to apply; ZooKeeper's sends 0 after the COMMITs of
            # everything proposed before the sync, which we have received by now.
            self._sync_waits.append(max(pkt.zxid, peer.committed))
            self.check_syncs()

    def reads_confirmed(self, tokens: Sequence[Any]) -> None:
        """Leader: a quorum confirmed that we led after these syncs arrived (Ready.reads_confirmed)."""
        zab = self._zab
        for kind, link, z in tokens:
            if kind == "learner":
                # After this Ready's messages and every earlier one: behind every proposal up
                # to z on the learner's FIFO link.  A link replaced meanwhile belongs to a
                # learner that re-synced and dropped its syncs: the answer is not for it.
                if zab.quorum.current(link):
                    zab.send_packet(link.sid, r.QuorumPacket(int(T.SYNC), z, None, None))
            else:
                self._sync_waits.append(z)  # our own client's: answered once applied up to z

    def check_syncs(self) -> None:
        """Answer the syncs whose point we have applied."""
        core = self._zab.core
        done = False
        while self._sync_waits and core.last_zxid >= self._sync_waits[0]:
            self._sync_waits.popleft()
            core.sync_done()
            done = True
        if core.mode != Mode.LEARNER and core.mode != Mode.LEADER:
            self._sync_waits.clear()
        if done:
            self._zab.core_task.handle_ready()
