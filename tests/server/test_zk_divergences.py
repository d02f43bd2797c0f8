"""Regression tests for the divergences the differential tester found between trizab and ZooKeeper.

Each expected value was observed on Apache ZooKeeper 3.8.0 by the differential tester
(``compat/differential``, ``tests/differential``), not read back from trizab.  The tester checks
the same cases against the real server; these tests keep them at the core level, without Java.
"""

from __future__ import annotations

from core_harness import Harness

from trizab.server.api import Reply
from trizab.tree.acl import OPEN_ACL_UNSAFE, java_set_order
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import CreateMode, Err, EventType, OpCode
from trizab.wire.requests import MultiOp, MultiResponse, encode_multi

ANYONE = list(OPEN_ACL_UNSAFE)


def err(rep: Reply) -> int:
    return rep.header.err


def zxid_now(h: Harness) -> int:
    return h.core.last_zxid


# -- 1. null paths and null ACL members -------------------------------------------------


def test_null_path_is_marshalling_error_and_keeps_the_connection(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    for opcode, req in [
        (OpCode.EXISTS, r.ExistsRequest(None, False)),
        (OpCode.GET_DATA, r.GetDataRequest(None, False)),
        (OpCode.GET_CHILDREN, r.GetChildrenRequest(None, False)),
        (OpCode.GET_CHILDREN2, r.GetChildren2Request(None, False)),
        (OpCode.GET_ACL, r.GetACLRequest(None)),
        (OpCode.GET_ALL_CHILDREN_NUMBER, r.GetAllChildrenNumberRequest(None)),
        (OpCode.CHECK_WATCHES, r.CheckWatchesRequest(None, 2)),
    ]:
        assert err(h.call(c, opcode, req)) == Err.MARSHALLING_ERROR, opcode
    assert zxid_now(h) == before  # reads: no transaction
    # addWatch keeps a (useless) watch on null; removeWatches finds none for a null path.
    assert err(h.call(c, OpCode.ADD_WATCH, r.AddWatchRequest(None, 0))) == 0
    assert err(h.call(c, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest(None, 2))) == Err.NO_WATCHER
    for opcode, req in [
        (OpCode.DELETE, r.DeleteRequest(None, -1)),
        (OpCode.CREATE, r.CreateRequest(None, b"", ANYONE, 0)),
        (OpCode.CREATE2, r.CreateRequest(None, b"", ANYONE, 0)),
        (OpCode.CREATE_CONTAINER, r.CreateRequest(None, b"", ANYONE, CreateMode.CONTAINER)),
    ]:
        rep = h.call(c, opcode, req)
        assert err(rep) == Err.MARSHALLING_ERROR, opcode
    # ...while setData and check validate the path first (BadArguments).
    assert err(h.call(c, OpCode.SET_DATA, r.SetDataRequest(None, b"", -1))) == Err.BAD_ARGUMENTS
    assert c not in h.closed


def test_null_acl_members(h: Harness) -> None:
    c, _ = h.session()

    def create(acl: list[r.ACL] | None) -> int:
        return err(h.call(c, OpCode.CREATE, r.CreateRequest("/a", b"", acl, 0)))

    world = r.ACL(31, r.Id("world", "anyone"))
    nulls = r.ACL(31, r.Id(None, None))
    assert create(None) == Err.INVALID_ACL
    assert create([nulls]) == Err.INVALID_ACL
    assert create([nulls, world]) == Err.INVALID_ACL  # world.equals(nulls) is merely false
    assert create([nulls, nulls]) == Err.MARSHALLING_ERROR  # nulls.equals(...) throws
    assert create([world, nulls]) == Err.MARSHALLING_ERROR
    for scheme in ("world", "digest", "ip"):
        assert create([r.ACL(31, r.Id(scheme, None))]) == Err.MARSHALLING_ERROR, scheme
    assert create([r.ACL(31, r.Id("bogus", None))]) == Err.INVALID_ACL
    assert create([r.ACL(31, r.Id("auth", None))]) == Err.INVALID_ACL  # no digest identity
    assert create([world]) == 0


# -- 2, 3. multi and multiRead that fail as a whole ----------------------------------------


def multi(h: Harness, c: int, ops: list[MultiOp], opcode: int = OpCode.MULTI) -> Reply:
    return h.call(c, opcode, encode_multi(ops))


def test_multi_with_a_null_path_fails_whole_without_a_txn(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    rep = multi(
        h,
        c,
        [
            MultiOp(OpCode.CREATE, r.CreateRequest("/a", b"", ANYONE, 0)),
            MultiOp(OpCode.CREATE, r.CreateRequest(None, b"", ANYONE, 0)),
        ],
    )
    assert err(rep) == Err.MARSHALLING_ERROR
    assert rep.body == MultiResponse([])  # just the done marker
    assert zxid_now(h) == before
    assert err(h.create(c, "/a")) == 0  # nothing of the failed multi is pending


def test_multi_with_a_null_world_id_is_an_error_txn_without_body(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    rep = multi(
        h, c, [MultiOp(OpCode.CREATE, r.CreateRequest("/d", b"", [r.ACL(31, r.Id("world", None))], 0))]
    )
    assert err(rep) == Err.MARSHALLING_ERROR and rep.body is None
    assert zxid_now(h) == before + 1


def test_multi_read_with_a_null_path_sends_the_results_so_far(h: Harness) -> None:
    c, _ = h.session()
    rep = multi(
        h,
        c,
        [
            MultiOp(OpCode.GET_DATA, r.GetDataRequest("/nope", False)),
            MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest("/zookeeper", False)),
            MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest(None, False)),
        ],
        OpCode.MULTI_READ,
    )
    assert err(rep) == Err.MARSHALLING_ERROR
    results = MultiResponse.decode(_enc(rep.body))
    assert [(x.type, x.err) for x in results.results] == [
        (OpCode.ERROR, Err.NO_NODE),
        (OpCode.GET_CHILDREN, 0),
    ]


def _enc(body: MultiResponse) -> bytes:
    out = bytearray()
    body.jute_encode(out)
    return bytes(out)


def test_write_inside_multi_read_is_marshalling_error_without_txn(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    rep = multi(h, c, [MultiOp(OpCode.CREATE, r.CreateRequest("/x", b"", ANYONE, 0))], OpCode.MULTI_READ)
    assert err(rep) == Err.MARSHALLING_ERROR and zxid_now(h) == before


def test_create_ttl_op_inside_multi(h: Harness) -> None:
    c, _ = h.session()
    # createTTL with a non-TTL mode is a plain create: result type 1, the ttl is dropped.
    rep = multi(h, c, [MultiOp(OpCode.CREATE_TTL, r.CreateTTLRequest("/t", b"", ANYONE, 0, 1))])
    assert err(rep) == 0
    assert [(x.type, x.body) for x in rep.body.results] == [(OpCode.CREATE, r.CreateResponse("/t"))]
    # ... and with the container mode a createContainer (result type 15).
    rep = multi(h, c, [MultiOp(OpCode.CREATE_TTL, r.CreateTTLRequest("/c", b"", ANYONE, 4, 1))])
    assert [x.type for x in rep.body.results] == [OpCode.CREATE2]
    assert h.core.tree.nodes["/c"].ephemeral_owner == -(2**63)


# -- 4, 5, 6. unknown opcodes, deleteContainer, reconfig with a bad body ---------------------


def test_unknown_opcode_replies_with_zxid_minus_one_and_keeps_the_connection(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/a")
    rep = h.call(c, 99)
    assert rep.header.err == Err.UNIMPLEMENTED and rep.header.zxid == -1
    assert c not in h.closed  # deliberate: issue 2 requires the connection to stay open
    assert h.stat(c, "/a") is not None


def test_client_delete_container_is_bad_arguments(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/n")
    before = zxid_now(h)
    # Whatever the body, an ErrorTxn (a zxid).
    assert err(h.call(c, OpCode.DELETE_CONTAINER, b"")) == Err.BAD_ARGUMENTS
    assert err(h.call(c, OpCode.DELETE_CONTAINER, r.SyncRequest("/n"))) == Err.BAD_ARGUMENTS
    assert zxid_now(h) == before + 2
    assert h.stat(c, "/n") is not None


def test_reconfig_with_a_bad_body_uses_no_zxid(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    rep = h.call(c, OpCode.RECONFIG, b"")
    assert err(rep) == Err.MARSHALLING_ERROR and zxid_now(h) == before
    rep = h.call(c, OpCode.RECONFIG, r.ReconfigRequest(None, None, None, -1))
    assert err(rep) == Err.RECONFIG_DISABLED and zxid_now(h) == before + 1


# -- 7. sasl without a SASL server ----------------------------------------------------------


def test_sasl_without_sasl_server(h: Harness) -> None:
    c, _ = h.session()
    rep = h.call(c, OpCode.SASL, r.GetSASLRequest(b"a"))
    assert rep.header == r.ReplyHeader(rep.header.xid, 0, 0) and rep.body == r.SetSASLResponse(None)
    assert c not in h.closed
    h.send(c, OpCode.SASL, r.GetSASLRequest(None))  # null token: closed without a reply
    assert c in h.closed and [o for o in h.take(c) if isinstance(o, Reply)] == []
    c2, _ = h.session()
    h.send(c2, OpCode.SASL, b"")  # body that does not decode: the same
    assert c2 in h.closed and [o for o in h.take(c2) if isinstance(o, Reply)] == []


def test_sasl_gives_up_after_a_few_rounds(h: Harness) -> None:
    c, _ = h.session()
    codes = []
    for _ in range(4):
        h.send(c, OpCode.SASL, r.GetSASLRequest(b""))
        codes += [o.header.err for o in h.take(c) if isinstance(o, Reply)]
    assert codes == [0, 0, 0, Err.AUTH_FAILED] and c in h.closed


# -- 8. the empty path is the root for reads ----------------------------------------------------


def test_empty_path_reads_the_root(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/a")
    root = h.call(c, OpCode.EXISTS, r.ExistsRequest("/", False)).body.stat
    assert h.call(c, OpCode.EXISTS, r.ExistsRequest("", False)).body.stat == root
    assert h.call(c, OpCode.GET_DATA, r.GetDataRequest("", False)).body.stat == root
    assert sorted(h.call(c, OpCode.GET_CHILDREN, r.GetChildrenRequest("", False)).body.children) == [
        "a",
        "zookeeper",
    ]
    assert h.call(c, OpCode.GET_ACL, r.GetACLRequest("")).body.acl == ANYONE
    # ZooKeeper counts keys starting with "/": every node, the root included, one more than "/".
    slash = h.call(c, OpCode.GET_ALL_CHILDREN_NUMBER, r.GetAllChildrenNumberRequest("/")).body
    empty = h.call(c, OpCode.GET_ALL_CHILDREN_NUMBER, r.GetAllChildrenNumberRequest("")).body
    assert (slash.total_number, empty.total_number) == (4, 5)
    # setWatches: "" exists, so an exist watch fires NodeCreated and a child watch, relative to
    # zxid 0, NodeChildrenChanged (both with the path "").
    h.send(c, OpCode.SET_WATCHES, r.SetWatches(0, [""], [""], [""]), xid=-8)
    assert h.events(c) == [(EventType.NODE_CREATED, ""), (EventType.NODE_CHILDREN_CHANGED, "")]


# -- 9, 10. checkWatches / removeWatches -----------------------------------------------------------


def test_watch_types_beyond_any_are_marshalling_errors(h: Harness) -> None:
    c, _ = h.session()
    h.call(c, OpCode.ADD_WATCH, r.AddWatchRequest("/zookeeper", 0))
    for wtype in (4, 5, 0, 9):
        for opcode, cls in (
            (OpCode.CHECK_WATCHES, r.CheckWatchesRequest),
            (OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest),
        ):
            assert err(h.call(c, opcode, cls("/zookeeper", wtype))) == Err.MARSHALLING_ERROR


def test_remove_watches_any_removes_persistent_watches(h: Harness) -> None:
    c, _ = h.session()
    w, _ = h.session()
    h.create(c, "/p")
    h.call(w, OpCode.ADD_WATCH, r.AddWatchRequest("/p", 0))
    assert err(h.call(w, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest("/p", 3))) == 0
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/p", b"x", -1))
    assert h.events(w) == []
    h.call(w, OpCode.ADD_WATCH, r.AddWatchRequest("/p", 1))
    # ZooKeeper 3.8 removes a watch whatever its mode, by table (recursive: the data table).
    assert err(h.call(w, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest("/p", 2))) == 0
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/p", b"y", -1))
    assert h.events(w) == []


def test_check_watches_sees_any_session_watching_the_path(h: Harness) -> None:
    # ZooKeeper 3.8's WatchManager.containsWatcher never looks for the caller in the path's set.
    a, _ = h.session()
    b, _ = h.session()
    req = r.CheckWatchesRequest("/zookeeper", 3)
    assert err(h.call(a, OpCode.CHECK_WATCHES, req)) == Err.NO_WATCHER
    h.call(b, OpCode.GET_DATA, r.GetDataRequest("/zookeeper", True))
    assert err(h.call(a, OpCode.CHECK_WATCHES, req)) == 0
    assert err(h.call(a, OpCode.CHECK_WATCHES, r.CheckWatchesRequest("/zookeeper", 1))) == Err.NO_WATCHER
    assert err(h.call(a, OpCode.REMOVE_WATCHES, r.RemoveWatchesRequest("/zookeeper", 3))) == Err.NO_WATCHER


# -- 11. whoAmI order ---------------------------------------------------------------------------


def test_who_am_i_lists_ids_in_zookeepers_hash_order(h: Harness) -> None:
    c, _ = h.session()
    h.call(c, OpCode.AUTH, r.AuthPacket(0, "digest", b"u1:p1"))
    body = h.call(c, OpCode.WHO_AM_I).body
    assert [(i.auth_scheme, i.user) for i in body.client_info] == [("digest", "u1"), ("ip", "127.0.0.1")]
    h.call(c, OpCode.AUTH, r.AuthPacket(0, "digest", b"u2:p2"))
    body = h.call(c, OpCode.WHO_AM_I).body
    assert [(i.auth_scheme, i.user) for i in body.client_info] == [
        ("digest", "u2"),
        ("digest", "u1"),
        ("ip", "127.0.0.1"),
    ]
    # The auth scheme expands the ids in the same order.
    rep = h.call(c, OpCode.CREATE, r.CreateRequest("/a", b"", [r.ACL(31, r.Id("auth", ""))], 0))
    assert err(rep) == 0
    acl = h.call(c, OpCode.GET_ACL, r.GetACLRequest("/a")).body.acl
    assert [a.id.id.split(":")[0] for a in acl] == ["u2", "u1"]


def test_java_set_order_matches_concurrent_hash_map() -> None:
    # Printed by Java: Collections.newSetFromMap(new ConcurrentHashMap<>()) after adding, in this
    # order, ip:127.0.0.1, digest:u1:..., digest:u2:abc, super:"".
    ids = [
        r.Id("ip", "127.0.0.1"),
        r.Id("digest", "u1:Xr6Ef6mmvGzrRvINWYsnLD4VU3A="),
        r.Id("digest", "u2:abc"),
        r.Id("super", ""),
    ]
    assert [(i.scheme, i.id) for i in java_set_order(ids)] == [
        ("digest", "u1:Xr6Ef6mmvGzrRvINWYsnLD4VU3A="),
        ("digest", "u2:abc"),
        ("super", ""),
        ("ip", "127.0.0.1"),
    ]


# -- 12. CESU-8 input ---------------------------------------------------------------------------


def test_cesu8_path_equals_utf8_path() -> None:
    name = "\U0001f600"
    cesu = "\ud83d\ude00".encode("utf-8", "surrogatepass")  # what Java's BinaryOutputArchive writes
    assert cesu != name.encode() and len(cesu) == 6  # two 3-byte surrogates
    decoded = jute.decode(r.SyncRequest, len(b"/" + cesu).to_bytes(4, "big") + b"/" + cesu)
    assert decoded.path == "/" + name
    # Invalid UTF-8 that is not a surrogate pair still decodes (and path validation rejects it).
    bad = jute.decode(r.SyncRequest, b"\x00\x00\x00\x03/\xff\xed")
    assert bad.path is not None and bad.path.startswith("/")


# -- 14. quota statistics -----------------------------------------------------------------------


def _stats(h: Harness, c: int, path: str) -> bytes:
    return h.call(
        c, OpCode.GET_DATA, r.GetDataRequest(f"/zookeeper/quota{path}/zookeeper_stats", False)
    ).body.data


def test_quota_stats_follow_the_subtree(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/q", b"ab")
    h.create(c, "/q/x", b"cde")
    # What zkCli's setquota -n 10 /q creates.
    h.create(c, "/zookeeper/quota/q")
    h.create(c, "/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=-1")
    h.create(c, "/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    assert _stats(h, c, "/q") == b"count=2,bytes=5"  # the node itself counts
    h.create(c, "/q/y", b"1234")
    h.create(c, "/qq", b"not below /q")
    assert _stats(h, c, "/q") == b"count=3,bytes=9"
    h.call(c, OpCode.SET_DATA, r.SetDataRequest("/q/x", b"", -1))
    assert _stats(h, c, "/q") == b"count=3,bytes=6"
    h.call(c, OpCode.DELETE, r.DeleteRequest("/q/y", -1))
    assert _stats(h, c, "/q") == b"count=2,bytes=2"
    # Without the limits node the path has no quota any more.
    h.call(c, OpCode.DELETE, r.DeleteRequest("/zookeeper/quota/q/zookeeper_limits", -1))
    h.create(c, "/q/z", b"zz")
    assert _stats(h, c, "/q") == b"count=2,bytes=2"


def test_quota_stats_survive_a_snapshot(h: Harness) -> None:
    c, _ = h.session()
    h.create(c, "/q", b"ab")
    h.create(c, "/zookeeper/quota/q")
    h.create(c, "/zookeeper/quota/q/zookeeper_limits", b"count=10,bytes=-1")
    h.create(c, "/zookeeper/quota/q/zookeeper_stats", b"count=0,bytes=0")
    from trizab.tree.datatree import DataTree
    from trizab.tree.snapshot import deserialize_snapshot

    tree = DataTree()
    deserialize_snapshot(tree, h.core.snapshot())
    assert tree.quota_prefix("/q/new") == "/q"
    assert tree.nodes["/zookeeper/quota/q/zookeeper_stats"].data == b"count=1,bytes=2"


def test_multi_of_reads_with_a_null_path_fails_before_its_kind_is_checked(h: Harness) -> None:
    c, _ = h.session()
    before = zxid_now(h)
    reads = [MultiOp(OpCode.GET_DATA, r.GetDataRequest("/", False))]
    rep = multi(h, c, [*reads, MultiOp(OpCode.GET_DATA, r.GetDataRequest(None, False))])
    assert err(rep) == Err.MARSHALLING_ERROR and rep.body == MultiResponse([])
    assert zxid_now(h) == before
    # Without the null path, read ops in a multi are an ErrorTxn without body.
    rep = multi(h, c, reads)
    assert err(rep) == Err.MARSHALLING_ERROR and rep.body is None and zxid_now(h) == before + 1
    # And write ops only in a multiRead: the empty MultiResponse goes along, no txn.
    rep = multi(h, c, [MultiOp(OpCode.DELETE, r.DeleteRequest("/x", -1))], OpCode.MULTI_READ)
    assert err(rep) == Err.MARSHALLING_ERROR and rep.body == MultiResponse([])
    assert zxid_now(h) == before + 1


def test_create_op_with_ttl_flags_in_multi_fails_whole_only_when_reached(h: Harness) -> None:
    c, _ = h.session()
    ttl_create = MultiOp(OpCode.CREATE, r.CreateRequest("/t", b"", ANYONE, CreateMode.PERSISTENT_WITH_TTL))
    rep = multi(h, c, [MultiOp(OpCode.CREATE, r.CreateRequest("/u", b"", ANYONE, 0)), ttl_create])
    assert err(rep) == Err.MARSHALLING_ERROR and rep.body is None
    assert h.stat(c, "/u") is None
    h.create(c, "/e")
    rep = multi(h, c, [MultiOp(OpCode.CREATE, r.CreateRequest("/e", b"", ANYONE, 0)), ttl_create])
    assert err(rep) == 0
    assert [(x.type, x.err) for x in rep.body.results] == [
        (OpCode.ERROR, Err.NODE_EXISTS),
        (OpCode.ERROR, Err.RUNTIME_INCONSISTENCY),
    ]


def test_pending_owner_follows_the_create_mode(h: Harness) -> None:
    c, _ = h.session()
    h.auto_commit = False
    # createContainer with ephemeral flags: pending, the node is an ephemeral (children refused);
    # applied, a container.
    h.send(c, OpCode.CREATE_CONTAINER, r.CreateRequest("/c", b"", ANYONE, CreateMode.EPHEMERAL))
    h.send(c, OpCode.CREATE, r.CreateRequest("/c/x", b"", ANYONE, 0))
    h.commit()
    replies = [o.header.err for o in h.take(c) if isinstance(o, Reply)]
    assert replies == [0, Err.NO_CHILDREN_FOR_EPHEMERALS]
    h.auto_commit = True
    assert err(h.create(c, "/c/x")) == 0


# -- container reaping as ZooKeeper does it (the differential tester's configuration) ------------


def test_containers_reaped_only_by_the_periodic_check_when_configured() -> None:
    from trizab.config import parse
    from trizab.server.core import CoreConfig

    cfg = parse("znode.container.checkIntervalMs=5000\nreapContainersImmediately=false\n", read_myid=False)
    assert (cfg.container_check_interval_ms, cfg.reap_containers_immediately) == (5000, False)
    h = Harness(CoreConfig(container_check_interval_ms=5000, reap_containers_immediately=False))
    c, _ = h.session()
    h.call(c, OpCode.CREATE_CONTAINER, r.CreateRequest("/box", b"", ANYONE, CreateMode.CONTAINER))
    h.create(c, "/box/item")
    h.call(c, OpCode.DELETE, r.DeleteRequest("/box/item", -1))
    assert h.stat(c, "/box") is not None  # ZooKeeper keeps it until ContainerManager runs
    h.advance(5000)
    assert h.stat(c, "/box") is None
