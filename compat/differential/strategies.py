"""Hypothesis strategies for operation sequences over several sessions.

Theory of operation
-------------------
Differences hide where state interacts, so the strategies aim operations at a
*small* namespace: a handful of names (``a``, ``b``, ``s0000000000`` — the name
a sequential create of ``s`` gets first) at depth one to three under the
example's base ``{b}``, so creates collide, deletes find children, watches fire
and sequential names get reused.  Alongside, a smaller share of special and
invalid paths (root, ``/zookeeper``, empty, null, relative, trailing slash,
``//``, ``.``/``..`` segments, NUL and non-BMP characters), versions around
the live ones plus ``-1`` and junk, and ACLs of every scheme including invalid
ones.  Every opcode of the 3.8 protocol appears, plus unknown opcodes and
truncated bodies.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from compat.differential import ops as o
from compat.differential.runner import OpSequence
from trizab.wire.codes import OpCode

FEATURES = (
    "null",
    "empty-path",
    "non-bmp",
    "unknown-opcode",
    "standalone-check",
    "set-watches",
    "write-multi-reads",
    "multi-null-path",
)

# The generator mode for ensemble comparisons (``sequences(..., exclude=ENSEMBLE_EXCLUDED)``):
# requests malformed on purpose that a ZooKeeper 3.8 leader fails in PrepRequestProcessor with an
# exception other than a KeeperException, after it has taken a zxid for them: write multis with
# a member on a null path (a NullPointerException in getPendingChanges, seen), write multis with
# read members (MultiOperationRecord refuses to mix them while deserializing), and raw requests
# with truncated bodies or opcodes a follower forwards without reading them (reconfig 16 and
# deleteContainer 20 among the "unknown" ones).  Its followers then log "Got zxid ... expected
# ..." and a digest mismatch, the leader "Commiting zxid ... not first!", and later requests on
# those followers go unanswered for seconds, so a ZooKeeper *reference* ensemble times out where
# trizab answers.  Also left out: a check (13) outside a multi, which a ZooKeeper 3.8 leader
# logs and proposes as a txn of type 13 that SerializeUtils.deserializeTxn cannot read back, so
# its followers drop out ("Unsupported Txn with type=%d13") and the leader cannot load its own
# log again (seen).  A standalone ZooKeeper has no follower to fall out of step (and answers the
# check without a log entry reread), so standalone comparisons keep all of these.
ENSEMBLE_EXCLUDED = frozenset({"unknown-opcode", "write-multi-reads", "multi-null-path", "standalone-check"})


def excluded() -> frozenset[str]:
    """Features named in ``TRIZAB_DIFF_EXCLUDE`` (comma-separated, from FEATURES) are not generated.

    For exploring past a known difference (``--survey``) and for differences the project has
    declared deliberate (compat/README.md); CI generates everything by default.
    """
    raw = os.environ.get("TRIZAB_DIFF_EXCLUDE", "")
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = names - set(FEATURES)
    if unknown:
        raise ValueError(f"TRIZAB_DIFF_EXCLUDE: unknown features {sorted(unknown)}; known: {FEATURES}")
    return names


def _keep_path(p: str | None) -> bool:
    ex = excluded()
    if p is None:
        return "null" not in ex
    if p == "":
        return "empty-path" not in ex
    if "\U0001f600" in p:
        return "non-bmp" not in ex
    return True


def _keep_acl(acl: o.ACLSpec) -> bool:
    if "null" not in excluded():
        return True
    return acl is not None and all(scheme is not None and ident is not None for _, scheme, ident in acl)


NAMES = ("a", "b", "s0000000000", "s0000000001")
SPECIAL_PATHS = (
    "/",
    "/zookeeper",
    "/zookeeper/quota",
    "/zookeeper/config",
    "{b}",
    "{b}/",
    "{b}//a",
    "{b}/.",
    "{b}/..",
    "{b}/a/./b",
    "{b}/a/../b",
    "a",
    "",
    "{b}/\u00fc\u00df",
    "{b}/\U0001f600",
    "{b}/a\x00b",
    "{b}/\u0001",
    "{b}/zookeeper",
)

U1 = o.digest_id("u1", "p1")
U2 = o.digest_id("u2", "p2")

OPEN = ((31, "world", "anyone"),)
ACLS: tuple[o.ACLSpec, ...] = (
    OPEN,
    ((1, "world", "anyone"),),
    ((1 | 16, "world", "anyone"),),
    ((31, "digest", U1),),
    ((1, "world", "anyone"), (31, "digest", U1)),
    ((31, "auth", ""),),
    ((31, "ip", "127.0.0.1"),),
    ((31, "ip", "127.0.0.0/8"),),
    ((31, "ip", "10.1.2.3"),),
    ((31, "digest", U2), (2, "digest", U1)),
    # invalid
    (),
    None,
    ((31, "bogus", "x"),),
    ((0, "world", "anyone"),),
    ((64, "world", "anyone"),),
    ((31, "world", "someone"),),
    ((31, "ip", "not-an-ip"),),
    ((31, "ip", "127.0.0.1/99"),),
    ((31, "digest", "nocolon"),),
    ((31, None, None),),
)

AUTHS = (
    ("digest", b"u1:p1"),
    ("digest", b"u2:p2"),
    ("digest", b"u1:wrong"),
    ("digest", b"nocolon"),
    ("digest", b""),
    ("ip", b"127.0.0.1"),
    ("bogus", b"x"),
    ("world", b"anyone"),
    ("super", b"x"),
)

DATA = (b"", None, b"x", b"hello", bytes(range(256)), b"y" * 300)
VERSIONS = (-1, 0, 0, 1, 2, -2, 2**31 - 1)


@st.composite
def node_path(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3))
    return "{b}/" + "/".join(draw(st.sampled_from(NAMES)) for _ in range(depth))


def paths() -> st.SearchStrategy[str | None]:
    options = [
        node_path(),
        node_path(),
        node_path(),
        st.sampled_from([p for p in SPECIAL_PATHS if _keep_path(p)]),
    ]
    if _keep_path(None):
        options.append(st.just(None))
    return st.one_of(*options)


def acls() -> st.SearchStrategy[o.ACLSpec]:
    return st.sampled_from([a for a in ACLS if _keep_acl(a)])


def simple_paths() -> st.SearchStrategy[str]:
    """Paths for setWatches lists, which take strings (no null)."""
    return st.one_of(
        node_path(), node_path(), st.sampled_from([p for p in ("/", "{b}", "", "{b}/") if _keep_path(p)])
    )


def sessions(n: int) -> st.SearchStrategy[int]:
    return st.integers(0, n - 1)


def create_op(
    s: st.SearchStrategy[int], create_paths: st.SearchStrategy[str | None] | None = None
) -> st.SearchStrategy[o.Create]:
    if create_paths is None:
        create_paths = paths()
    plain = st.builds(
        o.Create,
        s,
        create_paths,
        data=st.sampled_from(DATA),
        acl=st.one_of(st.just(OPEN), st.just(OPEN), acls()),
        flags=st.one_of(st.sampled_from((0, 0, 1, 2, 3, 4)), st.sampled_from((5, 6, 7, -1))),
        opcode=st.sampled_from((OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER)),
    )
    ttl = st.builds(
        o.Create,
        s,
        create_paths,
        data=st.sampled_from(DATA),
        acl=st.just(OPEN),
        flags=st.sampled_from((5, 6)),
        opcode=st.just(OpCode.CREATE_TTL),
        ttl=st.sampled_from((1, 60_000, 0, -1, 2**40, 2**40 - 1)),
    )
    # createTTL with a non-TTL mode: ZooKeeper 3.8 does not validate the ttl then and its
    # SyncThread dies applying the txn if the ttl is out of range (a ZooKeeper bug that takes
    # the reference server down), so only valid ttls here.
    ttl_other_mode = st.builds(
        o.Create,
        s,
        create_paths,
        data=st.sampled_from(DATA),
        acl=st.just(OPEN),
        flags=st.sampled_from((0, 1, 2, 4)),
        opcode=st.just(OpCode.CREATE_TTL),
        ttl=st.sampled_from((1, 60_000)),
    )
    return st.one_of(plain, plain, plain, ttl, ttl_other_mode)


def write_subop(s: st.SearchStrategy[int], null_path: bool = True) -> st.SearchStrategy[o.SubOp]:
    """A write multi's member; ``null_path=False`` leaves the null path out (ENSEMBLE_EXCLUDED)."""
    member_paths = paths() if null_path else paths().filter(lambda p: p is not None)
    return st.one_of(
        create_op(s, member_paths),
        st.builds(o.Delete, s, member_paths, st.sampled_from(VERSIONS)),
        st.builds(o.SetData, s, member_paths, st.sampled_from(DATA), st.sampled_from(VERSIONS)),
        st.builds(o.Check, s, member_paths, st.sampled_from(VERSIONS)),
    )


