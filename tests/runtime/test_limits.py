"""The client port's limits, each a zoo.cfg key, through the runtime over real sockets and
memory streams: requests in flight (globalOutstandingLimit, connectionOutstandingLimit),
maxCnxns, and the connection throttle (connectionMaxTokens & co.).  maxClientCnxns is
tested on a real process in tests/e2e/test_hostile_and_sessions.py, the outbound byte
limit (connectionMaxOutboundBytes) in test_server_runtime.py's slow-reader test."""

from __future__ import annotations

import collections
import functools
import random
import struct
from typing import Any

import pytest
import trio
import trio.testing
from test_server_runtime import GET, Client, FakeCore, SlowStorage
from trizab.plugins.storage.memory import MemoryStoragePlugin

from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.runtime.clients import RECEIVE_SIZE
from trizab.runtime.limits import ConnectionThrottle
from trizab.server.api import Reply
from trizab.testing.memnet import MemoryListener
from trizab.wire import records as r
from trizab.wire.jute import decode, encode

HOLD = 60  # answered only once the test releases it


class HoldCore(FakeCore):
    """FakeCore plus HOLD requests, answered (in order) as the test releases them, on a tick."""

    def __init__(self, config: cfg.ServerConfig, now_ms: int) -> None:
        super().__init__(config, now_ms)
        self.held: collections.deque[tuple[int, int]] = collections.deque()
        self.per_conn: collections.Counter[int] = collections.Counter()
        self.received: collections.Counter[int] = collections.Counter()
        self.max_held = 0
        self.max_per_conn = 0
        self.release = 0  # how many held requests the next ticks may answer

    def receive(self, conn_id: int, xid: int, opcode: int, payload: Any, now_ms: int) -> None:
        if opcode != HOLD:
            super().receive(conn_id, xid, opcode, payload, now_ms)
            return
        self.queues.setdefault(conn_id, []).append([xid, None])
        self.held.append((conn_id, xid))
        self.per_conn[conn_id] += 1
        self.received[conn_id] += 1
        self.max_held = max(self.max_held, len(self.held))
        self.max_per_conn = max(self.max_per_conn, self.per_conn[conn_id])

    def tick(self, now_ms: int) -> None:
        super().tick(now_ms)
        while self.release and self.held:
            self.release -= 1
            conn_id, xid = self.held.popleft()
            self.per_conn[conn_id] -= 1
            for item in self.queues.get(conn_id, []):
                if item[0] == xid and item[1] is None:
                    item[1] = Reply(r.ReplyHeader(xid, self.last_zxid, 0))
                    break
            self._flush(conn_id)


async def start(nursery: trio.Nursery, listener: MemoryListener | None = None, **config: Any) -> rt.Server:
    conf = cfg.ServerConfig(client_port=0, tick_time=20, four_letter_whitelist=cfg.ALL_4LW, **config)
    # Memory storage syncs inline, so a MockClock's virtual time is never waiting for a thread.
    storage = MemoryStoragePlugin() if listener is not None else SlowStorage()
    server = rt.Server(conf, storage=storage, core_factory=HoldCore)
    listeners = None if listener is None else [listener]
    await nursery.start(functools.partial(server.run, listeners=listeners))
    return server


async def connect(server: rt.Server, listener: MemoryListener | None) -> Client:
    if listener is None:
        return await Client.connect(server.addresses[0][1])
    c = Client(await listener.connect())
    await c.send_frame(encode(r.ConnectRequest(0, 0, 10000, 0, b"\0" * 16, False)))
    decode(r.ConnectResponse, await c.read_frame())
    return c


async def settle(check: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.005)
    await trio.sleep(0.1)  # and nothing more arrives


async def send_burst(c: Client, first_xid: int, count: int, opcode: int = HOLD) -> None:
    """``count`` requests in one write (one receive on the server if the socket allows)."""
    await c.stream.send_all(
        b"".join(struct.pack(">iii", 8, xid, opcode) for xid in range(first_xid, first_xid + count))
    )


@pytest.fixture(params=["socket", "memory"])
def transport(request: pytest.FixtureRequest) -> MemoryListener | None:
    """Real sockets (the one socket reader) or memory streams (a reader task per connection)."""
    return None if request.param == "socket" else MemoryListener()


async def test_global_outstanding_limit_stops_reading_and_resumes(transport: MemoryListener | None) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, transport, global_outstanding_limit=10)
            core: HoldCore = server.core
            a = await connect(server, transport)
            await send_burst(a, 1, 50)
            await settle(lambda: core.received[1] >= 10)
            # Ten in flight in all: the other forty stay unread (in the parser or the socket).
            assert core.received[1] == 10 and server.connections.outstanding == 10
            conn_a = server.connections.by_id[1]
            assert conn_a.interest_ops == 0  # what cons shows for a connection we stopped reading
            # A connection with nothing in flight may still send one (ZooKeeper's shouldThrottle).
            b = await connect(server, transport)
            await send_burst(b, 1, 3)
            await settle(lambda: core.received[2] >= 1)
            assert core.received[2] == 1 and server.connections.outstanding == 11
            # Answers make room: everything is read and answered, in order, never more than the
            # limit (plus b's one) in flight.
            core.release = 1000
            for xid in range(1, 51):
                assert (await a.reply()).xid == xid
            for xid in range(1, 4):
                assert (await b.reply()).xid == xid
            assert core.max_held <= 11
            assert server.connections.outstanding == 0 and conn_a.interest_ops == 1
            # Reading goes on normally afterwards.
            await a.request(51, GET, b"x")
            assert (await a.reply()).xid == 51
            nursery.cancel_scope.cancel()


