"""An MIT Kerberos KDC for a throw-away realm, as a child process (Debian's krb5-kdc).

``MitKdc(base).start()`` writes a ``krb5.conf`` and a ``kdc.conf`` under ``base``,
creates the realm's database there (``kdb5_util create -s``), and starts ``krb5kdc -n``
on a free 127.0.0.1 port; :meth:`MitKdc.add_principal` creates a principal with a
random key and writes it to a keytab (``kadmin.local``); :meth:`MitKdc.kinit` puts a
principal's ticket-granting ticket in a credential cache.  Nothing outside ``base`` is
read or written; the environment a Kerberos library needs to use the realm is
:attr:`MitKdc.env` (``KRB5_CONFIG``).  :meth:`MitKdc.stop` ends the KDC by its pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from trizab.runtime.free_ports import free_port

__all__ = ["KdcError", "MitKdc", "kerberos_missing", "require_kerberos"]

REALM = "TRIZAB.TEST"
_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class KdcError(Exception):
    """The KDC could not be set up; ``str()`` says why."""


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
    )


def kerberos_missing() -> str | None:
    """What is missing to run the Kerberos tests here (None: nothing)."""
    missing = [t for t in _TOOLS if _tool(t) is None]
    problems = []
    if missing:
        problems.append(
            f"the MIT Kerberos tools {', '.join(missing)} "
            "(Debian packages krb5-kdc krb5-admin-server krb5-user)"
        )
    for module, package in (("gssapi", "gssapi"), ("kerberos", "kerberos")):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"the Python package {package} (pip install {package}; needs libkrb5-dev)")
    return "; ".join(problems) or None


def require_kerberos() -> None:
    """Raise KdcError naming what to install when the Kerberos tests cannot run here."""
    missing = kerberos_missing()
    if missing:
        raise KdcError(f"the Kerberos tests need {missing}")


class MitKdc:
    def __init__(self, base: Path, realm: str = REALM) -> None:
        self.base = base
        self.realm = realm
        self.port = 0
        self.krb5_conf = base / "krb5.conf"
        self.kdc_conf = base / "kdc.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a process using the realm needs in its environment."""
        # KRB5RCACHEDIR: an acceptor's replay cache, which would otherwise be in /var/tmp.
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
            "KRB5RCACHEDIR": str(self.base / "rcache"),
        }

    def _run(self, *argv: str) -> str:
        tool = _tool(argv[0])
        if tool is None:
            raise KdcError(
                f"{argv[0]} is not installed (Debian packages krb5-kdc krb5-admin-server krb5-user)"
            )
        done = subprocess.run(
            [tool, *argv[1:]], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise KdcError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def start(self) -> MitKdc:
        require_kerberos()
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rcache").mkdir(exist_ok=True)
        self.port = free_port()
        b = self.base
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"  default_realm = {self.realm}\n"
            "  dns_lookup_kdc = false\n  dns_lookup_realm = false\n"
            "  dns_canonicalize_hostname = false\n  rdns = false\n"
            "  udp_preference_limit = 1\n"  # TCP only: the free port was checked for TCP
            "[realms]\n"
            f"  {self.realm} = {{\n    kdc = 127.0.0.1:{self.port}\n  }}\n"
            "[domain_realm]\n"
            f"  localhost = {self.realm}\n"
        )
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f"  kdc_listen = 127.0.0.1:{self.port}\n  kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f"  {self.realm} = {{\n"
            f"    database_name = {b}/principal\n"
            f"    key_stash_file = {b}/stash\n"
            f"    acl_file = {b}/kadm5.acl\n"
            f"    kdc_listen = 127.0.0.1:{self.port}\n    kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "  }\n"
            "[logging]\n"
            f"  kdc = FILE:{b}/kdc.log\n  admin_server = FILE:{b}/kadmin.log\n"
            f"  default = FILE:{b}/krb5lib.log\n"
        )
        (b / "kadm5.acl").write_text("")
        self._run("kdb5_util", "-r", self.realm, "-P", "trizab-test-master", "create", "-s")
        krb5kdc = _tool("krb5kdc")
        assert krb5kdc is not None  # require_kerberos
        with open(b / "krb5kdc.stderr", "wb") as stderr:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [krb5kdc, "-n", "-r", self.realm],
                env={**os.environ, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 20
        while True:
            if self._proc.poll() is not None:
                raise KdcError(f"krb5kdc exited with {self._proc.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise KdcError(f"krb5kdc did not listen on 127.0.0.1:{self.port} within 20 s") from None
                time.sleep(0.05)

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")
            for p in (self.base / "krb5kdc.stderr", self.base / "kdc.log")
            if p.exists()
        )

    def principal(self, name: str) -> str:
        return f"{name}@{self.realm}"

    def add_principal(self, name: str, keytab: Path | None = None) -> str:
        """Create ``name`` (random key) and, with ``keytab``, write its key there; its full name."""
        self._run("kadmin.local", "-r", self.realm, "-q", f"addprinc -randkey {name}")
        if keytab is not None:
            self.export_key(name, keytab)
        return self.principal(name)

    def export_key(self, name: str, keytab: Path) -> None:
        """Give ``name`` a new random key (kvno + 1) and add it to ``keytab``: older keytabs go stale."""
        self._run("kadmin.local", "-r", self.realm, "-q", f"ktadd -k {keytab} {name}")

    @property
    def ccache(self) -> str:
        """The credential cache collection :meth:`kinit` fills: the value for KRB5CCNAME.

        A ``DIR:`` collection holds one cache per principal, so clients of several
        principals (python-gssapi and pykerberos pick the cache by principal) share it.
        """
        return f"DIR:{self.base / 'ccaches'}"

    def kinit(self, name: str, keytab: Path) -> None:
        """Put a TGT for ``name`` (from its ``keytab``) in :attr:`ccache`."""
        folder = self.base / "ccaches"
        folder.mkdir(mode=0o700, exist_ok=True)
        cache = "tkt" + "".join(c if c.isalnum() else "_" for c in name)
        self._run("kinit", "-k", "-t", str(keytab), "-c", f"DIR::{folder / cache}", self.principal(name))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> MitKdc:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
