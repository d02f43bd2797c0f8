"""Plugin discovery: one mechanism for every plugin group (``trizab.storage``, ``trizab.election``).

Theory of operation
-------------------
A plugin is a class registered under an entry-point group, exactly as a
third-party distribution would register it::

    [project.entry-points."trizab.storage"]
    txnlog = "trizab.plugins.storage.txnlog:TxnLogStoragePlugin"

The entry-point name is the name users write in ``zoo.cfg`` (``storage=txnlog``).
The class declares, as class attributes:

* ``description``: one line shown by ``trizab plugins``;
* ``options``: a sequence of :class:`Option` (name, parser, default, help).

``load_plugin(group, name, raw_options, **context)`` looks the name up, parses
every ``<kind>.<option>=value`` string with the option's parser (which raises
``ValueError`` with a short reason), fills in defaults, and constructs the
instance as ``cls(**context, **parsed)``.  ``context`` is what the group's
interface promises every plugin of that group (for storage: ``data_dir``,
``data_log_dir``, ``force_sync``; see :mod:`trizab.storage`); option names are
Python identifiers so they map onto keyword arguments.

Every configuration mistake becomes one :class:`PluginError` whose message is a
single line naming the key, the value and the choices, because it is printed
as-is when start-up stops.  Nothing here imports a plugin until it is needed,
and a plugin that fails to import is reported, not fatal, when listing.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from trizab.storage import Storage

__all__ = [
    "GROUPS",
    "Option",
    "PluginError",
    "PluginInfo",
    "available",
    "describe_plugins",
    "load_plugin",
    "load_storage",
    "parse_bool",
    "parse_choice",
    "parse_int",
    "parse_size",
]

# Entry-point group -> the config key that selects a plugin of that group.
GROUPS: dict[str, str] = {"trizab.storage": "storage", "trizab.election": "election"}


class PluginError(Exception):
    """A configuration error about a plugin; ``str()`` is one line fit to print and exit with."""


# ---------------------------------------------------------------------------
# Options and their parsers.  A parser takes the raw string from zoo.cfg and
# returns the value or raises ValueError with a short "expected ..." reason.


@attrs.frozen
class Option:
    """One option a plugin accepts, written ``<kind>.<name>=<value>`` in zoo.cfg."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    # Shown in `trizab plugins`, e.g. "bool", "int", "size", "one of a|b".
    kind: str = "str"


_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})


def parse_bool(raw: str) -> bool:
    """ZooKeeper-style booleans (``forceSync=no``), case-insensitive."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected yes/no (or true/false, on/off, 1/0)")


def parse_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A parser for a decimal integer within [minimum, maximum]."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError("expected an integer") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"expected an integer <= {maximum}")
        return value

    return parse


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
}


def parse_size(raw: str) -> int:
    """A byte count: ``65536``, ``64K``, ``64M``, ``1G`` (binary units)."""
    text = raw.strip().lower()
    digits = text.rstrip("kmgb")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise ValueError("expected a size such as 65536, 64K, 64M or 1G")
    return int(digits) * _SIZE_UNITS[unit]


def parse_choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting exactly one of ``choices`` (case-sensitive)."""

    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ValueError(f"expected one of {'|'.join(choices)}")
        return value

    return parse


# ---------------------------------------------------------------------------
# Discovery.


@attrs.frozen
class PluginInfo:
    """What ``available`` reports about one installed plugin."""

    group: str
    name: str
    # "module:attr" of the entry point, and the distribution that registered it.
    target: str
    distribution: str | None
    description: str = ""
    options: tuple[Option, ...] = ()
    # Set when the plugin could not be imported or declares itself wrongly.
    error: str | None = None
    cls: type | None = None


