"""Directories that survive a power cut, for the storage engines.

A new directory's name is data of its parent: POSIX makes it durable only with an
fsync of the parent.  ext4's journal usually commits a mkdir with the next fsync of
anything, but nothing promises that, and a data directory whose entry is lost takes
every acknowledged write in it along.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    """fsync a directory: makes the entries in it (creates, renames, unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_mkdir(path: Path, levels: int = 2) -> None:
    """``mkdir -p path``, then fsync the parents of ``path`` and of its ``levels - 1`` ancestors.

    Done on every open, not only when the directory is new: a directory made by an
    earlier run that crashed before anything synced it is covered too.  The default,
    two levels, covers ``<dataDir>/version-2`` and ``<dataDir>`` itself (the runtime
    creates a missing dataDir without syncing its parent).  A parent we may not open
    (permissions) is left as it is.
    """
    path.mkdir(parents=True, exist_ok=True)
    for directory in (path, *path.parents)[:levels]:
        try:
            fsync_dir(directory.parent)
        except PermissionError:
            log.debug("cannot open %s to fsync it", directory.parent)
