"""The docs hang together: install.md's commands are README's, every page is indexed, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.doc_blocks import DOCS, tagged_blocks

ROOT = DOCS.parent
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _first_block(text: str) -> str:
    m = re.search(r"^```\w*\n(.*?)^```", text, re.S | re.M)
    assert m is not None
    return m.group(1)


def test_install_md_has_readmes_two_commands_exactly() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert tagged_blocks("install.md")["commands"].text == _first_block(readme)


def test_every_page_is_in_the_index_and_the_readme_links_the_docs() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert [p for p in pages if f"]({p})" not in index] == []
    assert "](docs/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for page in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]:
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_docs_name_only_files_that_exist() -> None:
    """Paths of the repository quoted in the docs (`trizab/...py`, `tests/...`) exist."""
    missing = []
    for page in sorted(DOCS.glob("*.md")):
        for path in re.findall(
            r"`((?:trizab|tests|plugins|frontend|testkit|compat)/[\w/.]+)`", page.read_text()
        ):
            if not (ROOT / path.rstrip("/")).exists():
                missing.append(f"{page.name}: {path}")
    assert missing == []
