"""The Trio runtime around a scripted fake core, over real loopback sockets.

The fake core keeps the real core's contract (connect/receive/committed/ready)
with trivial semantics, so these tests pin down what the runtime owes any core:
persist before acknowledging, group commit, per-connection isolation, slow
readers dropped, closes after flushing, shutdown flushes storage.
"""

from __future__ import annotations

import collections
import functools
import gc
import os
import struct
import threading
import time
import types
from typing import Any

import attrs
import pytest
import trio
from trizab.plugins.storage.memory import MemoryStoragePlugin

from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.server.api import Connected, Ready, Reply
from trizab.testing.memnet import MemoryListener
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode
from trizab.wire.jute import decode, decode_prefix, encode

SET, GET, BIG, CLOSE_ME = 5, 4, 99, -11


class FakeCore:
    """setData (5) logs a txn and replies after commit; getData (4) echoes; 99 sends a big body."""

    def __init__(self, config: cfg.ServerConfig, now_ms: int) -> None:
        self.to_log: list[Txn] = []
        self.outputs: list[tuple[int, Any]] = []
        self.close: list[int] = []
        self.last_zxid = 0
        self.waiting: dict[int, tuple[int, int]] = {}
        self.lost: list[int] = []
        self.ticks = 0
        self.committed_batches: list[int] = []
        self.node_count = 1
        self.queues: dict[int, list[list[Any]]] = {}
        # What the four-letter words read.
        self.approximate_data_size = 0
        self.outstanding_requests = 0
        self.tracker = types.SimpleNamespace(sessions={})

    def sessions(self) -> list[tuple[int, int, int | None]]:
        return []

    def ephemerals_by_session(self) -> dict[int, list[str]]:
        return {}

    def watches_by_session(self) -> dict[int, list[str]]:
        return {}

    def watches_by_path(self) -> dict[str, list[int]]:
        return {}

    def load(self, recovered: Any) -> None:
        self.last_zxid = recovered.last_zxid

    def connect(self, conn_id: int, request: r.ConnectRequest, *, has_read_only_flag: bool, **_: Any) -> None:
        resp = r.ConnectResponse(0, request.time_out, 1000 + conn_id, b"\0" * 16, False)
        self.outputs.append((conn_id, Connected(resp, has_read_only_flag)))

    def receive(self, conn_id: int, xid: int, opcode: int, payload: Any, now_ms: int) -> None:
        queue = self.queues.setdefault(conn_id, [])
        stat = r.Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if opcode == SET:
            self.last_zxid += 1
            header = r.TxnHeader(conn_id, xid, self.last_zxid, now_ms, OpCode.ERROR)
            self.to_log.append(Txn(header, r.ErrorTxn(0)))
            self.waiting[self.last_zxid] = (conn_id, xid)
            queue.append([xid, None])  # filled in by committed()
        elif opcode == GET:
            body = r.GetDataResponse(bytes(payload), stat)
            queue.append([xid, Reply(r.ReplyHeader(xid, self.last_zxid, 0), body)])
        elif opcode == BIG:
            body = r.GetDataResponse(b"x" * 500_000, stat)
            queue.append([xid, Reply(r.ReplyHeader(xid, self.last_zxid, 0), body)])
        elif opcode == CLOSE_ME:
            queue.append([xid, Reply(r.ReplyHeader(xid, self.last_zxid, 0))])
            self._flush(conn_id)
            self.close.append(conn_id)
        else:
            queue.append([xid, Reply(r.ReplyHeader(xid, self.last_zxid, Err.UNIMPLEMENTED))])
        self._flush(conn_id)

    def _flush(self, conn_id: int) -> None:
        # Replies leave in request order: a read queued behind a pending write waits.
        queue = self.queues.get(conn_id, [])
        while queue and queue[0][1] is not None:
            self.outputs.append((conn_id, queue.pop(0)[1]))

    def committed(self, txns: list[Txn], now_ms: int) -> None:
        self.committed_batches.append(len(txns))
        for t in txns:
            conn_id, xid = self.waiting.pop(t.zxid)
            for item in self.queues.get(conn_id, []):
                if item[0] == xid and item[1] is None:
                    item[1] = Reply(r.ReplyHeader(xid, t.zxid, 0))
                    break
            self._flush(conn_id)

    def connection_lost(self, conn_id: int, now_ms: int) -> None:
        self.lost.append(conn_id)

    def tick(self, now_ms: int) -> None:
        self.ticks += 1

    def ready(self) -> Ready:
        rd = Ready(self.to_log, self.outputs, self.close)
        self.to_log, self.outputs, self.close = [], [], []
        return rd

    def snapshot(self) -> bytes:
        return b"snapshot"

    def start_snapshot(self) -> _OneStepSnapshot:
        return _OneStepSnapshot(self.last_zxid, self.snapshot())


