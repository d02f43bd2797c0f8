"""A leader whose fsync fails (EIO) stops, acknowledging nothing more; the others elect a new
leader and go on, and its restart recovers from its log."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import trio
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from trizab.runtime.disk import DiskFailed


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_a_leader_with_a_failed_fsync_stops_and_the_others_elect(make_cluster: Any) -> None:
    async with trio.open_nursery() as nursery:
        cl = make_cluster(nursery)
        await cl.start_all()
        leader = await cl.wait_serving()
        old = leader.my_id
        retry = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.3, deadline=30)
        client = KazooClient(hosts=cl.hosts, connection_retry=retry, command_retry=retry, timeout=10.0)
        await in_thread(lambda: client.start(timeout=30))
        try:
            await in_thread(lambda: client.create("/before", b"1"))
            storage = cl.servers[old].storage

            def failing_sync() -> None:
                raise OSError(errno.EIO, "Input/output error")

            storage.sync = failing_sync  # type: ignore[method-assign]
            storage.sync_start = failing_sync  # type: ignore[method-assign]
            # Writes go on: the leader stops at its next barrier, the others elect.
            await in_thread(lambda: client.retry(client.set, "/before", b"2"))
            with trio.fail_after(30):
                await cl.finished[old].wait()
            assert isinstance(cl.stopped.get(old), DiskFailed)
            cl.members.pop(old)  # gone, as a stopped process is
            new = await cl.wait_serving()
            assert new.my_id != old
            assert await in_thread(lambda: client.retry(client.get, "/before")[0]) == b"2"
            # Restarted, it recovers from its log and rejoins.
            await cl.start(old)
            await cl.wait_serving()
        finally:
            await in_thread(client.stop)
            await in_thread(client.close)
        nursery.cancel_scope.cancel()
