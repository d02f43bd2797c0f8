"""Files that hold secrets, and a warning at start-up when others than their owner may read them.

A key store holds the server's private key; a ``.passwordPath`` file holds a store's password in
the clear.  Anyone who can read either can pose as the server (or as a member of the ensemble).
ZooKeeper says nothing about their permissions; trizab logs one warning line per such file whose
mode lets its group or others in (any of ``0o077``), naming the key, the file and its mode, never
what it holds, and then starts as configured: refusing would break a setup that works today, and
the operator may have reasons (a group-shared secret directory).

Only the files the configuration uses are checked: the client port's stores when a listener
speaks TLS, the quorum's when ``sslQuorum`` or ``portUnification`` is on.  Trust stores hold
certificates only, which are public.  A SASL JAAS file, once the server reads one, belongs in
:func:`secret_files` too (it holds the users' passwords), and so does each Kerberos keytab it
names (``keyTab=`` of a ``Krb5LoginModule`` entry: whoever reads it can pose as that principal).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from trizab import config as cfg
from trizab.server.jaas import JaasError, parse_jaas

__all__ = ["loose_key_files", "secret_files", "warn_loose_key_files"]

log = logging.getLogger("trizab.server")

OTHERS_THAN_OWNER = 0o077


def secret_files(config: cfg.ServerConfig) -> list[tuple[str, Path]]:
    """(zoo.cfg key, path) of every file holding a secret that ``config`` uses, each path once."""
    found: list[tuple[str, Path]] = []
    kinds = []
    if config.client_tls_enabled:
        kinds.append(("ssl.", config.client_tls))
    if config.ssl_quorum or config.quorum_port_unification:
        kinds.append(("ssl.quorum.", config.quorum_tls))
    for prefix, tls in kinds:
        for key, path in (
            ("keyStore.location", tls.key_store_location),
            ("keyStore.passwordPath", tls.key_store_password_path),
            ("trustStore.passwordPath", tls.trust_store_password_path),
        ):
            if path is not None and all(path != seen for _key, seen in found):
                found.append((prefix + key, path))
    # The JAAS file holds the SASL users' passwords in clear, as ZooKeeper's does.
    jaas = config.sasl.jaas_login_config
    if jaas is not None and all(jaas != seen for _key, seen in found):
        found.append(("java.security.auth.login.config", jaas))
    for keytab in _keytabs(jaas):
        if all(keytab != seen for _key, seen in found):
            found.append(("keyTab", keytab))
    return found


def _keytabs(jaas: Path | None) -> list[Path]:
    """The keytabs the JAAS file names; none if it cannot be read (load_sasl then says why)."""
    if jaas is None:
        return []
    try:
        sections = parse_jaas(jaas.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, JaasError):
        return []
    return [
        Path(entry.options["keyTab"])
        for section in sections.values()
        for entry in section.entries
        if entry.options.get("keyTab")
    ]


def loose_key_files(config: cfg.ServerConfig) -> list[tuple[str, Path, int]]:
    """(key, path, permission bits) of the secret files open to others than their owner; a file
    that cannot be looked at is left to the code that loads it (and fails there)."""
    loose = []
    for key, path in secret_files(config):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & OTHERS_THAN_OWNER:
            loose.append((key, path, mode))
    return loose


def warn_loose_key_files(config: cfg.ServerConfig) -> None:
    """One warning line for each of :func:`loose_key_files`."""
    for key, path, mode in loose_key_files(config):
        log.warning(
            "%s %s is open to others than its owner (mode %04o) and holds a secret; chmod 600 it",
            key,
            path,
            mode,
        )
