"""A standalone server's start-up imports nothing of ZAB (restart time, see bench/README.md)."""

from __future__ import annotations

import subprocess
import sys

STANDALONE_ONLY = """
import functools, sys, trio
from trizab import config as cfg
from trizab.runtime.server import Server
from trizab.plugins.storage.memory import MemoryStoragePlugin
from trizab.testing.memnet import MemoryListener
server = Server(cfg.ServerConfig(client_port=0, storage_name="memory"), storage=MemoryStoragePlugin())

async def serve_then_stop():
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(server.run, listeners=[MemoryListener()]))
        nursery.cancel_scope.cancel()

trio.run(serve_then_stop)
member_only = ("trizab.zab.peer", "trizab.runtime.zab_", "trizab.runtime.election", "trizab.server.replica")
print(" ".join(sorted(m for m in sys.modules if m.startswith(member_only))))
"""


def test_standalone_server_leaves_zab_unimported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", STANDALONE_ONLY], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