async def test_connection_outstanding_limit_is_per_connection(transport: MemoryListener | None) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(
                nursery, transport, connection_outstanding_limit=5, global_outstanding_limit=0
            )
            core: HoldCore = server.core
            a = await connect(server, transport)
            b = await connect(server, transport)
            await send_burst(a, 1, 30)
            await send_burst(b, 1, 30)
            await settle(lambda: core.received[1] >= 5 and core.received[2] >= 5)
            assert (core.received[1], core.received[2]) == (5, 5)
            # Released a few at a time, each connection refills to five and no further.
            for _ in range(5):
                core.release = 3
                await settle(lambda: core.release == 0 and len(core.held) == 10)
                assert core.max_per_conn == 5
            core.release = 1000
            for c in (a, b):
                for xid in range(1, 31):
                    assert (await c.reply()).xid == xid
            assert core.max_per_conn == 5
            nursery.cancel_scope.cancel()


async def test_a_flooding_client_fills_its_own_tcp_window_not_our_memory() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, global_outstanding_limit=10)
            core: HoldCore = server.core
            a = await connect(server, None)
            burst = b"".join(struct.pack(">iii", 8, xid, HOLD) for xid in range(1, 10_001))
            sent = 0
            with trio.move_on_after(2):
                while True:
                    await a.stream.send_all(burst)
                    sent += len(burst)
            assert core.received[1] == 10
            # What the server took off the socket and holds: at most one receive and one frame.
            ready = server.clients._ready_sockets
            assert ready is not None
            (watched,) = ready._watched.values()
            assert watched.parser.buffered <= RECEIVE_SIZE + server.config.jute_max_buffer
            # The rest waits in the kernel's buffers, and then the client's send blocks.
            assert sent < 64 * 1024 * 1024
            nursery.cancel_scope.cancel()


async def test_closing_a_paused_connection_frees_its_share() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, global_outstanding_limit=4)
            core: HoldCore = server.core
            a = await connect(server, None)
            await send_burst(a, 1, 20)
            await settle(lambda: core.received[1] >= 4)
            await a.stream.aclose()
            await settle(lambda: 1 in core.lost)
            assert server.connections.outstanding == 0
            b = await connect(server, None)
            await send_burst(b, 1, 4)
            await settle(lambda: core.received[2] >= 4)
            assert core.received[2] == 4
            nursery.cancel_scope.cancel()


async def test_max_cnxns_counts_every_address() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start(nursery, max_cnxns=2, max_client_cnxns=0)
            a = await connect(server, None)
            b = await connect(server, None)  # kept: a dropped Client's socket closes
            third = Client(await trio.open_tcp_stream("127.0.0.1", server.addresses[0][1]))
            await third.wait_closed()
            await a.stream.aclose()
            await settle(lambda: len(server.connections.by_id) == 1)
            fourth = await connect(server, None)
            await fourth.request(1, GET, b"in")
            assert (await fourth.reply()).xid == 1
            await b.request(1, GET, b"still in")
            assert (await b.reply()).xid == 1
            nursery.cancel_scope.cancel()


# -- the connection throttle -------------------------------------------------------------


def throttle(now: list[float], **config: Any) -> ConnectionThrottle:
    return ConnectionThrottle(cfg.ServerConfig(**config), now_ms=lambda: now[0], rng=random.Random(1))


def test_token_bucket_follows_blue_throttle() -> None:
    now = [0.0]
    t = throttle(now, connection_max_tokens=3, connection_token_fill_time=100, connection_token_fill_count=2)
    assert [t.admit() for _ in range(4)] == [True, True, True, False]
    now[0] = 100.0  # not more than fillTime: BlueThrottle refills only after it has passed
    assert not t.admit()
    now[0] = 101.0  # 101 ms * 2 / 100 = 2 tokens
    assert [t.admit() for _ in range(3)] == [True, True, False]
    now[0] = 10_000.0  # never more than the maximum
    assert [t.admit() for _ in range(4)] == [True, True, True, False]
    assert t.refused == 4
    assert throttle(now).enabled is False and all(throttle(now).admit() for _ in range(10_000))


def test_blue_dropping_rises_while_empty_and_falls_when_refilled() -> None:
    now = [0.0]
    t = throttle(
        now,
        connection_max_tokens=2,
        connection_token_fill_time=1000,
        connection_freeze_time=10,
        connection_drop_increase=0.5,
        connection_drop_decrease=0.25,
    )
    assert t.admit() and t.admit() and not t.admit()
    now[0] = 11.0
    t.admit()  # empty for longer than the freeze time: drop probability up
    assert t.drop == 0.5
    now[0] = 22.0
    t.admit()
    assert t.drop == 1.0
    assert not any(t.admit() for _ in range(50))  # everything dropped
    now[0] = 5000.0  # refilled: deficit 0 <= 2 * 0, the probability comes down
    t.admit()
    assert t.drop == 0.75


async def test_throttled_session_request_is_closed_without_an_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await start(
                nursery,
                listener,
                connection_max_tokens=2,
                connection_token_fill_time=1000,
                connection_token_fill_count=1,
            )
            admitted = [await connect(server, listener), await connect(server, listener)]
            refused = Client(await listener.connect())
            await refused.send_frame(encode(r.ConnectRequest(0, 0, 10000, 0, b"\0" * 16, False)))
            with pytest.raises(EOFError):
                await refused.read_frame()
            # Four-letter words take no token (ZooKeeper throttles ConnectRequests only).
            ruok = Client(await listener.connect())
            await ruok.stream.send_all(b"ruok")
            assert await ruok.stream.receive_some(100) == b"imok"
            await trio.sleep(1.001)  # one fill period: one token back
            c = await connect(server, listener)
            await c.request(1, GET, b"hi")
            assert (await c.reply()).xid == 1
            assert server.clients.throttle.refused == 1
            assert len(admitted) == 2
            nursery.cancel_scope.cancel()
