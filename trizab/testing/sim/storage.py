"""The simulated disk of one server: durable state plus the writes of the Ready in flight.

A Ready's writes are queued in the order its contract prescribes (truncate, snapshot,
appends, epochs last) and become durable when the simulated fsync completes; a crash
keeps a random prefix of them and loses the rest, as a log appended but not synced would.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from typing import Any

import attrs

from trizab.testing.sim.invariants import InvariantViolation
from trizab.zab.messages import Entry
from trizab.zab.ready import Ready
from trizab.zab.zxid import fmt


@attrs.define
class SimStorage:
    """Durable state of one simulated server plus the in-flight (unsynced) writes."""

    snap_zxid: int = 0
    snap_data: bytes = pickle.dumps([])
    log: list[Entry] = attrs.Factory(list)
    accepted_epoch: int = 0
    current_epoch: int = 0
    inflight: list[tuple[str, Any]] = attrs.Factory(list)
    zxids: set[int] = attrs.Factory(set)

    def has(self, z: int) -> bool:
        """Whether transaction ``z`` is durable here (in the log or under the snapshot)."""
        return z in self.zxids or 0 < z <= self.snap_zxid

    def write(self, rd: Ready) -> None:
        """Queue a Ready's writes in the order the Ready contract prescribes."""
        ops: list[tuple[str, Any]] = []
        if rd.snapshot is not None:
            ops.append(("truncate", rd.snapshot.zxid))
            ops.append(("snapshot", (rd.snapshot.zxid, rd.snapshot.data)))
        if rd.truncate_after is not None:
            ops.append(("truncate", rd.truncate_after))
        ops.extend(("append", e) for e in rd.to_persist)
        if rd.hard_state is not None:
            ops.append(("accepted", rd.hard_state.accepted_epoch))
            ops.append(("current", rd.hard_state.current_epoch))
        self.inflight.extend(ops)

    def sync(self) -> None:
        self._apply(self.inflight)
        self.inflight = []

    def crash(self, rng: random.Random) -> None:
        """Keep a random prefix of the unsynced writes, lose the rest."""
        keep = rng.randint(0, len(self.inflight))
        self._apply(self.inflight[:keep])
        self.inflight = []

    def _apply(self, ops: Iterable[tuple[str, Any]]) -> None:
        for op, arg in ops:
            if op == "truncate":
                self.log = [e for e in self.log if e.zxid <= arg]
                self.zxids = {e.zxid for e in self.log}
            elif op == "snapshot":
                self.snap_zxid, self.snap_data = arg
            elif op == "append":
                if self.log and arg.zxid <= self.log[-1].zxid:
                    raise InvariantViolation(f"log append out of order {fmt(arg.zxid)}")
                self.log.append(arg)
                self.zxids.add(arg.zxid)
            elif op == "accepted":
                self.accepted_epoch = arg
            elif op == "current":
                self.current_epoch = arg

    def save_snapshot(self, z: int, data: bytes) -> None:
        # Taken between Readys, as ZooKeeper's SyncRequestProcessor does between batches.
        assert not self.inflight, "snapshot while a Ready's writes are in flight"
        self.snap_zxid, self.snap_data = z, data
        self.log = [e for e in self.log if e.zxid > z]
        self.zxids = {e.zxid for e in self.log}

    def recovered_history(self) -> list[Entry]:
        return [e for e in self.log if e.zxid > self.snap_zxid]
