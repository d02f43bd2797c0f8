"""The code blocks of docs/*.md that the docs tests run, found by a marker comment.

A block the tests run is preceded by an HTML comment naming it (invisible when the Markdown is
rendered)::

    <!-- docs-test: zoo.cfg -->
    ```ini
    tickTime=2000
    ```

so the tests take the very text a reader copies, and a page edited into something that no longer
works fails its test.  A block in a list item may be indented (marker and fence alike); its
lines lose the fence's indentation.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

__all__ = ["DOCS", "DocBlock", "tagged_blocks"]

DOCS = Path(__file__).resolve().parents[2] / "docs"

_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<name>[\w.-]+)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")


@attrs.frozen
class DocBlock:
    name: str
    lang: str
    text: str
    line: int  # where the block's first line is, for messages


def tagged_blocks(page: str | Path) -> dict[str, DocBlock]:
    """Every marked block of a page, by name; a marker not followed by a fence is an error."""
    path = page if isinstance(page, Path) else DOCS / page
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: dict[str, DocBlock] = {}
    i = 0
    while i < len(lines):
        marker = _MARKER.match(lines[i])
        i += 1
        if marker is None:
            continue
        name = marker["name"]
        fence = _FENCE.match(lines[i]) if i < len(lines) else None
        if fence is None:
            raise ValueError(f"{path.name}:{i}: docs-test marker {name!r} is not followed by a ``` fence")
        if name in blocks:
            raise ValueError(f"{path.name}:{i}: docs-test block {name!r} appears twice")
        indent = fence["indent"]
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith(indent + "```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path.name}:{start}: docs-test block {name!r} is not closed")
        body = [line.removeprefix(indent) for line in lines[start:end]]
        blocks[name] = DocBlock(name, fence["lang"], "\n".join(body) + "\n", start + 1)
        i = end + 1
    return blocks