@attrs.define
class _OneStepSnapshot:
    """A snapshot walk that is done after one step."""

    zxid: int
    data: bytes

    def step(self, nodes: int) -> bool:
        return True

    def parts(self) -> list[bytes]:
        return [self.data]


class SlowStorage(MemoryStoragePlugin):
    """Memory storage whose sync takes a while (like an fsync, in a thread), recording what it saw."""

    durable = True  # so that the runtime treats its sync as blocking

    def __init__(self, sync_s: float = 0.0) -> None:
        super().__init__()
        self.sync_s = sync_s
        self.synced: list[int] = []  # last zxid durable after each sync
        self.appended: list[int] = []
        self.closed = False
        self.snapshots_saved: list[int] = []
        self._mu = threading.Lock()

    def append(self, txns: Any) -> None:
        super().append(txns)
        self.appended += [t.zxid for t in txns]

    def sync(self) -> None:
        if self.sync_s:
            time.sleep(self.sync_s)
        super().sync()
        with self._mu:
            self.synced.append(self.appended[-1] if self.appended else 0)

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        super().save_snapshot(zxid, data)
        self.snapshots_saved.append(zxid)

    def close(self) -> None:
        self.closed = True


@attrs.define
class Client:
    stream: trio.abc.Stream
    buf: bytearray = attrs.Factory(bytearray)

    @classmethod
    async def connect(cls, port: int, *, handshake: bool = True) -> Client:
        c = cls(await trio.open_tcp_stream("127.0.0.1", port))
        if handshake:
            await c.send_frame(encode(r.ConnectRequest(0, 0, 10000, 0, b"\0" * 16, False)))
            resp = decode(r.ConnectResponse, await c.read_frame())
            assert resp.time_out == 10000
        return c

    async def send_frame(self, payload: bytes) -> None:
        await self.stream.send_all(struct.pack(">i", len(payload)) + payload)

    async def request(self, xid: int, opcode: int, body: bytes = b"") -> None:
        await self.send_frame(struct.pack(">ii", xid, opcode) + body)

    async def read_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    frame = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return frame
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data

    async def reply(self) -> r.ReplyHeader:
        header, _ = decode_prefix(r.ReplyHeader, await self.read_frame())
        return header

    async def wait_closed(self) -> None:
        while await self.stream.receive_some(65536):
            pass


async def start(nursery: trio.Nursery, storage: SlowStorage | None = None, **config: Any) -> rt.Server:
    conf = cfg.ServerConfig(client_port=0, four_letter_whitelist=cfg.ALL_4LW, **config)
    server = rt.Server(conf, storage=storage or SlowStorage(), core_factory=FakeCore)
    await nursery.start(server.run)
    return server


def port_of(server: rt.Server) -> int:
    return server.addresses[0][1]


async def test_replies_in_order_and_writes_after_sync() -> None:
    storage = SlowStorage(sync_s=0.002)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, storage)
            c = await Client.connect(port_of(server))
            for xid in range(1, 201):
                await c.request(xid, SET if xid % 2 else GET, b"d")
            for xid in range(1, 201):
                h = await c.reply()
                assert h.xid == xid
                if xid % 2:
                    # The reply to a write leaves only once its txn is durable.
                    assert any(z >= h.zxid for z in storage.synced)
            nursery.cancel_scope.cancel()
    core = server.core
    # Group commit: 100 writes pipelined behind slow syncs share far fewer syncs.
    assert sum(core.committed_batches) == 100
    assert len(core.committed_batches) < 50
    assert storage.closed


