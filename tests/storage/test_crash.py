"""Crash safety with a real ``trizab serve`` process: kill -9 under load loses no acknowledged write.

Each round starts the server (storage=txnlog, forceSync=yes, small snapCount so
snapshots, log rolls and purges happen during the run), lets several kazoo
clients pipeline creates as fast as they can, kills the process with SIGKILL at
a random moment, restarts it and checks that every create whose reply reached a
client is present with the same czxid (hence in the same zxid order), across all
rounds so far.  Writes that got no reply may or may not be there.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from pathlib import Path

import pytest

kazoo_client = pytest.importorskip("kazoo.client")
from testkit.process import TrizabProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

WRITERS = 4
WINDOW = 64  # outstanding requests per client
ROUNDS = 12


class Writer(threading.Thread):
    """One kazoo client creating /log/w<k>-<round>-<i> with up to WINDOW requests in flight."""

    def __init__(self, address: str, k: int, round_: int) -> None:
        super().__init__(daemon=True)
        self.address, self.k, self.round = address, k, round_
        self.stop_flag = threading.Event()
        self.acked: list[tuple[str, int]] = []  # (path, czxid), in reply order
        self.error: BaseException | None = None
        self.client = kazoo_client.KazooClient(self.address, timeout=10, connection_retry={"max_tries": 0})
        self.client.start(timeout=10)

    def _record(self, result: object) -> None:
        path, stat = result.get_nowait()  # type: ignore[attr-defined]
        self.acked.append((path, stat.czxid))

    def run(self) -> None:
        window: collections.deque = collections.deque()
        i = 0
        try:
            while not self.stop_flag.is_set():
                path = f"/log/w{self.k}-{self.round}-{i:07d}"
                i += 1
                window.append(self.client.create_async(path, b"x" * 32, include_data=True))
                if len(window) >= WINDOW:
                    head = window.popleft()
                    head.wait(10)
                    self._record(head)
        except Exception:
            pass  # the server died under us: expected
        finally:
            # Replies that arrived before the crash count as acknowledged too.
            for result in window:
                if result.ready() and result.successful():
                    self._record(result)
                else:
                    break

    def close(self) -> None:
        self.stop_flag.set()
        self.join(15)
        try:
            self.client.stop()
            self.client.close()
        except Exception:
            pass


def check_present(address: str, acked: dict[str, int]) -> None:
    client = kazoo_client.KazooClient(address, timeout=10)
    client.start(timeout=15)
    try:
        names = set(client.get_children("/log"))
        missing = [p for p in acked if p.rsplit("/", 1)[1] not in names]
        assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
        paths = list(acked)
        for k in range(0, len(paths), 500):
            chunk = paths[k : k + 500]
            results = [client.exists_async(p) for p in chunk]
            for p, res in zip(chunk, results, strict=True):
                stat = res.get(timeout=15)
                assert stat is not None, p
                assert stat.czxid == acked[p], f"{p}: czxid {stat.czxid:#x} != acknowledged {acked[p]:#x}"
    finally:
        client.stop()
        client.close()


def test_kill_9_under_load_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    server = TrizabProcess(
        tmp_path / "server",
        storage="txnlog",
        extra_config=[
            "forceSync=yes",
            "snapCount=2000",
            "autopurge.snapRetainCount=3",
            "autopurge.purgeInterval=1",
        ],
    )
    server.start()
    acked: dict[str, int] = {}
    last_zxid = 0
    total_started = time.monotonic()
    try:
        setup = kazoo_client.KazooClient(server.address, timeout=10)
        setup.start(timeout=10)
        setup.ensure_path("/log")
        setup.stop()
        setup.close()
        for round_ in range(ROUNDS):
            writers = [Writer(server.address, k, round_) for k in range(WRITERS)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            for w in writers:
                w.close()
            this_round = [a for w in writers for a in w.acked]
            assert this_round, "no write was acknowledged in this round: the test proves nothing"
            for w in writers:
                zxids = [z for _, z in w.acked]
                assert zxids == sorted(zxids), "one client's acknowledged writes out of zxid order"
            acked.update(this_round)
            # zxids of acknowledged writes only grow across crashes.
            assert min(z for _, z in this_round) > last_zxid
            last_zxid = max(z for _, z in this_round)
            server.start()
            check_present(server.address, acked)
    finally:
        server.stop()
    elapsed = time.monotonic() - total_started
    print(f"{ROUNDS} kill -9 rounds, {len(acked)} acknowledged creates verified, {elapsed:.1f} s")
