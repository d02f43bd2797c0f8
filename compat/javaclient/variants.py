"""The Java-client transcript under other client configurations: TLS, SASL DIGEST-MD5.

Theory of operation
-------------------
The script (:data:`~compat.javaclient.transcript.SCRIPT`) does not change; what changes is how
both servers are configured and how ZooKeeperMain's JVM is started.  A :class:`Variant` holds
exactly that:

* ``server_lines``: zoo.cfg lines both servers get (the ``ssl.*`` keys, an ``authProvider``);
* ``apache_java_properties``: ``-D`` options of Apache ZooKeeper's JVM, for what Java reads
  from system properties only (``java.security.auth.login.config``);
* ``trizab_lines``: the same for trizab, which reads everything from zoo.cfg;
* ``client_properties``: ``-D`` options of the client's JVM;
* ``secure``: the client connects to a ``secureClientPort`` (picked free for each server).

Each variant's material (certificates made by trustme, JAAS files) is written into a temporary
directory by its factory and removed after the run; none is committed.  A new variant (Kerberos,
a PEM key store, ...) is one more factory.  :func:`compare` runs the script against Apache
ZooKeeper 3.8 and against trizab (or a second ZooKeeper, to check the variant itself is
deterministic) and compares the normalized transcripts.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from compat.differential.result import SuiteResult
from compat.javaclient.transcript import compare as compare_transcripts
from compat.javaclient.transcript import normalize, run_script

__all__ = ["Variant", "compare", "kerberos", "plain", "sasl_digest", "tls"]

SASL_USER = "bob"
SASL_PASSWORD = "bobsecret"
SASL_AUTH_PROVIDER = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
# How trizab is told where its JAAS file is.  ZooKeeper reads it from the JVM's system property
# java.security.auth.login.config; trizab reads its configuration from zoo.cfg only, so the
# transcript passes the same name as a zoo.cfg key.
TRIZAB_JAAS_KEY = "java.security.auth.login.config"


@attrs.frozen
class Variant:
    """How both servers and the client are configured for one transcript (module docstring)."""

    name: str
    server_lines: tuple[str, ...] = ()
    apache_java_properties: tuple[str, ...] = ()
    trizab_lines: tuple[str, ...] = ()
    client_properties: tuple[str, ...] = ()
    secure: bool = False


def plain(directory: Path) -> Variant:
    return Variant("plain")


def tls(directory: Path) -> Variant:
    """The stock client over TLS: ``zookeeper.client.secure`` with the Netty socket, presenting a
    client certificate (both servers need one: ``ssl.clientAuth`` defaults to ``need``)."""
    from testkit.tls import make_tls_files

    files = make_tls_files(directory / "tls")
    client = (
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.keyStore.location={files.client_keystore}",
        f"-Dzookeeper.ssl.keyStore.password={files.password}",
        f"-Dzookeeper.ssl.trustStore.location={files.truststore}",
        f"-Dzookeeper.ssl.trustStore.password={files.password}",
    )
    # server_lines(port) minus the port line, which compare() adds per server.
    lines = tuple(line for line in files.server_lines(0) if not line.startswith("secureClientPort="))
    return Variant("tls", server_lines=lines, client_properties=client, secure=True)


def sasl_digest(directory: Path) -> Variant:
    """The stock client authenticating with SASL DIGEST-MD5 (a JAAS ``Client`` section) to a server
    whose JAAS ``Server`` section holds the user, as ZooKeeper's SASL guide sets it up."""
    directory.mkdir(parents=True, exist_ok=True)
    server_jaas = directory / "server-jaas.conf"
    server_jaas.write_text(
        "Server {\n"
        "  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        f'  user_{SASL_USER}="{SASL_PASSWORD}";\n'
        "};\n"
    )
    client_jaas = directory / "client-jaas.conf"
    client_jaas.write_text(
        "Client {\n"
        "  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        f'  username="{SASL_USER}"\n'
        f'  password="{SASL_PASSWORD}";\n'
        "};\n"
    )
    for path in (server_jaas, client_jaas):
        path.chmod(0o600)
    return Variant(
        "sasl-digest",
        server_lines=(SASL_AUTH_PROVIDER,),
        apache_java_properties=(f"-Djava.security.auth.login.config={server_jaas}",),
        trizab_lines=(f"{TRIZAB_JAAS_KEY}={server_jaas}",),
        client_properties=(f"-Djava.security.auth.login.config={client_jaas}",),
    )


