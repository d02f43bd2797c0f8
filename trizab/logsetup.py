"""How ``trizab serve`` sets up Python logging: a dictConfig file, or a few flags.

``--log-config FILE`` takes a :func:`logging.config.dictConfig` dictionary written as
JSON (``.json``) or TOML (anything else, read with :mod:`tomllib`), and replaces
everything the other flags would do.  Without it: ``--log-level`` (default INFO),
``--log-format text|json`` and ``--log-file PATH`` (rotated at ``--log-max-bytes``,
default 10 MiB, keeping ``--log-backups`` old files, default 10: ZooKeeper's log4j
``RollingFile`` defaults); without ``--log-file`` the lines go to stderr.

The JSON format writes one object per line: ``time`` (UTC, ISO 8601 with
milliseconds), ``level``, ``logger``, ``message``, and every field the call passed
with ``extra=`` (the session logs give ``session_id`` and ``client``, the refusals
of hostile peers give ``peer``; a flood summary gives ``suppressed``), plus
``exception`` with the traceback when there is one.

Every mistake (a missing file, bad JSON or TOML, a dictionary ``dictConfig``
refuses) is a :class:`LogSetupError` whose ``str()`` is one line.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.config
import logging.handlers
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_LOG_BACKUPS",
    "DEFAULT_LOG_MAX_BYTES",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogSetupError",
    "configure_logging",
    "load_log_config",
]

DEFAULT_LOG_MAX_BYTES = 10 << 20  # log4j RollingFile's MaxFileSize=10MB in ZooKeeper's log4j.properties
DEFAULT_LOG_BACKUPS = 10  # ... and its MaxBackupIndex=10
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has; anything else on a record came with ``extra=``.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class LogSetupError(Exception):
    """The logging configuration cannot be used; ``str()`` is one line."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in out:
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def load_log_config(path: Path) -> dict[str, Any]:
    """The dictConfig dictionary in ``path``: JSON for ``*.json``, TOML otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LogSetupError(f"--log-config {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            loaded = json.loads(raw)
        else:
            loaded = tomllib.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise LogSetupError(f"--log-config {path}: bad JSON: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LogSetupError(f"--log-config {path}: bad TOML: {exc}") from None
    if not isinstance(loaded, dict):
        raise LogSetupError(f"--log-config {path}: expected a dictConfig object, not {type(loaded).__name__}")
    loaded.setdefault("version", 1)
    return loaded


def configure_logging(
    *,
    level: str = "INFO",
    log_format: str = "text",
    log_file: Path | None = None,
    max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    backups: int = DEFAULT_LOG_BACKUPS,
    config_file: Path | None = None,
) -> None:
    """Set up the root logger from ``config_file`` or from the other arguments."""
    if config_file is not None:
        config = load_log_config(config_file)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            # dictConfig's messages nest the cause ("Unable to configure handler 'x'"): keep both.
            cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
            raise LogSetupError(f"--log-config {config_file}: {exc}{cause}".replace("\n", " ")) from None
        return
    if max_bytes < 0 or backups < 0:
        raise LogSetupError("--log-max-bytes and --log-backups must not be negative")
    handler: logging.Handler
    if log_file is not None:
        try:
            handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        except OSError as exc:
            raise LogSetupError(f"--log-file {log_file}: {exc.strerror or exc}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