def _kind(group: str) -> str:
    try:
        return GROUPS[group]
    except KeyError:
        raise PluginError(f"unknown plugin group {group!r}; choices: {', '.join(sorted(GROUPS))}") from None


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    # Looked up through the module attribute on every call, so a test (or an
    # embedding application) can substitute importlib.metadata.entry_points.
    eps = importlib.metadata.entry_points(group=group)
    return sorted(eps, key=lambda ep: ep.name)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _inspect(group: str, ep: importlib.metadata.EntryPoint) -> PluginInfo:
    base = {"group": group, "name": ep.name, "target": ep.value, "distribution": _dist_name(ep)}
    try:
        cls = ep.load()
    except Exception as exc:  # a broken third-party plugin must not break listing
        return PluginInfo(**base, error=f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
    description = getattr(cls, "description", None)
    options = getattr(cls, "options", ())
    if not isinstance(description, str) or not all(isinstance(o, Option) for o in options):
        return PluginInfo(
            **base, error=f"{ep.value} must declare description: str and options: Sequence[Option]"
        )
    return PluginInfo(**base, description=description.strip(), options=tuple(options), cls=cls)


def available(group: str) -> list[PluginInfo]:
    """Every plugin registered under ``group``, sorted by name (broken ones carry ``error``)."""
    _kind(group)
    return [_inspect(group, ep) for ep in _entry_points(group)]


def _find(group: str, name: str) -> PluginInfo:
    kind = _kind(group)
    eps = _entry_points(group)
    matches = [ep for ep in eps if ep.name == name]
    if not matches:
        choices = ", ".join(sorted({ep.name for ep in eps})) or "(none installed)"
        raise PluginError(f"unknown {kind}={name}; choices: {choices}")
    if len({ep.value for ep in matches}) > 1:
        targets = ", ".join(f"{ep.value} ({_dist_name(ep)})" for ep in matches)
        raise PluginError(f"{kind}={name} is registered by more than one distribution: {targets}")
    info = _inspect(group, matches[0])
    if info.error is not None:
        raise PluginError(f"{kind}={name}: {info.error}")
    return info


def _parse(info: PluginInfo, raw_options: Mapping[str, str]) -> dict[str, Any]:
    kind = GROUPS[info.group]
    by_name = {o.name: o for o in info.options}
    parsed = {o.name: o.default for o in info.options}
    for key, raw in raw_options.items():
        option = by_name.get(key)
        if option is None:
            choices = ", ".join(sorted(by_name)) or "(this plugin takes no options)"
            raise PluginError(f"unknown option {kind}.{key}={raw} for {kind}={info.name}; choices: {choices}")
        try:
            parsed[key] = option.parse(raw)
        except ValueError as exc:
            raise PluginError(f"bad value {kind}.{key}={raw} for {kind}={info.name}: {exc}") from None
    return parsed


def load_plugin(group: str, name: str, raw_options: Mapping[str, str] | None = None, **context: Any) -> Any:
    """Find plugin ``name`` in ``group``, validate its options and return ``cls(**context, **options)``."""
    info = _find(group, name)
    parsed = _parse(info, raw_options or {})
    clash = sorted(set(parsed) & set(context))
    if clash:
        # A plugin bug, not a user error, but still one line naming the culprit.
        raise PluginError(f"{GROUPS[group]}={name} declares options that clash with its context: {clash}")
    assert info.cls is not None
    try:
        return info.cls(**context, **parsed)
    except PluginError:
        raise
    except (ValueError, OSError) as exc:
        # Cross-option validation in the constructor, or an unusable directory.
        raise PluginError(f"{GROUPS[group]}={name}: {exc}") from None


def describe_plugins(groups: Sequence[str] = tuple(GROUPS)) -> str:
    """Human-readable listing of every installed plugin and its options (``trizab plugins``)."""
    lines: list[str] = []
    for group in groups:
        kind = _kind(group)
        lines.append(f"{kind} plugins (entry-point group {group}, choose with {kind}=NAME):")
        infos = available(group)
        if not infos:
            lines.append("  (none installed)")
        for info in infos:
            origin = f" [{info.distribution}]" if info.distribution else ""
            if info.error is not None:
                lines.append(f"  {info.name}{origin}: BROKEN: {info.error}")
                continue
            lines.append(f"  {info.name}{origin}: {info.description}")
            for o in info.options:
                lines.append(f"      {kind}.{o.name}=<{o.kind}>  (default {_show(o)})  {o.help}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _show(option: Option) -> str:
    value = option.default
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == ():
        return "none"
    if option.kind == "size" and isinstance(value, int):
        for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
            if value and value % (1 << shift) == 0:
                return f"{value >> shift}{unit}"
    return str(value)


# ---------------------------------------------------------------------------
# Storage convenience: what the runtime calls at start-up.


def load_storage(config: Any) -> Storage:
    """Build the storage engine a :class:`trizab.config.ServerConfig` names (not yet opened).

    Reads ``storage_name`` (None: ``txnlog`` if installed and ``data_dir`` is set,
    else ``memory``), ``storage_options``, ``data_dir``, ``data_log_dir`` (falls
    back to ``data_dir``) and ``force_sync`` from ``config``.
    """
    data_dir = getattr(config, "data_dir", None)
    data_log_dir = getattr(config, "data_log_dir", None) or data_dir
    name = getattr(config, "storage_name", None)
    if name is None:
        # Not configured: the durable default when there is somewhere to put it.
        installed = {ep.name for ep in _entry_points("trizab.storage")}
        name = "txnlog" if "txnlog" in installed and data_dir is not None else "memory"
    return load_plugin(
        "trizab.storage",
        name,
        dict(getattr(config, "storage_options", None) or {}),
        data_dir=Path(data_dir) if data_dir is not None else None,
        data_log_dir=Path(data_log_dir) if data_log_dir is not None else None,
        force_sync=bool(getattr(config, "force_sync", True)),
    )
