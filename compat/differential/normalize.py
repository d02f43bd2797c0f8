"""Turn a raw transcript into one that two correct servers produce identically.

Theory of operation
-------------------
Two servers given the same operations legitimately differ in a few values:

* **zxids** (``Z``): absolute values depend on history before the example
  (sessions, earlier examples).  Each zxid is replaced by its *rank* among all
  distinct zxids of the transcript, which keeps equality and order (the
  relations clients rely on: ``mzxid > relativeZxid``, "same transaction")
  and drops the offset.  Negative values (``-1`` in notifications and
  ``Unimplemented`` replies) are kept as they are.
* **times** (``T``): wall clocks differ.  A ``ctime``/``mtime`` is checked for
  plausibility (0, or within an hour of the run) and for consistency (every
  Stat of one server that names the same zxid names the same time), then
  replaced by ``t@<rank of its zxid>``; an implausible or inconsistent time
  stays raw and therefore shows up as a difference.  A time whose zxid has
  counter 0 (no transaction has one) is ``/zookeeper/config``'s install time:
  ``ZKDatabase.initConfigInZKDatabase`` stamps the configuration (mzxid its
  version: 0, or a NEWLEADER zxid) with each member's own wall clock when it
  starts or syncs, so it is checked for plausibility only (``install-time``).
* **session ids** (``Sid``, ConnectResponse ``session_id``): replaced by the
  slot label the runner gave that session; 0 stays 0; an unknown id stays raw.
* **children order** (``("children", ...)``): ZooKeeper returns a child list in
  ``HashSet`` iteration order, an accident of Java's string hashing and table
  size, not a contract (its documentation promises no order).  The lists are
  compared as sorted multisets; the deliberate difference is documented in
  ``compat/README.md``.
* **ports in ``/zookeeper/config``**: an ensemble's configuration text
  (``server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]``) names
  the ports that ensemble was given; each port becomes ``<port>``, so two
  ensembles compare by their members, roles, hosts and version.
* **notifications caused by one closeSession**: ZooKeeper deletes a closing
  session's ephemerals in ``HashSet`` order, so the events of that one step are
  compared as a sorted multiset; every other step keeps arrival order.
"""

from __future__ import annotations

import re
import time
from typing import Any

import attrs

from compat.differential.ops import Sid, StatV, T, Z

__all__ = ["normalize"]

_HOUR_MS = 3_600_000


def _collect_zxids(value: Any, out: set[int]) -> None:
    if isinstance(value, Z):
        if value >= 0:
            out.add(int(value))
    elif isinstance(value, StatV):
        for field in attrs.fields(StatV):
            _collect_zxids(getattr(value, field.name), out)
    elif isinstance(value, tuple | list):
        for v in value:
            _collect_zxids(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_zxids(v, out)


class _Normalizer:
    def __init__(self, transcript: list[Any], sessions: dict[int, str], sort_children: bool) -> None:
        zxids: set[int] = set()
        _collect_zxids(transcript, zxids)
        self.rank = {z: i for i, z in enumerate(sorted(zxids))}
        self.sessions = sessions
        self.sort_children = sort_children
        self.time_of: dict[int, int] = {}
        self.now_ms = int(time.time() * 1000)

    def zxid(self, z: int) -> Any:
        return int(z) if z < 0 else f"z{self.rank[int(z)]}"

    def time(self, t: int, z: int) -> Any:
        if t == 0 and z == 0:
            return 0
        if abs(t - self.now_ms) > _HOUR_MS:
            return ("implausible-time", int(t))
        if z & 0xFFFFFFFF == 0:
            return "install-time"  # per member, not a transaction's (see the module docstring)
        seen = self.time_of.setdefault(int(z), int(t))
        if seen != t:
            return ("inconsistent-time", int(t), "for", self.zxid(z), "also", seen)
        return f"t@{self.zxid(z)}"

    def stat(self, st: StatV) -> Any:
        return {
            "czxid": self.zxid(st.czxid),
            "mzxid": self.zxid(st.mzxid),
            "ctime": self.time(st.ctime, st.czxid),
            "mtime": self.time(st.mtime, st.mzxid),
            "version": st.version,
            "cversion": st.cversion,
            "aversion": st.aversion,
            "ephemeralOwner": self.value(st.ephemeral_owner),
            "dataLength": st.data_length,
            "numChildren": st.num_children,
            "pzxid": self.zxid(st.pzxid),
        }

    def value(self, v: Any) -> Any:
        if isinstance(v, bytes) and _CONFIG_TEXT.match(v):
            return ("config-text", _PORT.sub(b":<port>", v))
        if isinstance(v, Z):
            return self.zxid(v)
        if isinstance(v, T):
            return ("bare-time", int(v))
        if isinstance(v, Sid):
            if v == 0:
                return 0
            return self.sessions.get(int(v), ("unknown-session", int(v)))
        if isinstance(v, StatV):
            return self.stat(v)
        if isinstance(v, tuple):
            if v and v[0] == "children" and self.sort_children:
                return ("children", *sorted(v[1:], key=_sort_key))
            if v and v[0] == "unordered":
                return ("unordered", *sorted((self.value(x) for x in v[1:]), key=repr))
            return tuple(self.value(x) for x in v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v


# A /zookeeper/config text (QuorumVerifier.toString()) and the ports in its server lines.
_CONFIG_TEXT = re.compile(rb"(server\.\d+=[^\n]*\n)+version=[0-9a-f]+\Z")
_PORT = re.compile(rb":\d+(?=[:;\n]|\Z)")


def _sort_key(name: Any) -> Any:
    return (name is None, repr(name) if not isinstance(name, str) else name)


def normalize(transcript: list[Any], sessions: dict[int, str], *, sort_children: bool = True) -> list[Any]:
    """The transcript with zxids, times, session ids (and child order) replaced by relations."""
    n = _Normalizer(transcript, sessions, sort_children)
    return [n.value(entry) for entry in transcript]
