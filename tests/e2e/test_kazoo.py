"""Stock kazoo against a real ``trizab serve`` process: the API and the recipes.

Every test uses its own paths on one module-wide server, so they are independent
and the server starts once.  Waiting is on kazoo events with timeouts, never on
sleeps.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from e2e_raw import RawSession
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.protocol.states import EventType
from kazoo.security import make_digest_acl

from testkit.process import TrizabProcess
from trizab.wire import records as r
from trizab.wire.jute import decode, decode_prefix, encode

pytestmark = pytest.mark.slow

WAIT = 10.0


class _External:
    """A server someone else runs, e.g. Apache ZooKeeper, to check these tests themselves."""

    def __init__(self, address: str) -> None:
        self.address = address


@pytest.fixture
def server(request: pytest.FixtureRequest) -> TrizabProcess | _External:
    # TRIZAB_E2E_ADDRESS=host:port runs this module against another server (tests use unique paths).
    external = os.environ.get("TRIZAB_E2E_ADDRESS")
    if external:
        return _External(external)
    return request.getfixturevalue("shared_trizab_server")


@pytest.fixture
def make_client(server: TrizabProcess | _External) -> Iterator[Callable[..., KazooClient]]:
    clients: list[KazooClient] = []

    def make(**kw: object) -> KazooClient:
        c = KazooClient(hosts=server.address, **kw)  # type: ignore[arg-type]
        c.start(timeout=WAIT)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(make_client: Callable[..., KazooClient]) -> KazooClient:
    return make_client()


@pytest.fixture
def base(zk: KazooClient) -> str:
    path = f"/t-{uuid.uuid4().hex[:10]}"
    zk.create(path)
    return path


class Events:
    """Collects watch callbacks; wait_for blocks until n events arrived."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.cond = threading.Condition()

    def __call__(self, event: object) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait_for(self, n: int = 1) -> list[object]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= n, WAIT), f"only {self.items}"
            return list(self.items)


def test_server_version_is_3_8(zk: KazooClient) -> None:
    assert zk.server_version()[:2] == (3, 8)
    assert zk.command(b"ruok") == "imok"


def test_crud_and_stat(zk: KazooClient, base: str) -> None:
    path = f"{base}/node"
    assert zk.create(path, b"v1") == path
    data, stat = zk.get(path)
    assert data == b"v1" and stat.version == 0 and stat.dataLength == 2 and stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid and stat.ctime == stat.mtime
    stat2 = zk.set(path, b"value-2")
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid and stat2.dataLength == 7
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create(path)
    zk.create(f"{path}/child")
    with pytest.raises(NotEmptyError):
        zk.delete(path)
    parent_stat = zk.exists(path)
    assert parent_stat is not None and parent_stat.numChildren == 1 and parent_stat.cversion == 1
    assert zk.get_children(path) == ["child"]
    zk.delete(path, recursive=True)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child")
    zk.ensure_path(f"{base}/a/b/c")
    assert zk.exists(f"{base}/a/b/c") is not None
    assert "zookeeper" in zk.get_children("/")


def test_sequential_nodes(zk: KazooClient, base: str) -> None:
    first = zk.create(f"{base}/s-", sequence=True)
    second = zk.create(f"{base}/s-", sequence=True)
    assert first == f"{base}/s-0000000000"
    assert second == f"{base}/s-0000000001"
    zk.delete(second)
    # Observed on Apache ZooKeeper 3.8.0: the third name is ...0002 and the parent's
    # cversion ends at 4 (three creates and one delete).
    assert zk.create(f"{base}/s-", sequence=True) == f"{base}/s-0000000002"
    assert zk.exists(base).cversion == 4


def test_data_child_exists_watches_are_one_shot(
    zk: KazooClient, make_client: Callable[..., KazooClient], base: str
) -> None:
    other = make_client()
    path = f"{base}/w"
    exists_events, data_events, child_events = Events(), Events(), Events()
    assert zk.exists(path, watch=exists_events) is None
    other.create(path, b"1")
    assert exists_events.wait_for(1)[0].type == EventType.CREATED
    zk.get(path, watch=data_events)
    zk.get_children(path, watch=child_events)
    other.set(path, b"2")
    other.set(path, b"3")  # the data watch was one-shot: no second event
    other.create(f"{path}/c")
    assert data_events.wait_for(1)[0].type == EventType.CHANGED
    assert child_events.wait_for(1)[0].type == EventType.CHILD
    # A round trip after the changes: any extra event would have arrived before its reply.
    zk.sync(path)
    zk.get(path)
    assert len(data_events.items) == 1 and len(exists_events.items) == 1 and len(child_events.items) == 1


