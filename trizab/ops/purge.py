"""``trizab purge --count N``: ZooKeeper's ``PurgeTxnLog`` (``zkCleanup.sh -n N``) for trizab's engines.

Keeps the ``N`` newest snapshots and the logs they need, and deletes the rest.  The
deleting is the storage engine's own ``purge`` (the one a running server calls for
``autopurge.snapRetainCount``), so the rule is the same in both places: for
``txnlog``, ZooKeeper's (every snapshot older than the N newest, and every log segment
that ends before the oldest kept snapshot; the segment holding it is kept).  ``N``
must be at least 3, as ZooKeeper requires.

Unlike ZooKeeper's tool, this one takes the data directories' lock first and refuses
a directory that a running trizab server holds: the engine's contract is "open, then
purge", and opening recovers (a torn tail of the log is cut), which must never happen
under a live server.  A running server purges itself with ``autopurge.purgeInterval``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from trizab import config as cfg
from trizab import plugin
from trizab.runtime.datadir import LOCK_NAME, DataDirError, claim, config_directories
from trizab.storage import StorageError

__all__ = ["MIN_COUNT", "PurgeError", "PurgeResult", "detect_engine", "purge"]

MIN_COUNT = 3  # PurgeTxnLog: "count should be greater than or equal to 3"


class PurgeError(Exception):
    """The purge cannot run; ``str()`` is one line."""


@attrs.frozen
class PurgeResult:
    engine: str
    kept: list[int]  # zxids of the snapshots left, oldest first
    removed_snapshots: list[int]
    removed_files: list[Path]


def detect_engine(data_dir: Path, data_log_dir: Path | None) -> str:
    """The engine whose files ``data_dir`` holds (``--config`` names it otherwise)."""
    if (data_dir / "trizab.sqlite3").exists():
        return "sqlite"
    if any((d / "version-2").is_dir() for d in (data_dir, data_log_dir or data_dir)):
        return "txnlog"
    raise PurgeError(f"{data_dir} holds no trizab or ZooKeeper data (no version-2, no trizab.sqlite3)")


def _files(dirs: list[Path]) -> set[Path]:
    found = set()
    for d in dirs:
        for root, _subdirs, names in os.walk(d):
            found.update(Path(root) / n for n in names if n != LOCK_NAME)
    return found


def purge(
    config: cfg.ServerConfig,
    count: int,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> PurgeResult:
    """Keep ``count`` snapshots in ``config``'s directories (see the module docstring)."""
    if count < MIN_COUNT:
        raise PurgeError(f"--count {count}: count should be greater than or equal to {MIN_COUNT}")
    if config.data_dir is None:
        raise PurgeError("no dataDir: give --data-dir or a --config that sets dataDir")
    for key, d in (("dataDir", config.data_dir), ("dataLogDir", config.data_log_dir)):
        if d is not None and not d.is_dir():
            raise PurgeError(f"{key} {d} does not exist")
    if config.storage_name is None:
        config = config.evolve(storage_name=detect_engine(config.data_dir, config.data_log_dir))
    engine_name = config.storage_name
    assert engine_name is not None
    try:
        lock = claim(config_directories(config))
    except DataDirError as exc:
        raise PurgeError(
            f"{exc}: stop it first, or let it purge itself (autopurge.snapRetainCount, "
            "autopurge.purgeInterval)"
        ) from None
    try:
        try:
            storage = plugin.load_storage(config)
        except plugin.PluginError as exc:
            raise PurgeError(str(exc)) from None
        if not getattr(storage, "durable", True):
            raise PurgeError(f"storage {engine_name} keeps nothing on disk: nothing to purge")
        dirs = [d for _, d in config_directories(config)]
        before_files = _files(dirs)
        if progress is not None and hasattr(storage, "progress"):
            storage.progress = progress
        try:
            storage.open()
        except (StorageError, OSError) as exc:
            raise PurgeError(f"cannot open the {engine_name} storage: {exc}") from None
        try:
            before = storage.snapshots()
            storage.purge(count)
            kept = storage.snapshots()
        finally:
            storage.close()
        removed_files = sorted(before_files - _files(dirs))
    finally:
        lock.release()
    return PurgeResult(engine_name, kept, [z for z in before if z not in kept], removed_files)