async def test_unknown_opcode_gets_an_error_and_connection_stays() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            c = await Client.connect(port_of(server))
            await c.request(1, 777)
            assert (await c.reply()).err == Err.UNIMPLEMENTED
            await c.request(2, GET, b"still here")
            assert (await c.reply()).xid == 2
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x7f\xff\xff\xff",  # frame length far over jute.maxbuffer
        b"\xff\xff\xff\xf0",  # negative length
        b"\x00\x00\x00\x03abc",  # too short for a RequestHeader
    ],
)
async def test_protocol_error_closes_only_that_connection(garbage: bytes) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            good = await Client.connect(port_of(server))
            bad = await Client.connect(port_of(server))
            await bad.stream.send_all(garbage)
            await bad.wait_closed()
            await good.request(1, GET, b"ok")
            assert (await good.reply()).xid == 1
            await trio.testing.wait_all_tasks_blocked()
            assert server.core.lost == [2]  # the core hears that the session's connection went away
            nursery.cancel_scope.cancel()


async def test_garbage_before_handshake() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            bad = await Client.connect(port_of(server), handshake=False)
            await bad.stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
            await bad.wait_closed()
            good = await Client.connect(port_of(server))
            await good.request(1, GET)
            assert (await good.reply()).xid == 1
            nursery.cancel_scope.cancel()


async def test_core_close_flushes_first() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            c = await Client.connect(port_of(server))
            await c.request(1, GET, b"a")
            await c.request(2, CLOSE_ME)
            assert (await c.reply()).xid == 1
            assert (await c.reply()).xid == 2
            await c.wait_closed()
            await trio.testing.wait_all_tasks_blocked()
            # A close the core asked for is not reported back as connection_lost.
            assert server.core.lost == []
            nursery.cancel_scope.cancel()


async def test_slow_reader_is_dropped_without_stalling_others() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, connection_max_outbound_bytes=4 * 1024 * 1024)
            slow = await Client.connect(port_of(server))
            fast = await Client.connect(port_of(server))
            # 200 x 500 kB replies that the slow client never reads.
            try:
                for xid in range(1, 201):
                    await slow.request(xid, BIG)
            except trio.BrokenResourceError:
                pass  # the server already hung up on us
            for xid in range(1, 51):
                await fast.request(xid, GET, b"f")
                assert (await fast.reply()).xid == xid
            with trio.move_on_after(5):
                while slow.stream.socket.fileno() >= 0:
                    await trio.sleep(0.01)
                    if 1 in server.core.lost:
                        break
            assert server.core.lost == [1]
            nursery.cancel_scope.cancel()


async def test_four_letter_words_through_the_runtime() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery)
            c = await Client.connect(port_of(server))

            async def word(w: bytes) -> bytes:
                s = await trio.open_tcp_stream("127.0.0.1", port_of(server))
                await s.send_all(w)
                out = b""
                while chunk := await s.receive_some(65536):
                    out += chunk
                return out

            assert await word(b"ruok") == b"imok"
            srvr = (await word(b"srvr")).decode()
            # As in ZooKeeper, the four-letter-word connection itself is counted.
            assert "Connections: 2\n" in srvr and "Mode: standalone\n" in srvr
            cons = (await word(b"cons")).decode()
            assert f"sid={hex(1000 + 1)}" in cons
            await c.request(1, GET)
            assert (await c.reply()).xid == 1
            nursery.cancel_scope.cancel()


async def test_four_letter_whitelist_applies() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            conf = cfg.ServerConfig(client_port=0)
            server = rt.Server(conf, storage=SlowStorage(), core_factory=FakeCore)
            await nursery.start(server.run)
            s = await trio.open_tcp_stream("127.0.0.1", port_of(server))
            await s.send_all(b"envi")
            out = b""
            while chunk := await s.receive_some(65536):
                out += chunk
            assert out == b"envi is not executed because it is not in the whitelist.\n"
            nursery.cancel_scope.cancel()


