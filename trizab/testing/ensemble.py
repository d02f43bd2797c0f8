"""A 3-member (or N-member) trizab ensemble for tests, whose members a test can kill, pause and cut off.

Theory of operation
-------------------
Each member is a ``trizab serve`` process (:class:`EnsembleMember`, a
:class:`~trizab.testing.process.TrizabProcess` that is ready once it leads or follows)
with the memory engine unless told otherwise.  Members never talk to each other
directly: member ``i``'s zoo.cfg has its own ``server.i`` line with its real quorum and
election ports, and for every other member ``j`` a line naming two proxies of a
:class:`~trizab.testing.proxy.ProxyNet` in the test process that forward to ``j``'s real
ports.  So every member-to-member link (quorum and election traffic, both directions)
crosses a proxy that knows which pair it joins, and :meth:`Ensemble.partition` cuts a
member off from the others by cutting the links it is an end of, without root or
firewall rules.  Clients connect to the members' client ports directly (``hosts``): a
partition does not cut them, so a client of the cut-off member sees what it would see in
production, a member that lost its quorum and drops its clients (and, with read-only
mode enabled, serves reads).  Clients that connect through ``proxied_hosts`` instead
cross a proxy per member, which ``partition(sid, clients=True)`` cuts as well: the
member is then on the far side of the partition from them too.

Member handles are addressed by server id (1..N) or by the member object.  Processes
are signalled by their own pid only.  :meth:`Ensemble.reset` brings a used ensemble
back to the state of a fresh one for the next test: it heals partitions, resumes
paused members, starts stopped ones, waits until they serve and deletes every znode
outside ``/zookeeper`` (as the superuser, so ACLs set by a test do not get in the way).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from trizab.testing.process import START_TIMEOUT_S, TrizabProcess, free_ports
from trizab.testing.proxy import Link, ProxyNet
from trizab.testing.tree import SUPER_DIGEST, wipe_tree

__all__ = ["Ensemble", "EnsembleMember"]

SERVING = ("leader", "follower", "observer")


class EnsembleMember(TrizabProcess):
    """One member: a ``trizab serve`` process that is ready once it leads or follows."""

    def __init__(self, sid: int, workdir: Path, **kwargs: object) -> None:
        super().__init__(workdir, **kwargs)  # type: ignore[arg-type]
        self.sid = sid
        self.paused = False

    @property
    def mode(self) -> str | None:
        """leader / follower / observer; None while stopped, paused or not serving."""
        if not self.running or self.paused:
            return None
        try:
            text = self.command("srvr", timeout=1.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def readiness(self) -> tuple[bool, str]:
        mode = self.mode
        return (mode in SERVING), f"member {self.sid} mode is {mode or 'not serving'}"

    def pause(self) -> None:
        super().pause()
        self.paused = self.running

    def resume(self) -> None:
        super().resume()
        self.paused = False

    def __repr__(self) -> str:
        return f"<EnsembleMember {self.sid} {self.address if self.port else 'unstarted'}>"


class Ensemble:
    """``size`` voting members on 127.0.0.1 behind proxies (see the module docstring)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        size: int = 3,
        *,
        storage: str | None = "memory",
        tick_time: int = 2000,
        init_limit: int = 10,
        sync_limit: int = 5,
        extra_config: Sequence[str] = (),
        log_level: str = "INFO",
    ) -> None:
        if size < 1:
            raise ValueError(f"an ensemble needs at least one member, not {size}")
        self.workdir = Path(workdir)
        self.start_timeout = START_TIMEOUT_S
        self.net = ProxyNet()
        sids = range(1, size + 1)
        ports = free_ports(3 * size)
        client = {sid: ports[3 * (sid - 1)] for sid in sids}
        quorum = {sid: ports[3 * (sid - 1) + 1] for sid in sids}
        election = {sid: ports[3 * (sid - 1) + 2] for sid in sids}
        # links[(i, j)]: what member i uses to reach member j (quorum, then election).
        self.links: dict[tuple[int, int], tuple[Link, Link]] = {
            (i, j): (self.net.add(quorum[j]), self.net.add(election[j])) for i in sids for j in sids if i != j
        }
        # client_links[j]: a proxy to member j's client port, for clients a partition should cut too.
        self.client_links: dict[int, Link] = {j: self.net.add(client[j]) for j in sids}
        self.members: list[EnsembleMember] = []
        for i in sids:
            lines = [f"server.{i}=127.0.0.1:{quorum[i]}:{election[i]}"]
            for j in sids:
                if j != i:
                    q, e = self.links[(i, j)]
                    lines.append(f"server.{j}=127.0.0.1:{q.port}:{e.port}")
            member = EnsembleMember(
                i,
                self.workdir / f"member{i}",
                port=client[i],
                tick_time=tick_time,
                storage=storage,
                log_level=log_level,
                extra_config=[
                    f"initLimit={init_limit}",
                    f"syncLimit={sync_limit}",
                    f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
                    *extra_config,
                    *sorted(lines),
                ],
            )
            member.data_dir.mkdir(parents=True, exist_ok=True)
            (member.data_dir / "myid").write_text(f"{i}\n")
            self.members.append(member)
        self.isolated: set[int] = set()

    # -- addressing ----------------------------------------------------------------------

    def member(self, which: int | EnsembleMember) -> EnsembleMember:
        """The member with server id ``which`` (1..N), or ``which`` itself."""
        if isinstance(which, EnsembleMember):
            return which
        for m in self.members:
            if m.sid == which:
                return m
        raise KeyError(f"no member with server id {which} (ids are 1..{len(self.members)})")

    def __getitem__(self, sid: int) -> EnsembleMember:
        return self.member(sid)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def hosts(self) -> str:
        """The connect string, as kazoo's ``hosts``: ``127.0.0.1:p1,127.0.0.1:p2,...``."""
        return ",".join(m.address for m in self.members)

    @property
    def proxied_hosts(self) -> str:
        """A connect string whose connections cross proxies, so ``partition(sid, clients=True)``
        cuts them too (``hosts`` connects directly)."""
        return ",".join(f"127.0.0.1:{self.client_links[m.sid].port}" for m in self.members)

    def leader(self) -> EnsembleMember | None:
        for m in self.members:
            if m.mode == "leader":
                return m
        return None

    def followers(self) -> list[EnsembleMember]:
        return [m for m in self.members if m.mode == "follower"]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Self:
        """Start every member and wait, within one deadline, until all serve under one leader."""
        try:
            for m in self.members:
                _spawn(m)
            self.wait_serving(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every member and the proxies."""
        for m in self.members:
            m.stop()
        self.net.close()

    def wait_serving(self, timeout: float | None = None) -> EnsembleMember:
        """Wait until every member that is up (running, not paused, not cut off) leads or follows
        and one of them leads; return the leader."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while True:
            expected = [m for m in self.members if m.running and not m.paused and m.sid not in self.isolated]
            modes = {m.sid: m.mode for m in expected}
            leaders = [self.member(sid) for sid, mode in modes.items() if mode == "leader"]
            if expected and len(leaders) == 1 and all(mode in SERVING for mode in modes.values()):
                return leaders[0]
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- member {m.sid}\n{m.log_tail(15)}" for m in self.members)
                raise TimeoutError(f"the ensemble did not serve in time (modes {modes}):\n{tails}")
            time.sleep(0.02)

    # -- faults --------------------------------------------------------------------------

    def kill(self, which: int | EnsembleMember) -> None:
        """SIGKILL the member (a crash); with the memory engine it comes back empty and syncs."""
        m = self.member(which)
        m.kill()
        m.paused = False

    def stop(self, which: int | EnsembleMember) -> None:
        """SIGTERM the member (a clean shutdown)."""
        m = self.member(which)
        m.stop()
        m.paused = False

    def start_member(self, which: int | EnsembleMember, timeout: float | None = None) -> None:
        """Start a stopped member on its old ports and wait until it follows (or leads); a member
        that is cut off cannot, so for one the wait is left to :meth:`heal` and :meth:`wait_serving`."""
        m = self.member(which)
        if not m.running:
            m.start(self.start_timeout if timeout is None else timeout, wait=m.sid not in self.isolated)

    def restart(
        self, which: int | EnsembleMember, *, kill: bool = False, timeout: float | None = None
    ) -> None:
        """Stop (or kill) the member, start it again and wait until it serves."""
        m = self.member(which)
        if kill:
            self.kill(m)
        else:
            self.stop(m)
        self.start_member(m, timeout)

    def pause(self, which: int | EnsembleMember) -> None:
        """SIGSTOP: the member keeps its sockets but answers nothing (a long GC pause)."""
        self.member(which).pause()

    def resume(self, which: int | EnsembleMember) -> None:
        """SIGCONT after :meth:`pause`."""
        self.member(which).resume()

    def partition(self, which: int | EnsembleMember, *, clients: bool = False) -> None:
        """Cut the member off from every other member (quorum and election traffic, both ways).
        Clients connected directly (``hosts``) still reach it; with ``clients`` those that came
        through ``proxied_hosts`` are cut off from it as well.  :meth:`heal` undoes it."""
        sid = self.member(which).sid
        self.isolated.add(sid)
        cut = [link for pair, links in self.links.items() if sid in pair for link in links]
        if clients:
            cut.append(self.client_links[sid])
        self.net.cut(cut)

    def heal(self) -> None:
        """Undo every :meth:`partition`: members reach each other again."""
        self.isolated.clear()
        self.net.restore()

    # -- between tests -------------------------------------------------------------------

    def reset(self, timeout: float | None = None) -> None:
        """Back to a fresh ensemble's state (see the module docstring)."""
        self.heal()
        for m in self.members:
            m.resume()
            if not m.running:
                _spawn(m)
        self.wait_serving(timeout)
        wipe_tree(self.hosts)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _spawn(member: EnsembleMember) -> None:
    """Start the member's process without waiting for it (the ensemble waits for all at once)."""
    member.start(timeout=0.0, wait=False)