def kerberos(
    directory: Path, *, krb5_conf: Path, service_keytab: Path, client_keytab: Path, realm: str
) -> Variant:
    """The stock client authenticating with SASL GSSAPI (a JAAS ``Client`` section with
    ``Krb5LoginModule``) as ``client@realm`` to a server whose ``Server`` section is
    ``zookeeper/localhost@realm``.  The realm's KDC must run while the transcripts are taken
    (testkit/kdc.py), and trizab's process must find ``krb5_conf`` (``KRB5_CONFIG``)."""
    directory.mkdir(parents=True, exist_ok=True)
    server_jaas = directory / "server-jaas.conf"
    server_jaas.write_text(
        "Server {\n"
        "  com.sun.security.auth.module.Krb5LoginModule required\n"
        f'  useKeyTab=true keyTab="{service_keytab}" storeKey=true useTicketCache=false\n'
        f'  principal="zookeeper/localhost@{realm}";\n'
        "};\n"
    )
    client_jaas = directory / "client-jaas.conf"
    client_jaas.write_text(
        "Client {\n"
        "  com.sun.security.auth.module.Krb5LoginModule required\n"
        f'  useKeyTab=true keyTab="{client_keytab}" storeKey=false useTicketCache=false\n'
        f'  principal="client@{realm}";\n'
        "};\n"
    )
    for path in (server_jaas, client_jaas):
        path.chmod(0o600)
    krb5 = f"-Djava.security.krb5.conf={krb5_conf}"
    return Variant(
        "kerberos",
        server_lines=(SASL_AUTH_PROVIDER,),
        apache_java_properties=(f"-Djava.security.auth.login.config={server_jaas}", krb5),
        trizab_lines=(f"{TRIZAB_JAAS_KEY}={server_jaas}",),
        # The client dials 127.0.0.1; the service principal is named rather than derived from it.
        client_properties=(
            f"-Djava.security.auth.login.config={client_jaas}",
            krb5,
            f"-Dzookeeper.server.principal=zookeeper/localhost@{realm}",
        ),
    )


@contextlib.contextmanager
def _server(variant: Variant, *, apache: bool) -> Iterator[tuple[str, int]]:
    """One server configured for ``variant``; yields the address the client connects to."""
    from compat.differential.servers import apache_server, trizab_server
    from testkit.apache_zk import free_ports

    lines = variant.server_lines
    secure_port = free_ports(1)[0] if variant.secure else None
    if secure_port is not None:
        lines = (f"secureClientPort={secure_port}", *lines)
    if apache:
        server = apache_server(lines, variant.apache_java_properties)
    else:
        server = trizab_server((*lines, *variant.trizab_lines))
    with server as (host, port):
        yield (host, secure_port if secure_port is not None else port)


def transcript(variant: Variant, *, apache: bool) -> list[str]:
    """The normalized transcript of the script against one server configured for ``variant``."""
    with _server(variant, apache=apache) as address:
        return normalize(run_script(address, java_properties=variant.client_properties))


def compare(factory: Callable[[Path], Variant], *, target_trizab: bool = True) -> SuiteResult:
    """Run the script with the variant ``factory`` makes, against ZooKeeper and then trizab (or a
    second ZooKeeper); one comparison, its diff in ``details`` when the transcripts differ."""
    with tempfile.TemporaryDirectory(prefix="trizab-javaclient-") as workdir:
        variant = factory(Path(workdir))
        expected = transcript(variant, apache=True)
        actual = transcript(variant, apache=not target_trizab)
    diff = compare_transcripts(expected, actual)
    if diff is None:
        return SuiteResult(
            passed=1, failed=0, details=f"{variant.name}: {len(expected)} transcript lines equal"
        )
    return SuiteResult(passed=0, failed=1, details=diff)
