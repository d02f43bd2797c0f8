"""Continuous kazoo load during a rolling restart or migration, and a strict check of what it saw.

Theory of operation
-------------------
What clients must not notice when members are replaced one at a time, each kept by one owner
(a thread with its own :class:`KazooClient`, connected to every member, so that clients sit on
whichever members kazoo picks and move when theirs stops):

* **writer**: creates ``/mig/w/<n>`` holding ``n`` and sets ``/mig/value`` to ``n``; every
  acknowledged reply is recorded with its time (an error is not an acknowledgement: such a
  write may or may not have happened, and is only recorded as attempted);
* **sequencer**: sequential creates under ``/mig/seq``; every path a reply names is recorded;
* **ephemeral owners**: sessions that only ping, each owning ``/mig/eph/<k>``; a session that
  reports LOST (expired) while it kept pinging is a failure;
* **watcher**: a data watch on ``/mig/watched``, which the writer sets now and then.

:meth:`MigrationLoad.problems` then reads the tree back from every member separately (after a
``sync``) and lists, in words, every broken promise: an acknowledged write or sequential node
missing or wrong, a sequence number twice, a session expired or its ephemeral gone or owned by
someone else, the last acknowledged watched value never delivered, members that differ.  The
gaps between acknowledged writes give the seconds of unavailability of each step.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Sequence

import attrs
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError

__all__ = ["MigrationLoad", "read_tree"]

SESSION_TIMEOUT_S = 10.0
ROOT = "/mig"


def _client(hosts: str) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S, connection_retry={"max_tries": -1})
    client.start(timeout=30)
    return client


def read_tree(client: KazooClient, root: str = ROOT) -> dict[str, bytes]:
    """Every znode under ``root`` with its data, read with asynchronous requests in batches."""
    client.sync(root)
    tree: dict[str, bytes] = {}
    level = [root]
    while level:
        children = [(path, client.get_children_async(path)) for path in level]
        level = []
        for path, result in children:
            with contextlib.suppress(NoNodeError):
                level += [f"{path}/{name}" for name in result.get(timeout=30)]
        for start in range(0, len(level), 500):
            batch = [(path, client.get_async(path)) for path in level[start : start + 500]]
            for path, result in batch:
                with contextlib.suppress(NoNodeError):
                    tree[path] = result.get(timeout=30)[0]
    return tree


@attrs.define
class _Ephemeral:
    client: KazooClient
    path: str
    session_id: int
    states: list[str] = attrs.Factory(list)


class MigrationLoad:
    """Start with :meth:`start`, end with :meth:`stop`, then ask :meth:`problems`."""

    def __init__(self, hosts: str, *, ephemerals: int = 2, pause_s: float = 0.05) -> None:
        self.hosts = hosts
        self.ephemeral_count = ephemerals
        self.pause_s = pause_s
        self.acked_writes: list[tuple[float, int]] = []  # (time, n) of acknowledged creates
        self.attempted_writes = 0
        self.acked_values: list[int] = []  # acknowledged sets of /mig/value, in order
        self.attempted_values: list[int] = []
        self.acked_sequential: list[str] = []
        self.acked_watched: int | None = None
        self.seen_watched: list[bytes] = []
        self.errors: list[str] = []  # the kinds of failed requests (not failures of the check)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: list[KazooClient] = []
        self._ephemerals: list[_Ephemeral] = []

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        setup = self._new_client()
        for path in (ROOT, f"{ROOT}/w", f"{ROOT}/seq", f"{ROOT}/eph"):
            setup.ensure_path(path)
        setup.create(f"{ROOT}/value", b"-1")
        setup.create(f"{ROOT}/watched", b"-1")
        for k in range(self.ephemeral_count):
            client = self._new_client()
            path = f"{ROOT}/eph/{k}"
            client.create(path, str(k).encode(), ephemeral=True)
            eph = _Ephemeral(client, path, client.client_id[0])
            client.add_listener(lambda state, eph=eph: eph.states.append(str(state)))
            self._ephemerals.append(eph)
        watcher = self._new_client()
        watcher.DataWatch(f"{ROOT}/watched", self._on_watched)
        for target in (self._write_loop, self._sequence_loop):
            thread = threading.Thread(target=target, args=(self._new_client(),), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _new_client(self) -> KazooClient:
        client = _client(self.hosts)
        self._clients.append(client)
        return client

    def _on_watched(self, data: bytes | None, _stat: object) -> None:
        if data is not None:
            self.seen_watched.append(data)

    def _note_error(self, e: Exception) -> None:
        self.errors.append(type(e).__name__)
        time.sleep(0.1)

    def _write_loop(self, client: KazooClient) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self.attempted_writes += 1
            try:
                client.create(f"{ROOT}/w/{n:07d}", str(n).encode())
                self.acked_writes.append((time.monotonic(), n))
                self.attempted_values.append(n)
                client.set(f"{ROOT}/value", str(n).encode())
                self.acked_values.append(n)
                if n % 10 == 0:
                    client.set(f"{ROOT}/watched", str(n).encode())
                    self.acked_watched = n
            except KazooException as e:
                self._note_error(e)
            time.sleep(self.pause_s)

    def _sequence_loop(self, client: KazooClient) -> None:
        while not self._stop.is_set():
            try:
                self.acked_sequential.append(client.create(f"{ROOT}/seq/s-", b"", sequence=True))
            except KazooException as e:
                self._note_error(e)
            time.sleep(self.pause_s)

    def stop(self) -> None:
        """Stop the loops (the ephemeral sessions stay open until :meth:`close`)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def close(self) -> None:
        self.stop()
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.stop()
                client.close()

    # -- measuring -----------------------------------------------------------------------

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time without an acknowledged write within [since, until]."""
        times = [since, *(t for t, _ in self.acked_writes if since <= t <= until), until]
        return max(b - a for a, b in itertools.pairwise(times))

    # -- checking ------------------------------------------------------------------------

    def problems(self, member_hosts: Sequence[str]) -> list[str]:
        """Everything that broke (empty when nothing did); reads every member separately."""
        problems: list[str] = []
        if not self.acked_writes or not self.acked_sequential:
            problems.append(
                f"the load made no progress ({len(self.acked_writes)} writes, "
                f"{len(self.acked_sequential)} sequential creates acknowledged)"
            )
        trees: dict[str, dict[str, bytes]] = {}
        for host in member_hosts:
            try:
                client = _client(host)
            except Exception as e:  # the report says which member and why
                problems.append(f"member {host}: cannot read it back: {e!r}")
                continue
            try:
                trees[host] = read_tree(client)
            finally:
                client.stop()
                client.close()
        problems += self._tree_problems(trees)
        problems += self._session_problems()
        problems += self._watch_problems()
        return problems

    def _tree_problems(self, trees: dict[str, dict[str, bytes]]) -> list[str]:
        problems: list[str] = []
        if not trees:
            return ["no member could be read"]
        reference_host, tree = next(iter(trees.items()))
        for host, other in trees.items():
            if other != tree:
                only_ref = sorted(set(tree) - set(other))[:5]
                only_other = sorted(set(other) - set(tree))[:5]
                differ = sorted(p for p in set(tree) & set(other) if tree[p] != other[p])[:5]
                problems.append(
                    f"members {reference_host} and {host} differ: only on the first {only_ref}, "
                    f"only on the second {only_other}, different data {differ}"
                )
        lost = [n for _, n in self.acked_writes if tree.get(f"{ROOT}/w/{n:07d}") != str(n).encode()]
        if lost:
            problems.append(f"{len(lost)} acknowledged writes lost or wrong, first {lost[:10]}")
        value = tree.get(f"{ROOT}/value")
        if self.acked_values:
            last = self.acked_values[-1]
            later = {str(n).encode() for n in self.attempted_values if n >= last}
            if value not in later:
                problems.append(f"/mig/value is {value!r}: older than the last acknowledged set ({last})")
        duplicates = len(self.acked_sequential) - len(set(self.acked_sequential))
        if duplicates:
            problems.append(f"{duplicates} sequence numbers handed out twice")
        missing_seq = [p for p in self.acked_sequential if p not in tree]
        if missing_seq:
            problems.append(
                f"{len(missing_seq)} acknowledged sequential nodes missing, first {missing_seq[:5]}"
            )
        return problems

    def _session_problems(self) -> list[str]:
        problems: list[str] = []
        for eph in self._ephemerals:
            if str(KazooState.LOST) in eph.states:
                problems.append(f"the session owning {eph.path} expired although it kept pinging")
                continue
            try:
                _data, stat = eph.client.get(eph.path)
            except KazooException as e:
                problems.append(f"{eph.path} cannot be read by its owner: {e!r}")
                continue
            if stat.ephemeralOwner != eph.session_id:
                problems.append(
                    f"{eph.path} is owned by {stat.ephemeralOwner:#x}, not its session {eph.session_id:#x}"
                )
        return problems

    def _watch_problems(self, timeout: float = 20.0) -> list[str]:
        if self.acked_watched is None:
            return ["no watched value was acknowledged"]
        want = str(self.acked_watched).encode()
        deadline = time.monotonic() + timeout
        while want not in self.seen_watched and time.monotonic() < deadline:
            time.sleep(0.1)
        if want not in self.seen_watched:
            tail = self.seen_watched[-3:]
            return [f"the watch never delivered the last acknowledged value {want!r} (last seen {tail})"]
        return []
