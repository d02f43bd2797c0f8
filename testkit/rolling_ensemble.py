"""An ensemble whose members switch between Apache ZooKeeper 3.8 and trizab, one at a time.

Theory of operation
-------------------
A rolling migration replaces the server program of one member at a time while the member keeps
everything else: its ``zoo.cfg`` (the same ``server.N`` lines on every member), its ``myid``, its
data directory and its ports.  :class:`RollingEnsemble` models exactly that: a member is a *slot*
(``member<sid>/zoo.cfg``, ``member<sid>/data``) and :meth:`RollingEnsemble.switch` stops whatever
runs in the slot and starts the other program on the same files.  The zoo.cfg is written once,
read by ZooKeeper's ``QuorumPeerMain`` and by ``trizab serve --config`` alike (trizab's own
``storage=txnlog`` line is an unused system property to ZooKeeper).

What "one ensemble" means is checked from the outside, as an operator would: every running
member's ``srvr`` says leader, follower or observer, exactly one says leader, and that leader's
``mntr`` counts every other running voter as a synced follower (ZooKeeper's
``zk_synced_followers``; trizab prints the same key).  Two members forming a quorum of their own
while a third looks on fails the first condition; a leader that no one follows fails the last.
:meth:`RollingEnsemble.ensemble_problems` returns what is wrong in words, never just ``False``.

Processes are started by the launchers in :mod:`testkit.apache_zk` and
:mod:`testkit.trizab_ensemble` and stopped by pid only; all ports are free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from testkit import apache_zk
from testkit.apache_zk import QUORUM_MAIN, _Member, _with_default_whitelist, free_ports
from testkit.trizab_ensemble import TrizabMember
from trizab.runtime.launcher import four_letter

__all__ = ["HOST", "Kind", "RollingEnsemble", "Slot"]

HOST = "127.0.0.1"
Kind = Literal["zookeeper", "trizab"]
KINDS: tuple[Kind, ...] = ("zookeeper", "trizab")


class Slot:
    """One member's place in the ensemble: its files and ports, and the program running there."""

    def __init__(
        self,
        sid: int,
        workdir: Path,
        lines: Sequence[str],
        client_port: int,
        observer: bool,
        java_properties: Sequence[str] = (),
    ) -> None:
        self.sid = sid
        self.workdir = workdir
        self.client_port = client_port
        self.observer = observer
        self.data_dir = workdir / "data"
        self.config = workdir / "zoo.cfg"
        self.kind: Kind | None = None  # what runs now (None: stopped)
        self.last_kind: Kind | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        (self.data_dir / "myid").write_text(f"{sid}\n")
        # _Member writes "dataDir=..." and then these lines on every start: the file below is
        # the same bytes, so either program can be the first to run in this slot.
        self.config.write_text("\n".join([f"dataDir={self.data_dir}", *lines]) + "\n")
        self._zookeeper = _Member(
            workdir,
            main_class=QUORUM_MAIN,
            config_lines=lines,
            myid=sid,
            client_port=client_port,
            java_properties=java_properties,
            jvm_args=("-Xmx256m",),
        )
        self._trizab = TrizabMember(sid, self.config, client_port)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def quorum_port(self) -> int:
        """The port this member listens on for followers when it leads (its server.N line)."""
        return self._zookeeper.quorum_port

    @property
    def election_port(self) -> int:
        return self._zookeeper.election_port

    @property
    def running(self) -> bool:
        return self.kind is not None and self._process().running

    @property
    def pid(self) -> int | None:
        return self._process().pid if self.kind is not None else None

    def _process(self) -> _Member | TrizabMember:
        return self._zookeeper if self.kind == "zookeeper" else self._trizab

    def start(self, kind: Kind) -> None:
        if self.kind is not None:
            raise RuntimeError(f"member {self.sid} already runs {self.kind}")
        if kind == "zookeeper":
            apache_zk.require_available()
        self.kind = self.last_kind = kind
        self._process().start()

    def stop(self) -> None:
        if self.kind is not None:
            self._process().stop()
        self.kind = None

    def mode(self) -> str | None:
        """``srvr``'s Mode line (leader/follower/observer/standalone); None if not serving."""
        text = self.four_letter_word("srvr")
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def four_letter_word(self, word: str, timeout: float = 2.0) -> str:
        if not self.running:
            return ""
        try:
            return four_letter(self.client_port, word, timeout)
        except OSError:
            return ""

    def mntr(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.four_letter_word("mntr").splitlines():
            key, sep, value = line.partition("\t")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def zxid(self) -> int | None:
        for line in self.four_letter_word("srvr").splitlines():
            if line.startswith("Zxid:"):
                return int(line.split(":", 1)[1].strip(), 16)
        return None

    def log_text(self) -> str:
        """Everything this slot's programs logged (both, if both ran)."""
        parts = []
        for name in ("stdout.log", "zookeeper.log", "member.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def program_log(self, kind: Kind) -> str:
        """What ``kind`` logged in this slot (ZooKeeper's log4j file, or trizab's log)."""
        path = self.workdir / ("zookeeper.log" if kind == "zookeeper" else "member.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, n: int = 25) -> str:
        if self.last_kind is None:
            return ""
        proc = self._zookeeper if self.last_kind == "zookeeper" else self._trizab
        return proc.tail(n)

    def describe(self) -> str:
        return f"member {self.sid} ({self.kind or 'stopped'}{', observer' if self.observer else ''})"


class RollingEnsemble:
    """``size`` voters (+ ``observers``) on loopback; each slot runs ZooKeeper or trizab.

    ``extra_config`` lines go into every zoo.cfg (``storage=txnlog`` is always there, so that a
    trizab member shares ZooKeeper's files).
    """

    def __init__(
        self,
        size: int = 3,
        *,
        observers: int = 0,
        tick_time: int = 1000,
        init_limit: int = 10,
        sync_limit: int = 5,
        extra_config: Sequence[str] = (),
        java_properties: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``java_properties`` (``-D...``) go to the ZooKeeper JVMs only."""
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="mixed-ens-")) if workdir is None else Path(workdir)
        total = size + observers
        ports = free_ports(3 * total)
        servers = []
        for k in range(total):
            role = "observer" if k >= size else "participant"
            servers.append(f"server.{k + 1}={HOST}:{ports[3 * k + 1]}:{ports[3 * k + 2]}:{role}")
        self.server_lines = servers
        self.slots: list[Slot] = []
        for k in range(total):
            lines = [
                f"tickTime={tick_time}",
                f"initLimit={init_limit}",
                f"syncLimit={sync_limit}",
                f"clientPort={ports[3 * k]}",
                f"clientPortAddress={HOST}",
                "admin.enableServer=false",
                "maxClientCnxns=0",
                "storage=txnlog",
                *(["peerType=observer"] if k >= size else []),
                *_with_default_whitelist(extra_config),
                *servers,
            ]
            workdir_k = self.workdir / f"member{k + 1}"
            self.slots.append(Slot(k + 1, workdir_k, lines, ports[3 * k], k >= size, java_properties))

    # -- lifecycle ---------------------------------------------------------------------

    def __getitem__(self, sid: int) -> Slot:
        """The slot of server id ``sid`` (1-based, as in zoo.cfg)."""
        return self.slots[sid - 1]

    @property
    def address(self) -> str:
        return ",".join(s.address for s in self.slots)

    @property
    def voters(self) -> list[Slot]:
        return [s for s in self.slots if not s.observer]

    def kinds(self) -> dict[int, Kind | None]:
        return {s.sid: s.kind for s in self.slots}

    def start(self, kinds: Sequence[Kind], timeout: float = 60.0) -> None:
        """Start every slot with the program in ``kinds`` (by position) and wait for one ensemble."""
        if len(kinds) != len(self.slots):
            raise ValueError(f"{len(kinds)} kinds for {len(self.slots)} members")
        for slot, kind in zip(self.slots, kinds, strict=True):
            slot.start(kind)
        self.wait_one_ensemble(timeout)

    def switch(self, sid: int, kind: Kind, timeout: float = 60.0) -> float:
        """Stop member ``sid``, start ``kind`` on its files and ports, wait for one ensemble.

        Returns the seconds from the stop until every member was in one ensemble again.
        """
        slot = self[sid]
        began = time.monotonic()
        slot.stop()
        slot.start(kind)
        self.wait_one_ensemble(timeout)
        return time.monotonic() - began

    def stop(self) -> None:
        for slot in self.slots:
            slot.stop()

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what the operator sees ------------------------------------------------------------

    def leader(self) -> Slot | None:
        leaders = [s for s in self.slots if s.running and s.mode() == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def ensemble_problems(self) -> list[str]:
        """Why the running members are not one ensemble (empty when they are); see the module doc."""
        problems: list[str] = []
        modes = {s.sid: s.mode() for s in self.slots if s.kind is not None}
        for slot in self.slots:
            if slot.kind is not None and not slot.running:
                problems.append(f"{slot.describe()} exited:\n{slot.tail()}")
        leaders = [sid for sid, mode in modes.items() if mode == "leader"]
        if len(leaders) != 1:
            problems.append(f"{len(leaders)} leaders (modes {modes})")
        for sid, mode in modes.items():
            want = ("observer",) if self[sid].observer else ("leader", "follower")
            if mode not in want:
                problems.append(f"{self[sid].describe()} is {mode or 'not serving'}, not {'/'.join(want)}")
        if len(leaders) == 1:
            leader = self[leaders[0]]
            running_voters = sum(1 for s in self.voters if s.kind is not None)
            synced = leader.mntr().get("zk_synced_followers")
            if synced is None:
                problems.append(f"leader {leader.describe()} reports no zk_synced_followers")
            elif int(synced) != running_voters - 1:
                problems.append(
                    f"leader {leader.describe()} has {synced} synced followers, not {running_voters - 1}"
                )
        return problems

    def wait_one_ensemble(self, timeout: float) -> None:
        """Poll until :meth:`ensemble_problems` is empty; AssertionError with the last problems."""
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        while time.monotonic() < deadline:
            problems = self.ensemble_problems()
            if not problems:
                return
            if any("exited" in p for p in problems):
                break
            time.sleep(0.2)
        raise AssertionError(
            f"not one ensemble after {timeout:.0f} s (kinds {self.kinds()}):\n  " + "\n  ".join(problems)
        )

    def zxids(self) -> dict[int, int | None]:
        return {s.sid: s.zxid() for s in self.slots if s.kind is not None}

    def wait_same_zxid(self, timeout: float) -> list[str]:
        """Poll until every running member reports the same last zxid; the problem if they do not."""
        deadline = time.monotonic() + timeout
        zxids: dict[int, int | None] = {}
        while time.monotonic() < deadline:
            zxids = self.zxids()
            if len(set(zxids.values())) == 1 and None not in zxids.values():
                return []
            time.sleep(0.2)
        shown = {sid: (hex(z) if z is not None else None) for sid, z in zxids.items()}
        return [f"members did not converge on one zxid: {shown}"]

    def logs_containing(self, needle: str) -> dict[int, list[str]]:
        """For each slot, its log lines that contain ``needle``."""
        found: dict[int, list[str]] = {}
        for slot in self.slots:
            with contextlib.suppress(OSError):
                lines = [line for line in slot.log_text().splitlines() if needle in line]
                if lines:
                    found[slot.sid] = lines
        return found


class StepResult:
    """One member switched: which, from what to what, and what it cost."""

    def __init__(self, sid: int, was: Kind | None, now: Kind, seconds: float, was_leader: bool) -> None:
        self.sid = sid
        self.was = was
        self.now = now
        self.seconds = seconds  # from the stop until one ensemble again
        self.was_leader = was_leader
        self.write_gap = 0.0  # the longest time without an acknowledged write (set by the caller)
        self.began = 0.0
        self.ended = 0.0

    def __repr__(self) -> str:
        role = " (leader)" if self.was_leader else ""
        who = f"member {self.sid}" if self.sid else "all members"
        return (
            f"{who}{role} {self.was}->{self.now}: one ensemble after {self.seconds:.1f} s, "
            f"longest write gap {self.write_gap:.1f} s"
        )


def roll(
    ens: RollingEnsemble, to: Kind, *, timeout: float = 60.0, count: int | None = None
) -> list[StepResult]:
    """Switch every member (or the first ``count``) to ``to``, one at a time, the leader of the
    moment last; after each step the members must be one ensemble again (AssertionError saying
    how they are not)."""
    results: list[StepResult] = []
    pending = [s.sid for s in ens.slots]
    while pending and (count is None or len(results) < count):
        leader = ens.leader()
        followers = [sid for sid in pending if leader is None or sid != leader.sid]
        sid = followers[0] if followers else pending[0]
        was = ens[sid].kind
        began = time.monotonic()
        seconds = ens.switch(sid, to, timeout)
        result = StepResult(sid, was, to, seconds, leader is not None and leader.sid == sid)
        result.began, result.ended = began, time.monotonic()
        results.append(result)
        pending.remove(sid)
    return results
