"""An in-process ensemble of member :class:`trizab.runtime.server.Server` instances on loopback sockets.

``Cluster.members`` holds each member's ZAB commit path (:class:`ZabCommit`: role, peer, core).

Each member runs in its own cancel scope inside the test's nursery, with
``txnlog`` storage in ``tmp_path`` (so a crash, which cancels the scope without
a final flush, and a restart keep exactly what was synced).  Real sockets mean a
real clock: every wait is bounded by ``trio.fail_after`` and polls in steps of
at most 20 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from trizab import config as cfg
from trizab.runtime.disk import DiskFailed
from trizab.runtime.launcher import write_configs
from trizab.runtime.server import Server
from trizab.runtime.zab_commit import ZabCommit
from trizab.zab.ready import Role

WAIT_S = 20.0

# bench/ (the fail-over benchmark's writer and checker) lives at the top of the repository.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


class Cluster:
    def __init__(
        self, nursery: trio.Nursery, base: Path, size: int, observers: int, tick_time: int, extra: list[str]
    ) -> None:
        self.nursery = nursery
        self.configs = write_configs(
            base, size, observers=observers, tick_time=tick_time, init_limit=5, sync_limit=2, extra=extra
        )
        self.members: dict[int, ZabCommit] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        # Members that stopped themselves (their storage failed), with the error.
        self.stopped: dict[int, BaseException] = {}
        self.servers: dict[int, Server] = {}
        # Set when a member's run() has returned: its storage is closed and its dataDir free.
        self.finished: dict[int, trio.Event] = {}
        self.ports = {sid: port for sid, _, port in self.configs}

    def address(self, sid: int) -> str:
        return f"127.0.0.1:{self.ports[sid]}"

    @property
    def hosts(self) -> str:
        return ",".join(self.address(sid) for sid in sorted(self.ports))

    async def start(self, sid: int) -> ZabCommit:
        # A crashed incarnation still holds the dataDir until its task has unwound (as a killed
        # process holds it until it is gone); the new one would find it locked.
        if sid in self.finished:
            await self.finished[sid].wait()
        path = next(p for s, p, _ in self.configs if s == sid)
        server = Server(cfg.load(path))
        assert server.zab is not None
        member = server.zab
        scope = trio.CancelScope()
        finished = self.finished[sid] = trio.Event()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await server.run(task_status=task_status)
            except* DiskFailed as group:
                # The member stopped itself, as `trizab serve` does with status 3.
                self.stopped[sid] = group.exceptions[0]
            finally:
                finished.set()

        self.members[sid] = member
        self.servers[sid] = server
        self.scopes[sid] = scope
        await self.nursery.start(run)
        return member

    async def start_all(self) -> None:
        for sid, _, _ in self.configs:
            await self.start(sid)

    def crash(self, sid: int) -> None:
        self.scopes.pop(sid).cancel()
        self.members.pop(sid)

    def serving(self) -> dict[int, ZabCommit]:
        return {sid: m for sid, m in self.members.items() if m.established}

    def leader(self) -> ZabCommit | None:
        found = [m for m in self.members.values() if m.established and m.role == Role.LEADING]
        return found[0] if len(found) == 1 else None

    async def wait_for(self, cond: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        with trio.fail_after(timeout):
            while True:
                value = cond()
                if value:
                    return value
                await trio.sleep(0.02)

    async def wait_serving(self, sids: list[int] | None = None) -> ZabCommit:
        want = set(self.members if sids is None else sids)

        def ok() -> ZabCommit | None:
            leader = self.leader()
            if leader is None or not want <= set(self.serving()):
                return None
            return leader

        return await self.wait_for(ok)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Callable[..., Any]:
    def make(
        nursery: trio.Nursery,
        size: int = 3,
        observers: int = 0,
        tick_time: int = 500,
        extra: list[str] | None = None,
    ) -> Cluster:
        return Cluster(nursery, tmp_path, size, observers, tick_time, extra or [])

    return make


async def kazoo(fn: Callable[[], Any]) -> Any:
    """Run blocking kazoo code in a thread (the ensemble keeps running in trio)."""
    return await trio.to_thread.run_sync(fn)
