"""docs/configuration.md lists exactly the keys trizab.config knows, with trizab.config's defaults.

Both directions: a key the code knows and the reference does not list fails (add a row), and so
does a key the reference lists that trizab.config does not know; the latter is also checked by
behaviour, parsing each listed key and watching for the "unknown key" warning.
"""

from __future__ import annotations

import logging
import re

import pytest

from tests.docs.config_keys import (
    config_defaults,
    known_keys,
    reference_keys,
    unread_prefixes,
    unread_tables,
)
from tests.docs.doc_blocks import DOCS
from trizab import config as cfg

REFERENCE = DOCS / "configuration.md"

# Defaults the reference states in words rather than as trizab.config's sentinel.
DERIVED_DEFAULTS = {
    "minSessionTimeout": "2 x tickTime",  # -1 in trizab.config
    "maxSessionTimeout": "20 x tickTime",
    "4lw.commands.whitelist": ",".join(sorted(cfg.DEFAULT_4LW_WHITELIST)),  # None: ZooKeeper's default
}


def _rows() -> dict[str, list[str]]:
    """key -> the cells of the row listing it."""
    rows: dict[str, list[str]] = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            for key in reference_keys_in(cells[0]):
                rows.setdefault(key, cells)
    return rows


def reference_keys_in(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_trizab_config_has_no_key_table_this_test_does_not_read() -> None:
    assert unread_tables() == [], "teach tests/docs/config_keys.py (KNOWN_TABLES) the new table"
    assert unread_prefixes() == [], "teach tests/docs/config_keys.py (DYNAMIC_FORMS) the new prefix"


def test_every_key_trizab_config_knows_is_in_the_reference() -> None:
    listed = reference_keys(REFERENCE)
    missing = sorted(set(known_keys()) - set(listed), key=str.lower)
    assert missing == [], (
        f"{len(missing)} key(s) known to trizab.config are missing from docs/configuration.md "
        f"(add a row; `python -m tests.docs.config_keys` prints them with defaults): {', '.join(missing)}"
    )


def test_every_key_in_the_reference_is_known_to_trizab_config() -> None:
    listed = reference_keys(REFERENCE)
    unknown = sorted(set(listed) - set(known_keys()), key=str.lower)
    assert unknown == [], f"docs/configuration.md lists keys trizab.config does not know: {unknown}"


def _example(key: str) -> str:
    """A concrete key for a listed form: server.N -> server.7, admin.* -> admin.example."""
    if key == "server.N":
        return "server.7"
    return key[:-1] + "example" if key.endswith("*") else key


def test_trizab_config_does_not_call_a_listed_key_unknown(caplog: pytest.LogCaptureFixture) -> None:
    """Behaviour, not tables: parsing each listed key never logs 'unknown key'."""
    for key in reference_keys(REFERENCE):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=cfg.__name__):
            try:
                cfg.parse(f"{_example(key)}=1\n", read_myid=False)
            except cfg.ConfigError as exc:
                # Refused, a bad value or a failed check: all say the key was recognised.
                assert "unknown key" not in str(exc)
        unknown = [r.getMessage() for r in caplog.records if "unknown key" in r.getMessage()]
        assert unknown == [], f"{key}: {unknown}"


def _same(doc: str, default: object) -> bool:
    if isinstance(default, bool):
        return doc == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(doc) == float(default)
        except ValueError:
            return False
    return doc == str(default)


def test_the_reference_gives_trizab_config_defaults() -> None:
    rows = _rows()
    defaults = config_defaults()
    wrong = []
    for key, default in defaults.items():
        if key not in rows:
            continue  # reported by the listing test
        doc = rows[key][1]
        if key in DERIVED_DEFAULTS:
            ok = doc == DERIVED_DEFAULTS[key]
        elif default is None:
            ok = doc.startswith("(") or key in ("storage", "election")  # "(none)", "(from the file name)"
        elif default == "":
            ok = doc == "(empty)"
        elif default == ():
            ok = doc == "(none)"
        elif isinstance(default, frozenset | dict):
            ok = True
        else:
            ok = _same(doc, default)
        if not ok:
            wrong.append(f"{key}: reference says {doc!r}, trizab.config {default!r}")
    assert wrong == []


def test_the_plugin_defaults_the_reference_names_are_the_loaders() -> None:
    """storage and election are None in trizab.config; the reference names what the loaders pick."""
    from pathlib import Path

    from trizab.runtime import zab_commit
    from trizab.runtime.disk import storage_name

    rows = _rows()
    assert rows["storage"][1] == storage_name(cfg.ServerConfig(data_dir=Path("data")))
    source = Path(zab_commit.__file__).read_text()
    assert f'config.election_name or "{rows["election"][1]}"' in source