async def test_snapshots_every_snap_count() -> None:
    storage = SlowStorage()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, storage, snap_count=10)
            c = await Client.connect(port_of(server))
            for xid in range(1, 41):
                await c.request(xid, SET)
                await c.reply()
                # A snapshot still being saved makes the server skip the next one (as
                # ZooKeeper's "too busy to snap"); let each finish so the count is exact.
                while server.snapshots.busy:
                    await trio.sleep(0.001)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    # Between snapCount/2 and snapCount txns apart, each at a committed zxid.
    assert len(storage.snapshots_saved) >= 4
    assert all(z <= 40 for z in storage.snapshots_saved)


async def test_ticks_reach_the_core_every_half_tick_time(autojump_clock: trio.testing.MockClock) -> None:
    storage = SlowStorage()
    storage.durable = False  # type: ignore[misc]  # no threads: the mock clock must not jump during one
    async with trio.open_nursery() as nursery:
        server = await start(nursery, storage, tick_time=200)
        await trio.sleep(1.0 + 0.05)
        assert server.core.ticks == 10
        nursery.cancel_scope.cancel()


def test_clock_is_wall_time_advanced_by_trio() -> None:
    async def main() -> tuple[int, int]:
        clock = rt.Clock(epoch_ms=1_000_000)
        first = clock.now_ms()
        await trio.sleep(5)
        return first, clock.now_ms()

    first, later = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert first == 1_000_000 and later == 1_005_000


# -- with the real core ------------------------------------------------------


async def test_silent_session_expires_on_the_server_clock(autojump_clock: trio.testing.MockClock) -> None:
    # The real ServerCore under a MockClock: virtual time only moves when every
    # task waits, so the silent client's session must expire after its negotiated
    # timeout, measured on the server's (virtual) clock, and not before.
    from trizab.server.core import ServerCore  # noqa: F401 - fail here if the core is missing

    conf = cfg.ServerConfig(client_port=0, tick_time=200, storage_name="memory")
    server = rt.Server(conf, storage=MemoryStoragePlugin(), clock=rt.Clock(epoch_ms=1_700_000_000_000))
    listener = MemoryListener()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(server.run, listeners=[listener]))
            c = Client(await listener.connect())  # type: ignore[arg-type]
            await c.send_frame(encode(r.ConnectRequest(0, 0, 10000, 0, b"\0" * 16, False)))
            assert decode(r.ConnectResponse, await c.read_frame()).time_out == 4000
            started = trio.current_time()
            create = encode(r.CreateRequest("/eph", b"", [r.ACL(31, r.Id("world", "anyone"))], 1))
            await c.request(1, OpCode.CREATE, create)
            assert (await c.reply()).err == 0
            assert server.core.ephemerals_by_session()
            # Pinging within the timeout keeps the session alive however long we wait.
            for xid in range(2, 12):
                await trio.sleep(1.5)
                await c.request(xid, OpCode.PING)
                assert (await c.reply()).xid == xid
            assert server.core.sessions()
            started = trio.current_time()
            while server.core.sessions():
                await trio.sleep(0.05)
            elapsed_ms = (trio.current_time() - started) * 1000
            # Negotiated timeout: the requested 10 s clamped to maxSessionTimeout = 20 ticks = 4000 ms.
            assert 4000 - 200 <= elapsed_ms <= 4000 + 3 * 200
            assert not server.core.ephemerals_by_session()
            await c.wait_closed()  # expiry closes the connection
            nursery.cancel_scope.cancel()


async def test_tree_settles_before_the_collector_runs_again() -> None:
    # The collector is paused from the storage's open until ``on_tree_settled`` (trizab serve:
    # gc.freeze for a big tree) has run: otherwise it walks every record and znode recovered.
    seen: list[tuple[int, bool]] = []
    opened_with_collector: list[bool] = []

    class Storage(MemoryStoragePlugin):
        def open(self) -> Any:
            opened_with_collector.append(gc.isenabled())
            return super().open()

    conf = cfg.ServerConfig(client_port=0, tick_time=200, storage_name="memory")
    server = rt.Server(
        conf,
        storage=Storage(),
        on_tree_settled=lambda count: seen.append((count, gc.isenabled())),
    )
    assert gc.isenabled()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(server.run, listeners=[MemoryListener()]))
            assert gc.isenabled()
            nursery.cancel_scope.cancel()
    assert opened_with_collector == [False]
    assert seen and seen[0][1] is False


