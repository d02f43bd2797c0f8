"""``sync`` is a barrier on the leader as on a follower (ReadIndex, see trizab.zab.peer).

A leader answers a sync only after a quorum echoed a heartbeat round that started
after the sync arrived; a follower forwards it and waits as before.  These tests
check the observable side: syncs complete on every member, in order, and a write
acknowledged anywhere before a sync is visible to a read after it; and a leader
paused with SIGSTOP and replaced meanwhile does not answer a sync with stale data
when it resumes (ZOOKEEPER-1675, ZOOKEEPER-3522).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from testkit.trizab_ensemble import TrizabEnsemble
from trizab.runtime.launcher import member_mode
from trizab.runtime.zab_commit import ZabCommit
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import decode, decode_prefix, encode
from trizab.zab.ready import Role

WAIT = 20.0


def client(address: str) -> KazooClient:
    retry = KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.3)
    c = KazooClient(hosts=address, randomize_hosts=False, connection_retry=retry, timeout=10.0)
    c.start(timeout=WAIT)
    return c


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_sync_on_leader_and_follower_sees_writes_acknowledged_before_it(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader: ZabCommit = await cl.wait_serving()
        f1, f2 = sorted(sid for sid in cl.members if sid != leader.my_id)
        path = f"/barrier-{uuid.uuid4().hex}"

        def scenario() -> None:
            on_leader = client(cl.address(leader.my_id))
            on_f1 = client(cl.address(f1))
            on_f2 = client(cl.address(f2))
            try:
                on_f1.create(path, b"0")
                for i in range(1, 31):
                    # Acknowledged by one member, then synced and read on another: the leader
                    # (its own client's sync) and a follower (SYNC on the quorum link).
                    writer, reader = [(on_f1, on_leader), (on_leader, on_f2), (on_f2, on_leader)][i % 3]
                    writer.set(path, str(i).encode())
                    reader.sync("/")
                    assert reader.get(path)[0] == str(i).encode()
                # Many syncs in flight on one connection, interleaved with reads: answered in
                # order (syncs that arrive together share one heartbeat round).
                for reader in (on_leader, on_f1):
                    on_f2.set(path, b"burst")
                    syncs = [reader.sync_async("/") for _ in range(50)]
                    read = reader.get_async(path)
                    assert [s.get(timeout=WAIT) for s in syncs] == ["/"] * 50
                    assert read.get(timeout=WAIT)[0] == b"burst"
            finally:
                for c in (on_leader, on_f1, on_f2):
                    c.stop()
                    c.close()

        with trio.fail_after(2 * WAIT):
            await in_thread(scenario)
        assert leader.role == Role.LEADING  # no election meanwhile: every sync above met this leader
        nursery.cancel_scope.cancel()


class _Raw:
    """A bare ZooKeeper client connection: requests can be sent while the server is stopped."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = bytearray()
        self._send(encode(r.ConnectRequest(0, 0, 60_000, 0, b"\0" * 16, False)))
        decode(r.ConnectResponse, self.frame())

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def request(self, xid: int, opcode: int, body: Any) -> None:
        self._send(struct.pack(">ii", xid, opcode) + encode(body))

    def frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    out = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return out
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_a_leader_paused_and_replaced_answers_no_sync_with_stale_data(tmp_path: Path) -> None:
    ensemble = TrizabEnsemble(3, workdir=tmp_path, tick_time=500, init_limit=5, sync_limit=2)
    stopped = None

    def wait_until(cond: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not cond():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    try:
        ensemble.start()
        wait_until(
            lambda: ensemble.leader() is not None and all(member_mode(m.client_port) for m in ensemble),
            "no established ensemble",
        )
        old = ensemble.leader()
        assert old is not None and old.process is not None
        others = [m for m in ensemble if m is not old]
        path = f"/paused-{uuid.uuid4().hex}"
        c = client(",".join(m.address for m in others))
        retry = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.3, deadline=30)
        try:
            retry(c.create, path, b"before")
            raw = _Raw(old.address)
            os.kill(old.process.pid, signal.SIGSTOP)
            stopped = old.process.pid
            # The others notice the silence (syncLimit) and elect a new leader without it.
            wait_until(lambda: any(member_mode(m.client_port) == "leader" for m in others), "no new leader")
            retry(c.set, path, b"after")  # acknowledged in the new epoch
            # The paused leader's client asks sync + getData; the bytes wait in its socket.
            raw.request(1, OpCode.SYNC, r.SyncRequest("/"))
            raw.request(2, OpCode.GET_DATA, r.GetDataRequest(path, False))
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            raw.sock.settimeout(30)
            try:
                replies = {}
                while 2 not in replies:
                    header, pos = decode_prefix(r.ReplyHeader, frame := raw.frame())
                    replies[header.xid] = (header, frame[pos:])
            except (EOFError, ConnectionError):
                pass  # it stepped down and closed its clients: the client retries elsewhere
            else:
                header, body = replies[2]
                assert header.err == 0
                assert decode(r.GetDataResponse, body).data == b"after", "stale read after sync"
            finally:
                raw.close()
        finally:
            c.stop()
            c.close()
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        ensemble.close()