def read_subop(s: st.SearchStrategy[int]) -> st.SearchStrategy[o.Read]:
    return st.builds(
        o.Read, s, st.sampled_from((OpCode.GET_DATA, OpCode.GET_CHILDREN)), paths(), st.booleans()
    )


def op(n: int, exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[o.Op]:
    """One operation of ``n`` sessions; ``exclude`` adds features (FEATURES) not to generate."""
    s = sessions(n)
    ex = excluded() | exclude
    reads = st.builds(
        o.Read,
        s,
        st.sampled_from((OpCode.EXISTS, OpCode.GET_DATA, OpCode.GET_CHILDREN, OpCode.GET_CHILDREN2)),
        paths(),
        st.booleans(),
    )
    null_path = "multi-null-path" not in ex
    multi = st.builds(o.Multi, s, st.lists(write_subop(s, null_path), max_size=4).map(tuple))
    # Reads in a multi (14) and writes in a multiRead (22): malformed; without the first,
    # only multiReads with writes (never forwarded: a follower answers them itself).
    mixed_opcodes = (OpCode.MULTI_READ,) if "write-multi-reads" in ex else (OpCode.MULTI, OpCode.MULTI_READ)
    mixed_multi = st.builds(
        o.Multi,
        s,
        st.lists(st.one_of(write_subop(s, null_path), read_subop(s)), max_size=3).map(tuple),
        st.sampled_from(mixed_opcodes),
    )
    multi_read = st.builds(
        o.Multi, s, st.lists(read_subop(s), max_size=4).map(tuple), st.just(OpCode.MULTI_READ)
    )
    path_lists = st.lists(simple_paths(), max_size=2).map(tuple)
    set_watches = st.builds(
        o.SetWatchesOp,
        s,
        st.sampled_from(("zero", "last", "future")),
        path_lists,
        path_lists,
        path_lists,
        path_lists,
        path_lists,
        st.booleans(),
    )
    unknown = st.builds(
        o.RawRequest,
        s,
        st.sampled_from((10, 16, 20, 23, 99, 108, 200, -3, 102, 11)),
        st.sampled_from((b"", b"\x00\x00\x00\x01a\x00")),
    )
    truncated = st.builds(
        o.RawRequest,
        s,
        st.sampled_from((OpCode.CREATE, OpCode.GET_DATA, OpCode.SET_DATA, OpCode.MULTI, OpCode.EXISTS)),
        st.sampled_from((b"", b"\x00\x00", b"\x00\x00\x00\x02/a", b"\x7f\xff\xff\xff")),
    )
    pipeline_member = st.one_of(
        create_op(s),
        reads,
        st.builds(o.Delete, s, paths(), st.sampled_from(VERSIONS)),
        st.builds(o.SetData, s, paths(), st.sampled_from(DATA), st.sampled_from(VERSIONS)),
        st.builds(o.SetACL, s, paths(), acls(), st.sampled_from(VERSIONS)),
        multi,
    )
    pipeline = st.builds(o.Pipeline, s, st.lists(pipeline_member, min_size=2, max_size=5).map(tuple))
    optional = []
    if "set-watches" not in ex:
        optional.append(set_watches)
    if "unknown-opcode" not in ex:
        optional += [unknown, truncated]
    if "standalone-check" not in ex:
        optional.append(st.builds(o.Check, s, paths(), st.sampled_from(VERSIONS)))
    prefixes = [p for p in ("/", "{b}", "{b}/a", "", "{b}/") if _keep_path(p)]
    return st.one_of(
        *optional,
        pipeline,
        create_op(s),
        create_op(s),
        reads,
        reads,
        st.builds(o.Delete, s, paths(), st.sampled_from(VERSIONS)),
        st.builds(o.SetData, s, paths(), st.sampled_from(DATA), st.sampled_from(VERSIONS)),
        st.builds(o.GetACL, s, paths()),
        st.builds(o.SetACL, s, paths(), acls(), st.sampled_from(VERSIONS)),
        st.builds(o.Sync, s, paths()),
        multi,
        mixed_multi,
        multi_read,
        # Not on a null path: ZooKeeper 3.8 stores that watch, and then fails the session's next
        # addWatch on null (-5) and never closes its connection after closeSession (README §3).
        st.builds(o.AddWatch, s, paths().filter(lambda p: p is not None), st.sampled_from((0, 1, 2, -1))),
        st.builds(
            o.WatchCheck,
            s,
            st.sampled_from((OpCode.CHECK_WATCHES, OpCode.REMOVE_WATCHES)),
            paths(),
            st.sampled_from((1, 2, 3, 4, 5, 0, 9)),
        ),
        st.builds(o.GetEphemerals, s, st.one_of(st.sampled_from(prefixes), paths())),
        st.builds(o.GetAllChildrenNumber, s, paths()),
        st.builds(o.WhoAmI, s),
        st.sampled_from(AUTHS).flatmap(lambda sa: st.builds(o.Auth, s, st.just(sa[0]), st.just(sa[1]))),
        st.builds(o.CloseSession, s),
        st.builds(o.Reconnect, s),
    )


@st.composite
def sequences(draw: st.DrawFn, max_ops: int = 20, exclude: frozenset[str] = frozenset()) -> OpSequence:
    n = draw(st.integers(2, 3))
    ops = draw(st.lists(op(n, exclude), min_size=2, max_size=max_ops))
    return OpSequence(n, tuple(ops))