async def test_collector_runs_again_when_recovery_fails() -> None:
    class Broken(MemoryStoragePlugin):
        def open(self) -> Any:
            raise OSError("unreadable")

    server = rt.Server(cfg.ServerConfig(client_port=0, storage_name="memory"), storage=Broken())
    with pytest.raises(OSError, match="unreadable"):
        await server.run(listeners=[MemoryListener()])
    assert gc.isenabled()


class BackgroundSlowStorage(SlowStorage):
    """SlowStorage offering BackgroundSync: timer threads 'finish' syncs, signalled through a pipe."""

    def __init__(self, sync_s: float, slots: int = 1) -> None:
        super().__init__(sync_s)
        self.sync_slots = slots
        self._done_r, self._done_w = os.pipe()
        os.set_blocking(self._done_r, False)
        self._flying: collections.deque[tuple[int, threading.Event]] = collections.deque()
        self.events: list[tuple[str, int]] = []  # ("start" | "done" | "commit", zxid), in order
        self.max_flying = 0

    def sync_start(self) -> bool:
        assert len(self._flying) < self.sync_slots, "more syncs in flight than slots"
        upto = self.appended[-1] if self.appended else 0
        if upto <= max([z for z, _ in self._flying] + self.synced[-1:] + [0]):
            return False
        done = threading.Event()

        def finish() -> None:
            done.set()
            os.write(self._done_w, b".")

        self._flying.append((upto, done))
        self.max_flying = max(self.max_flying, len(self._flying))
        self.events.append(("start", upto))
        threading.Timer(self.sync_s, finish).start()
        return True

    def sync(self) -> None:  # the runtime syncs a lone txn inline
        super().sync()
        self.events.append(("done", self.synced[-1]))

    def sync_fileno(self) -> int:
        return self._done_r

    def sync_finished(self) -> bool:
        if not self._flying:
            return True
        try:
            os.read(self._done_r, 64)
        except BlockingIOError:
            pass
        upto, done = self._flying[0]
        if not done.is_set():
            return False
        self._flying.popleft()
        MemoryStoragePlugin.sync(self)
        with self._mu:
            self.synced.append(upto)
        self.events.append(("done", upto))
        return True


async def write_in_waves(
    clients: list[Client], storage: SlowStorage, *, waves: int, per_wave: int, pause_s: float
) -> None:
    """Each client sends ``per_wave`` writes (xids 1, 2, ...) per wave, with a pause between
    waves; then every reply must come back in order, each only once its txn is durable."""
    for wave in range(waves):
        for c in clients:
            for k in range(per_wave):
                await c.request(wave * per_wave + k + 1, SET, b"d")
        await trio.sleep(pause_s)
    for c in clients:
        for xid in range(1, waves * per_wave + 1):
            h = await c.reply()
            assert h.xid == xid
            # The reply to a write leaves only once its txn is durable.
            assert any(z >= h.zxid for z in storage.synced)


@pytest.mark.parametrize("slots", [1, 2])
async def test_background_sync_is_pipelined_and_still_acknowledges_only_durable_writes(slots: int) -> None:
    storage = BackgroundSlowStorage(sync_s=0.003, slots=slots)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, storage)
            core = server.core
            committed = core.committed

            def recording_committed(txns: list[Txn], now_ms: int) -> None:
                storage.events.append(("commit", txns[-1].zxid))
                committed(txns, now_ms)

            core.committed = recording_committed
            clients = [await Client.connect(port_of(server)) for _ in range(4)]
            # Writes keep arriving while syncs (3 ms) are in flight.
            await write_in_waves(clients, storage, waves=25, per_wave=2, pause_s=0.0005)
            nursery.cancel_scope.cancel()
    assert sum(core.committed_batches) == 200
    events = storage.events
    # Every batch is applied only after the sync covering it finished...
    for k, (kind, zxid) in enumerate(events):
        if kind == "commit":
            assert any(e == ("done", z) and z >= zxid for e in events[:k] for z in [e[1]])
    # ...and at least once the next batch's sync was already running when a batch was applied.
    overlapped = [
        k
        for k, (kind, zxid) in enumerate(events)
        if kind == "commit" and k > 0 and events[k - 1][0] == "start" and events[k - 1][1] > zxid
    ]
    assert overlapped, events
    # With two slots, a second sync starts while the first is still in flight.
    assert storage.max_flying == slots, events
    assert storage.closed


