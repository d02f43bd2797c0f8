"""The zoo.cfg keys trizab.config knows (read from its key tables) and those docs/configuration.md lists.

The reference is written by hand (meaning, what trizab does differently) but its list of keys is
checked against this one by ``tests/docs/test_config_reference.py``, both ways, so it cannot drift.
``python -m tests.docs.config_keys`` prints the keys with their defaults as Markdown table rows: the
starting point for a new row.

Keys are named the way the reference writes them: a literal key (``tickTime``), ``server.N``, or a
prefix with ``*`` (``admin.*``: every key starting with ``admin.``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from trizab import config as cfg

__all__ = [
    "DYNAMIC_FORMS",
    "KNOWN_TABLES",
    "config_defaults",
    "known_keys",
    "reference_keys",
    "unread_tables",
]

# The tables of trizab.config this module reads; a new table (a module-level *_KEYS, *_PREFIXES or
# *_SUFFIXES) is reported by unread_tables() so that its keys cannot go unnoticed.
KNOWN_TABLES = (
    "_KEYS",
    "_TLS_KEYS",
    "_TLS_SUFFIXES",
    "_SASL_KEYS",
    "_SECURITY_KEYS",
    "_SECURITY_PREFIXES",
    "_IGNORED_KEYS",
    "_IGNORED_PREFIXES",
)

# Prefixes parse() tests with key.startswith(...) itself, and how the reference writes them.
DYNAMIC_FORMS = {
    "server.": "server.N",
    "storage.": "storage.*",
    "election.": "election.*",
    "authProvider.": "authProvider.*",
    "superUser.": "superUser.N",
    "ssl.": None,  # ssl.<suffix>: the _TLS_SUFFIXES, listed one by one
    "ssl.quorum.": None,  # ssl.quorum.<suffix>: likewise
}


def _config_modules() -> list[ModuleType]:
    """trizab.config and each of its modules: a table there need not be re-exported to be seen."""
    names = [info.name for info in pkgutil.iter_modules(cfg.__path__)]
    return [cfg, *(importlib.import_module(f"{cfg.__name__}.{name}") for name in names)]


def unread_tables() -> list[str]:
    """Key tables of trizab.config that this module does not read (should be empty)."""
    found = [
        name
        for module in _config_modules()
        for name, value in vars(module).items()
        if re.fullmatch(r"_[A-Z0-9_]*(KEYS|PREFIXES|SUFFIXES)", name)
        and isinstance(value, dict | frozenset | tuple)
    ]
    return sorted(set(found) - set(KNOWN_TABLES))


def unread_prefixes() -> list[str]:
    """Prefixes parse() checks with startswith that DYNAMIC_FORMS does not know (should be empty)."""
    source = inspect.getsource(cfg.parse)
    literals = set(re.findall(r'startswith\("([^"]+)"\)', source))
    return sorted(literals - set(DYNAMIC_FORMS))


def known_keys() -> dict[str, str]:
    """Every key trizab.config knows -> what it does with it (parsed, tls, refused, ignored, ...)."""
    keys: dict[str, str] = {}
    for key in cfg._KEYS:
        keys[key] = "parsed"
    for key in cfg._TLS_KEYS:
        keys[key] = "tls"
    for suffix in cfg._TLS_SUFFIXES:
        keys[f"ssl.{suffix}"] = "tls"
        keys[f"ssl.quorum.{suffix}"] = "tls"
    for key in cfg._SASL_KEYS:
        keys[key] = "sasl"
    keys["superUser"] = "sasl"
    for key in cfg._SECURITY_KEYS:
        keys[key] = "security"
    for prefix in cfg._SECURITY_PREFIXES:
        keys[f"{prefix}*"] = "security"
    for key in cfg._IGNORED_KEYS:
        keys[key] = "ignored"
    for prefix in cfg._IGNORED_PREFIXES:
        # A prefix without a dot (serverCnxnFactory) matches longer names too: written with * as well.
        keys[f"{prefix}*"] = "ignored"
    for form in DYNAMIC_FORMS.values():
        if form is not None:
            keys.setdefault(form, "parsed")
    return keys


_ROW_KEY = re.compile(r"`([^`]+)`")


def reference_keys(path: Path) -> dict[str, int]:
    """The keys the reference lists: backticked names in the first cell of its table rows -> line."""
    keys: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        for key in _ROW_KEY.findall(first):
            keys.setdefault(key, lineno)
    return keys


def config_defaults() -> dict[str, Any]:
    """key -> the default of the attribute it sets (ServerConfig, or TlsSettings for ssl.*)."""
    server = {a.name: a.default for a in attrs.fields(cfg.ServerConfig)}
    tls = {a.name: a.default for a in attrs.fields(cfg.TlsSettings)}
    sasl = {a.name: a.default for a in attrs.fields(cfg.SaslSettings)}
    out: dict[str, Any] = {}
    for key, (attr, _) in (*cfg._KEYS.items(), *cfg._TLS_KEYS.items()):
        out[key] = server[attr]
    for key, (attr, _) in cfg._SASL_KEYS.items():
        out[key] = sasl[attr]
    for suffix, (attr, _) in cfg._TLS_SUFFIXES.items():
        out[f"ssl.{suffix}"] = out[f"ssl.quorum.{suffix}"] = tls[attr]
    return out


def _show(value: Any) -> str:
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return "-" if value is None else str(value)


def main() -> int:
    defaults = config_defaults()
    for key, kind in sorted(known_keys().items(), key=lambda kv: (kv[1], kv[0].lower())):
        sys.stdout.write(f"| `{key}` | {_show(defaults.get(key))} | {kind} |\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
