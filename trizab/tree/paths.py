"""Znode path rules: ZooKeeper's ``PathUtils.validatePath`` and parent/child splitting.

Theory of operation
-------------------
ZooKeeper validates a path character by character over Java ``char``s (UTF-16
code units).  A Python ``str`` holds code points, so a supplementary character
(above U+FFFF), which Java sees as a surrogate pair in the rejected
U+D800..U+F8FF range, is rejected here too; bytes that were not valid UTF-8
arrive as lone surrogates (``surrogateescape``) and are rejected the same way.
"""

from __future__ import annotations

__all__ = ["InvalidPath", "parent_of", "split", "validate_path"]


class InvalidPath(ValueError):
    """``PathUtils.validatePath`` would throw ``IllegalArgumentException``."""


def _bad_char(c: int) -> bool:
    return (
        (0 < c <= 0x1F)
        or (0x7F <= c <= 0x9F)
        or (0xD800 <= c <= 0xF8FF)
        or (0xFFF0 <= c <= 0xFFFF)
        or c > 0xFFFF
    )


def validate_path(path: str | None) -> None:
    """Raise :class:`InvalidPath` where ``PathUtils.validatePath`` throws."""
    if path is None:
        raise InvalidPath("Path cannot be null")
    n = len(path)
    if n == 0:
        raise InvalidPath("Path length must be > 0")
    if path[0] != "/":
        raise InvalidPath("Path must start with / character")
    if n == 1:
        return
    if path[-1] == "/":
        raise InvalidPath("Path must not end with / character")
    # Fast path: plain printable ASCII without "//" or dot segments.
    if path.isascii() and path.isprintable() and "//" not in path and "/." not in path:
        return
    last = "/"
    for i in range(1, n):
        c = path[i]
        if c == "\0":
            raise InvalidPath(f"null character not allowed @{i}")
        if c == "/" and last == "/":
            raise InvalidPath(f"empty node name specified @{i}")
        if c == "." and last == ".":
            if path[i - 2] == "/" and (i + 1 == n or path[i + 1] == "/"):
                raise InvalidPath(f"relative paths not allowed @{i}")
        elif c == ".":
            if path[i - 1] == "/" and (i + 1 == n or path[i + 1] == "/"):
                raise InvalidPath(f"relative paths not allowed @{i}")
        elif _bad_char(ord(c)):
            raise InvalidPath(f"invalid character @{i}")
        last = c


def split(path: str) -> tuple[str, str]:
    """``(parent, name)`` of an absolute path; the root's children have parent ``"/"``."""
    i = path.rfind("/")
    parent = path[:i]
    return (parent or "/"), path[i + 1 :]


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return path[:i] or "/"