class HelperLikeStorage(SlowStorage):
    """BackgroundSync shaped like txnlog's fsync helpers: one pipe per helper, each sync on the
    next idle one, and every ``drain_every``-th ``sync_start`` made while a sync is in flight
    first completes every sync in flight itself (txnlog does that before it starts a new log
    segment), so the oldest sync's descriptor changes under a runtime that may be waiting on
    the drained one.  Starts are reported finished one per ``sync_finished``, in order."""

    sync_slots = 2

    def __init__(self, sync_s: float, drain_every: int) -> None:
        super().__init__(sync_s)
        self.drain_every = drain_every
        self.pipes = [os.pipe() for _ in range(self.sync_slots)]
        for read_end, _ in self.pipes:
            os.set_blocking(read_end, False)
        # (start number, zxid durable once done, helper, done): oldest first
        self.flying: collections.deque[tuple[int, int, int, threading.Event]] = collections.deque()
        self.starts = self.durable_start = self.reported_start = 0
        self.overlapping_starts = 0
        self.drains = 0
        self.last_helper = -1

    def sync_start(self) -> bool:
        assert len(self.flying) < self.sync_slots, "more syncs in flight than slots"
        self.starts += 1
        upto = self.appended[-1] if self.appended else 0
        if self.flying:
            self.overlapping_starts += 1
            if self.overlapping_starts % self.drain_every == 0:
                self.drains += 1
                while self.flying:
                    self.flying[0][3].wait()
                    self._complete_oldest()
        busy = {helper for _, _, helper, _ in self.flying}
        after = [(self.last_helper + k) % self.sync_slots for k in range(1, self.sync_slots + 1)]
        helper = self.last_helper = next(h for h in after if h not in busy)
        done = threading.Event()

        def finish() -> None:
            os.write(self.pipes[helper][1], b".")
            done.set()

        self.flying.append((self.starts, upto, helper, done))
        threading.Timer(self.sync_s, finish).start()
        return True

    def _complete_oldest(self) -> bool:
        start, upto, helper, _ = self.flying[0]
        try:
            os.read(self.pipes[helper][0], 1)
        except BlockingIOError:
            return False
        self.flying.popleft()
        MemoryStoragePlugin.sync(self)
        with self._mu:
            self.synced.append(upto)
        self.durable_start = start
        return True

    def sync(self) -> None:  # the runtime syncs a lone txn inline: at once here
        MemoryStoragePlugin.sync(self)
        with self._mu:
            self.synced.append(self.appended[-1] if self.appended else 0)

    def sync_fileno(self) -> int:
        if self.reported_start < self.durable_start or not self.flying:
            return -1
        return self.pipes[self.flying[0][2]][0]

    def sync_finished(self) -> bool:
        if self.reported_start >= self.starts:
            return True
        if self.reported_start >= self.durable_start and self.flying:
            self._complete_oldest()
        if self.reported_start < self.durable_start:
            self.reported_start += 1
            return True
        return False


async def test_background_sync_survives_the_engine_completing_syncs_itself() -> None:
    # Regression: the storage worker waited on the descriptor of the sync that was oldest when
    # it went to sleep; after the engine drained that sync inside sync_start (txnlog's segment
    # roll) and ran the next one on another helper, nothing ever woke it: the server stalled.
    storage = HelperLikeStorage(sync_s=0.005, drain_every=1)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, storage)
            clients = [await Client.connect(port_of(server)) for _ in range(4)]
            # Four writes every ms while a sync takes 5 ms.
            await write_in_waves(clients, storage, waves=100, per_wave=1, pause_s=0.001)
            nursery.cancel_scope.cancel()
    assert storage.drains >= 5, (storage.drains, storage.overlapping_starts)