def test_watch_event_arrives_before_the_reply_showing_the_change(
    server: TrizabProcess | _External, zk: KazooClient, base: str
) -> None:
    path = f"{base}/order"
    zk.create(path, b"0")
    raw = RawSession(server.address)
    try:
        header, _ = raw.call(4, r.GetDataRequest(path, True))
        assert header.err == 0
        zk.set(path, b"1")
        # The watcher's next read sees the change, so the event must come first on its wire.
        raw.xid += 1
        raw.send_frame(struct.pack(">ii", raw.xid, 4) + encode(r.GetDataRequest(path, False)))
        first, pos = decode_prefix(r.ReplyHeader, raw.read_frame_bytes())
        assert first.xid == -1
        event = decode(r.WatcherEvent, raw._last, pos)
        assert (event.type, event.path) == (3, path)  # NodeDataChanged
        second, pos = decode_prefix(r.ReplyHeader, raw.read_frame_bytes())
        assert second.xid == raw.xid
        assert decode(r.GetDataResponse, raw._last, pos).data == b"1"
    finally:
        raw.close()


def test_delete_fires_data_and_child_watches(
    zk: KazooClient, make_client: Callable[..., KazooClient], base: str
) -> None:
    other = make_client()
    path = f"{base}/d"
    zk.create(path)
    data_events, child_events = Events(), Events()
    zk.get(path, watch=data_events)
    zk.get_children(path, watch=child_events)
    other.delete(path)
    assert data_events.wait_for(1)[0].type == EventType.DELETED
    assert child_events.wait_for(1)[0].type == EventType.DELETED


def test_ephemeral_goes_away_when_session_closes(make_client: Callable[..., KazooClient], base: str) -> None:
    owner, watcher = make_client(), make_client()
    path = f"{base}/eph"
    owner.create(path, b"x", ephemeral=True)
    stat = watcher.exists(path)
    assert stat is not None and stat.ephemeralOwner == owner.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create(f"{path}/child")
    events = Events()
    watcher.exists(path, watch=events)
    owner.stop()
    assert events.wait_for(1)[0].type == EventType.DELETED
    assert watcher.exists(path) is None


def test_transactions(zk: KazooClient, base: str) -> None:
    tx = zk.transaction()
    tx.create(f"{base}/t1", b"a")
    tx.create(f"{base}/t2", b"b")
    tx.set_data(f"{base}/t1", b"c")
    tx.check(f"{base}/t2", 0)
    results = tx.commit()
    assert results[0] == f"{base}/t1" and results[1] == f"{base}/t2"
    assert zk.get(f"{base}/t1")[0] == b"c"
    tx = zk.transaction()
    tx.create(f"{base}/t3")
    tx.delete(f"{base}/nope")
    tx.create(f"{base}/t4")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NoNodeError)
    assert zk.exists(f"{base}/t3") is None and zk.exists(f"{base}/t4") is None


def test_acls_and_digest_auth(make_client: Callable[..., KazooClient], base: str) -> None:
    alice = make_client(auth_data=[("digest", "alice:secret")])
    stranger = make_client()
    path = f"{base}/private"
    acl = make_digest_acl("alice", "secret", all=True)
    alice.create(path, b"mine", acl=[acl])
    assert alice.get(path)[0] == b"mine"
    with pytest.raises(NoAuthError):
        stranger.get(path)
    with pytest.raises(NoAuthError):
        stranger.set(path, b"theirs")
    stranger.add_auth("digest", "alice:secret")
    assert stranger.get(path)[0] == b"mine"
    acls, stat = alice.get_acls(path)
    assert acls == [acl] and stat.aversion == 0
    readonly = make_digest_acl("alice", "secret", read=True)
    alice.set_acls(path, [readonly])
    assert alice.get_acls(path)[1].aversion == 1
    with pytest.raises(NoAuthError):
        alice.set(path, b"x")


# -- recipes ---------------------------------------------------------------


