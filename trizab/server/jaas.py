"""JAAS login configuration files, as ZooKeeper users already write them, and the SASL users in them.

Theory of operation
-------------------
Apache ZooKeeper takes its SASL users from a JAAS file (the JVM property
``java.security.auth.login.config``)::

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };
    QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_test="test"; };
    QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required
                    username="test" password="test"; };

:func:`parse_jaas` reads that syntax (the JDK's ``ConfigFile``: sections of
``module flag key=value ... ;`` entries, ``//`` and ``/* */`` comments, quoted or bare
values) into :class:`JaasSection` s; :func:`digest_users` and :func:`digest_login`
take what ZooKeeper's callback handlers take from a section: the ``user_<name>``
options (``SaslServerCallbackHandler``, ``SaslQuorumServerCallbackHandler``) and the
``username``/``password`` options (``SaslQuorumAuthLearner``).  A section with Kerberos'
``Krb5LoginModule`` is read by :func:`kerberos_login` instead (the service principal
and its keytab: ZooKeeper then speaks GSSAPI, ``SecurityUtils.createSaslServer``).  Any
other login module, or a section mixing modules, is a :class:`JaasError`, so a server
never runs with less authentication than the file asks for.  Messages never contain a
password.
"""

from __future__ import annotations

import re

import attrs

__all__ = [
    "DIGEST_LOGIN_MODULE",
    "KRB5_LOGIN_MODULE",
    "JaasEntry",
    "JaasError",
    "JaasSection",
    "KerberosLogin",
    "digest_login",
    "digest_users",
    "is_kerberos",
    "kerberos_login",
]

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
KRB5_LOGIN_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
_FLAGS = ("required", "requisite", "sufficient", "optional")
_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/|(?P<q>"(?:[^"\\]|\\.)*")|(?P<p>[{};=])|(?P<w>[^\s{};="]+)""", re.S
)


class JaasError(Exception):
    """The JAAS file cannot be used; ``str()`` is one line (no secrets)."""


@attrs.frozen
class JaasEntry:
    module: str
    flag: str
    options: dict[str, str] = attrs.field(repr=False)  # passwords: never in a repr


@attrs.frozen
class JaasSection:
    name: str
    entries: tuple[JaasEntry, ...]


@attrs.frozen
class KerberosLogin:
    """A ``Krb5LoginModule`` entry's service principal and keytab (``principal``, ``keyTab``)."""

    principal: str
    keytab: str


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, line) for each token: 'q' quoted string, 'p' punctuation, 'w' word."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        line = text.count("\n", 0, pos) + 1
        if m is None:
            if text.startswith("/*", pos):
                raise JaasError(f"line {line}: unterminated comment")
            raise JaasError(f"line {line}: unterminated quoted string")
        pos = m.end()
        kind = m.lastgroup
        if kind == "q":
            out.append(("q", re.sub(r"\\(.)", r"\1", m["q"][1:-1]), line))
        elif kind is not None:
            out.append((kind, m[kind], line))
    return out


def parse_jaas(text: str) -> dict[str, JaasSection]:
    """Every section of a JAAS file by name; JaasError (with the line) if it does not parse."""
    toks = _tokens(text)
    sections: dict[str, JaasSection] = {}
    i = 0

    def expect(kind: str, value: str | None = None) -> tuple[str, int]:
        nonlocal i
        if i >= len(toks):
            raise JaasError(f"unexpected end of file, expected {value or 'a name'}")
        k, v, line = toks[i]
        if k != kind or (value is not None and v != value):
            # Only punctuation is echoed: a misplaced word or string may be (part of) a password.
            found = repr(v) if k == "p" else ("a quoted string" if k == "q" else "a word")
            raise JaasError(f"line {line}: expected {value or 'a name'}, found {found}")
        i += 1
        return v, line

    while i < len(toks):
        name, line = expect("w")
        expect("p", "{")
        entries: list[JaasEntry] = []
        while i < len(toks) and toks[i][1] != "}":
            module, mline = expect("w")
            flag, fline = expect("w")
            if flag.lower() not in _FLAGS:
                raise JaasError(f"line {fline}: {module}: control flag must be one of {', '.join(_FLAGS)}")
            options: dict[str, str] = {}
            while i < len(toks) and toks[i][1] != ";":
                key, _ = expect("w")
                expect("p", "=")
                if i >= len(toks) or toks[i][0] == "p":
                    raise JaasError(f"line {mline}: {module}: option {key} has no value")
                options[key] = toks[i][1]
                i += 1
            expect("p", ";")
            entries.append(JaasEntry(module, flag.lower(), options))
        expect("p", "}")
        expect("p", ";")
        if name in sections:
            raise JaasError(f"line {line}: section {name} appears twice")
        sections[name] = JaasSection(name, tuple(entries))
    return sections


def _digest_entries(section: JaasSection) -> list[JaasEntry]:
    for entry in section.entries:
        if entry.module != DIGEST_LOGIN_MODULE:
            raise JaasError(
                f"section {section.name}: login module {entry.module} is not supported here "
                f"(trizab implements SASL DIGEST-MD5 with {DIGEST_LOGIN_MODULE}, "
                f"and GSSAPI with {KRB5_LOGIN_MODULE})"
            )
    return list(section.entries)


def is_kerberos(section: JaasSection) -> bool:
    """Whether the section logs in with ``Krb5LoginModule`` (ZooKeeper then uses GSSAPI)."""
    return any(entry.module == KRB5_LOGIN_MODULE for entry in section.entries)


def kerberos_login(section: JaasSection) -> KerberosLogin:
    """The service principal and keytab of a ``Krb5LoginModule`` section (the server side).

    A server logs in from its keytab (``useKeyTab=true keyTab=... principal=...``); a
    ticket cache, a password prompt or a section mixing login modules is refused.
    """
    if len(section.entries) != 1 or section.entries[0].module != KRB5_LOGIN_MODULE:
        raise JaasError(f"section {section.name}: a Kerberos section must have {KRB5_LOGIN_MODULE} only")
    options = section.entries[0].options
    if options.get("useKeyTab", "false").lower() != "true":
        raise JaasError(
            f"section {section.name}: {KRB5_LOGIN_MODULE} needs useKeyTab=true (a server logs in "
            "from its keytab)"
        )
    for key in ("keyTab", "principal"):
        if not options.get(key):
            raise JaasError(f"section {section.name}: {KRB5_LOGIN_MODULE} needs {key}=...")
    if options.get("useTicketCache", "false").lower() == "true":
        raise JaasError(f"section {section.name}: useTicketCache=true is not supported (use the keytab)")
    principal = options["principal"]
    if "/" not in principal.partition("@")[0]:
        # SecurityUtils.createSaslServer splits service/host@REALM; without a "/" ZooKeeper fails too.
        raise JaasError(
            f"section {section.name}: principal {principal} is not of the form service/host@REALM"
        )
    return KerberosLogin(principal, options["keyTab"])


def digest_users(section: JaasSection) -> dict[str, str]:
    """The ``user_<name>="<password>"`` options: who may log in (the server side)."""
    users: dict[str, str] = {}
    for entry in _digest_entries(section):
        for key, value in entry.options.items():
            if key.startswith("user_"):
                users[key[5:]] = value
    return users


def digest_login(section: JaasSection) -> tuple[str, str]:
    """The ``username`` and ``password`` options: who this process logs in as (the client side)."""
    for entry in _digest_entries(section):
        if "username" in entry.options and "password" in entry.options:
            return entry.options["username"], entry.options["password"]
    raise JaasError(f"section {section.name}: no username and password options")