def test_lock(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    lock_a, lock_b = a.Lock(f"{base}/lock", "a"), b.Lock(f"{base}/lock", "b")
    assert lock_a.acquire(timeout=WAIT)
    assert not lock_b.acquire(blocking=False)
    got = threading.Event()

    def take() -> None:
        if lock_b.acquire(timeout=WAIT):
            got.set()

    t = threading.Thread(target=take)
    t.start()
    assert set(lock_a.contenders()) == {"a", "b"} or lock_a.contenders()[0] == "a"
    lock_a.release()
    assert got.wait(WAIT)
    t.join(WAIT)
    lock_b.release()


def test_election(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    leader = threading.Event()
    elected: list[str] = []
    release_a = threading.Event()

    def lead(name: str) -> Callable[[], None]:
        def fn() -> None:
            elected.append(name)
            leader.set()
            if name == "a":
                release_a.wait(WAIT)

        return fn

    ea = a.Election(f"{base}/election", "a")
    eb = b.Election(f"{base}/election", "b")
    ta = threading.Thread(target=ea.run, args=(lead("a"),))
    ta.start()
    assert leader.wait(WAIT)
    tb = threading.Thread(target=eb.run, args=(lead("b"),))
    tb.start()
    release_a.set()
    ta.join(WAIT)
    tb.join(WAIT)
    assert elected == ["a", "b"]


def test_barrier_and_double_barrier(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    barrier = a.Barrier(f"{base}/barrier")
    barrier.create()
    assert not b.Barrier(f"{base}/barrier").wait(timeout=0.05)
    passed = threading.Event()
    t = threading.Thread(target=lambda: b.Barrier(f"{base}/barrier").wait(WAIT) and passed.set())
    t.start()
    barrier.remove()
    assert passed.wait(WAIT)
    t.join(WAIT)

    da = a.DoubleBarrier(f"{base}/double", 2)
    db = b.DoubleBarrier(f"{base}/double", 2)
    t = threading.Thread(target=db.enter)
    t.start()
    da.enter()
    t.join(WAIT)
    assert da.participating and db.participating
    t = threading.Thread(target=db.leave)
    t.start()
    da.leave()
    t.join(WAIT)
    assert not t.is_alive()


def test_counter(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    ca, cb = a.Counter(f"{base}/counter"), b.Counter(f"{base}/counter")
    for _ in range(5):
        ca += 1
        cb += 2
    assert ca.value == 15 and cb.value == 15


def test_queues(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    q = a.Queue(f"{base}/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    assert len(q) == 3
    assert [b.Queue(f"{base}/queue").get() for _ in range(3)] == [b"one", b"two", b"three"]
    lq = a.LockingQueue(f"{base}/lqueue")
    lq.put(b"low", priority=100)
    lq.put(b"high", priority=1)
    consumer = b.LockingQueue(f"{base}/lqueue")
    assert consumer.get(timeout=WAIT) == b"high"
    assert consumer.consume()
    assert consumer.get(timeout=WAIT) == b"low"
    assert consumer.consume()
    assert len(consumer) == 0


def test_party_and_semaphore(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    pa, pb = a.Party(f"{base}/party", "a"), b.Party(f"{base}/party", "b")
    pa.join()
    pb.join()
    assert sorted(pa) == ["a", "b"] and len(pb) == 2
    pb.leave()
    assert list(pa) == ["a"]
    sa = a.Semaphore(f"{base}/sem", max_leases=1)
    sb = b.Semaphore(f"{base}/sem", max_leases=1)
    assert sa.acquire(timeout=WAIT)
    assert not sb.acquire(blocking=False)
    sa.release()
    assert sb.acquire(timeout=WAIT)
    sb.release()


def test_tree_cache(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    from kazoo.recipe.cache import TreeCache, TreeEvent

    root = f"{base}/tree"
    a.create(f"{root}/x", b"1", makepath=True)
    cache = TreeCache(b, root)
    events = Events()
    cache.listen(events)
    cache.start()
    try:
        events.wait_for(1)
        with events.cond:
            assert events.cond.wait_for(
                lambda: any(e.event_type == TreeEvent.INITIALIZED for e in events.items), WAIT
            )
        assert cache.get_data(f"{root}/x").data == b"1"
        a.set(f"{root}/x", b"2")
        a.create(f"{root}/y", b"3")
        with events.cond:
            assert events.cond.wait_for(
                lambda: cache.get_data(f"{root}/y") is not None and cache.get_data(f"{root}/x").data == b"2",
                WAIT,
            )
        assert sorted(cache.get_children(root)) == ["x", "y"]
    finally:
        cache.close()


def test_data_and_children_watch(make_client: Callable[..., KazooClient], base: str) -> None:
    a, b = make_client(), make_client()
    path = f"{base}/dw"
    a.create(path, b"0")
    data_seen, children_seen = Events(), Events()
    b.DataWatch(path, lambda data, stat: data_seen(data))
    b.ChildrenWatch(path, lambda children: children_seen(sorted(children)))
    data_seen.wait_for(1)
    children_seen.wait_for(1)
    a.set(path, b"1")
    a.create(f"{path}/k")
    assert data_seen.wait_for(2)[:2] == [b"0", b"1"]
    assert children_seen.wait_for(2)[:2] == [[], ["k"]]
