"""Run kazoo's own test harness (``KazooTestHarness``, ``KazooTestCase``) against trizab.

A project whose tests use ``kazoo.testing`` switches from Apache ZooKeeper (a JVM,
``ZOOKEEPER_PATH``/``ZOOKEEPER_CLASSPATH``) to trizab with one setting, read by trizab's
pytest plugin: ``trizab_kazoo_harness = true`` in the pytest configuration, or the
environment variable ``TRIZAB_KAZOO_HARNESS=1`` (which wins over the file, so CI can run
both).  ``-p trizab.testing.kazoo_harness`` on the command line does the same.

Theory of operation: kazoo's tests reach servers only through `kazoo.testing.harness`:
`get_global_cluster()` builds a `ZookeeperCluster` from environment variables (rebuilding it when
they change, which tests do on purpose: `ZOOKEEPER_JAAS_AUTH`, `ZOOKEEPER_LOCAL_SESSION_RO`), and
tests then index members (`cluster[0].stop()`, `.run()`, `.address`), start/stop/terminate the
whole cluster and read `get_logs()` on failure. `TrizabCluster` offers the same surface with
members that are `trizab serve` processes (`trizab.testing.process.TrizabProcess`), so the tests
run unmodified; :func:`install` swaps `kazoo.testing.harness.get_global_cluster` for the function
below (kazoo looks it up in the module at call time, so nothing else needs patching).
:func:`set_member_factory` lets a test runner build some members differently (the compat
runner's mixed ensembles run chosen server ids as Apache ZooKeeper); by default every member is
a :class:`TrizabMember`.

The environment it reads is kazoo's: `ZOOKEEPER_CLUSTER_SIZE` (default 3, as kazoo's),
`ZOOKEEPER_LOCAL_SESSION_RO`, `ZOOKEEPER_JAAS_AUTH`; and trizab's own: `TRIZAB_STORAGE` (default
txnlog: tests restart a member and expect its sessions and data back, as ZooKeeper keeps them on
disk) and `TRIZAB_SSL_QUORUM`. `ZOOKEEPER_PORT_OFFSET` is not needed: ports are picked free once
per cluster, so a member that is stopped and run again comes back on the same address with the
same dataDir, as the tests expect. The Java-only variables (`ZOOKEEPER_PATH`,
`ZOOKEEPER_CLASSPATH`, `ZOOKEEPER_VERSION`) are ignored.

Each member writes the zoo.cfg that kazoo's harness writes for Java (4lw whitelist `*`,
`reconfigEnabled`, the local-session flags, the super digest for the password "test",
read-only mode enabled, `server.N` lines when the size is above one) plus `storage=...`
(`TRIZAB_STORAGE`, default txnlog: tests restart a member and expect its sessions and data back,
as ZooKeeper keeps them on disk). Like kazoo's harness, the cluster makes a CA, a server and a
client certificate once (kazoo's own `perform_ssl_certs_generation`), and each member gets the
TLS lines the harness writes for Java: `secureClientPort` and `ssl.keyStore.*`/`ssl.trustStore.*`
naming the same JKS key and trust stores (so kazoo's TLS test connects with the client
certificate, and is authenticated as `x509:CN=client`). With `TRIZAB_SSL_QUORUM=true` the members
also speak TLS to each other (`sslQuorum=true`, the same stores). Like the harness, every member
gets `authProvider.1=...SASLAuthenticationProvider` and a JAAS file: empty, or with
`ZOOKEEPER_JAAS_AUTH=digest` the harness's `Server` section (DIGEST-MD5 users `super` and
`jaasuser`), named by `java.security.auth.login.config` (the harness passes it to Java as
`-Djava.security.auth.login.config`).  With `TRIZAB_QUORUM_SASL=true` the members also
authenticate each other with SASL (`quorum.auth.*`, `QuorumServer`/`QuorumLearner` sections).
With `TRIZAB_READ_REPLICAS=N` a standalone server (size 1) gets `readReplicas=N`: N read-replica
processes share its client port, and kazoo's clients land on any of them.
Keys trizab has no use for are accepted and logged by trizab's config loader, exactly as they
would be by ZooKeeper.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from trizab.testing.process import TrizabProcess, free_ports

if TYPE_CHECKING:
    import pytest

__all__ = [
    "TrizabCluster",
    "TrizabMember",
    "get_global_cluster",
    "install",
    "set_member_factory",
    "uninstall",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# kazoo's harness passes -Dzookeeper.DigestAuthenticationProvider.superDigest with this value
# (the digest of super:test).
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
# kazoo.testing.harness.get_global_cluster's JAAS file for ZOOKEEPER_JAAS_AUTH=digest.
DIGEST_JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};"""
# TRIZAB_QUORUM_SASL=true: the members' own sections (ZooKeeper's documented example).
QUORUM_JAAS = """
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_test="test";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="test"
    password="test";
};"""
QUORUM_SASL_LINES = [
    "quorum.auth.enableSasl=true",
    "quorum.auth.learnerRequireSasl=true",
    "quorum.auth.serverRequireSasl=true",
]
START_TIMEOUT = float(os.environ.get("TRIZAB_HARNESS_START_TIMEOUT", "30"))


def member_lines(
    keystore: str, truststore: str, quorum_lines: Sequence[str], *, ssl_quorum: bool, quorum_sasl: bool
) -> list[str]:
    """The zoo.cfg lines every member gets, whichever implementation runs it: kazoo's key and
    trust stores, and with ``quorum_lines`` the ensemble's (TLS and SASL between members when
    asked for, the harness's limits, the ``server.N`` lines)."""
    lines = [
        f"ssl.keyStore.location={keystore}",
        "ssl.keyStore.password=apassword",
        f"ssl.trustStore.location={truststore}",
        "ssl.trustStore.password=apassword",
    ]
    if not quorum_lines:
        return lines
    if ssl_quorum:
        # TLS between members too (TRIZAB_SSL_QUORUM=true), with the same stores; kazoo's server
        # certificate names localhost, not 127.0.0.1, so without host name verification.
        lines += [
            "sslQuorum=true",
            f"ssl.quorum.keyStore.location={keystore}",
            "ssl.quorum.keyStore.password=apassword",
            f"ssl.quorum.trustStore.location={truststore}",
            "ssl.quorum.trustStore.password=apassword",
            "ssl.quorum.hostnameVerification=false",
        ]
    if quorum_sasl:
        lines += QUORUM_SASL_LINES
    return [*lines, "initLimit=4", "syncLimit=2", *quorum_lines]


class TrizabMember:
    """One `trizab serve` process (a `TrizabProcess`) with the surface of kazoo's `ManagedZooKeeper`."""

    def __init__(
        self,
        server_id: int,
        client_port: int,
        secure_client_port: int,
        quorum_lines: Sequence[str],
        configuration_entries: Sequence[str],
        ssl_configuration: dict[str, Any],
        ssl_quorum: bool = False,
        jaas_config: str = "",
        quorum_sasl: bool = False,
    ) -> None:
        self.server_id = server_id
        self.host = HOST
        self.client_port = client_port
        self.secure_client_port = secure_client_port
        self.quorum_lines = list(quorum_lines)
        self.working_path = tempfile.mkdtemp(prefix=f"trizab-compat-{server_id}-")
        # The JKS stores (saved by run(), as kazoo's ManagedZooKeeper.run does) and the lines it
        # writes for Java.
        self.ssl_configuration = ssl_configuration
        keystore = os.path.join(self.working_path, "keystore.jks")
        truststore = os.path.join(self.working_path, "truststore.jks")
        self.jaas_path = os.path.join(self.working_path, "jaas.conf")
        self.jaas_config = jaas_config + (QUORUM_JAAS if quorum_sasl and quorum_lines else "")
        lines = [
            "maxClientCnxns=0",
            "readonlymode.enabled=true",
            f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
            f"secureClientPort={secure_client_port}",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
            "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            f"java.security.auth.login.config={self.jaas_path}",
            *configuration_entries,
            *member_lines(
                keystore, truststore, self.quorum_lines, ssl_quorum=ssl_quorum, quorum_sasl=quorum_sasl
            ),
        ]
        self.process = TrizabProcess(self.working_path, port=client_port, extra_config=lines)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def secure_address(self) -> str:
        return f"{self.host}:{self.secure_client_port}"

    @property
    def running(self) -> bool:
        # kazoo's notion: started and not stopped (a crashed process still counts until stop()).
        return self.process.proc is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def run(self) -> None:
        """Start the server (if not running) and wait until it answers ruok."""
        if self.running:
            return
        os.makedirs(self.working_path, exist_ok=True)
        with open(self.jaas_path, "w") as jaas_file:
            jaas_file.write(self.jaas_config)
        self.ssl_configuration["keystore"].save(os.path.join(self.working_path, "keystore.jks"), "apassword")
        self.ssl_configuration["truststore"].save(
            os.path.join(self.working_path, "truststore.jks"), "apassword"
        )
        if self.quorum_lines:
            self.process.data_dir.mkdir(parents=True, exist_ok=True)
            (self.process.data_dir / "myid").write_text(f"{self.server_id}\n")
        try:
            self.process.start(START_TIMEOUT)
        except BaseException:
            self.process.proc = None
            raise

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL), keeping its data."""
        self.process.stop()
        self.process.proc = None

    def reset(self) -> None:
        """Stop and wipe the data directory."""
        self.stop()
        shutil.rmtree(self.process.data_dir, ignore_errors=True)
        self.process.data_dir.mkdir(parents=True)

    def destroy(self) -> None:
        """Stop and remove the working directory (the next run() recreates it, empty)."""
        self.stop()
        shutil.rmtree(self.working_path, ignore_errors=True)

    def get_logs(self, num_lines: int = 100) -> list[str]:
        return [line + "\n" for line in self.process.log_tail(num_lines).splitlines()]


# Builds one member: called with TrizabMember's arguments, returns an object with its surface.
MemberFactory = Callable[..., Any]
# None: every member is a TrizabMember. A test runner may set another factory (set_member_factory)
# to run some members as other servers in the SAME ensemble: the compat runner's mixed ensembles
# start Apache ZooKeeper for chosen server ids, with the same ports and server.N lines.
MEMBER_FACTORY: MemberFactory | None = None


def set_member_factory(factory: MemberFactory | None) -> None:
    """Build later clusters' members with ``factory`` (None: trizab members only, the default)."""
    global MEMBER_FACTORY
    MEMBER_FACTORY = factory


class TrizabCluster:
    """Duck-types `kazoo.testing.common.ZookeeperCluster` with trizab members."""

    def __init__(
        self,
        size: int = 1,
        configuration_entries: Sequence[str] = (),
        ssl_configuration: dict[str, Any] | None = None,
        ssl_quorum: bool = False,
        jaas_config: str = "",
        quorum_sasl: bool = False,
    ) -> None:
        ports = free_ports(4 * size)
        quorum_lines = (
            [f"server.{i + 1}={HOST}:{ports[4 * i + 2]}:{ports[4 * i + 3]}:participant" for i in range(size)]
            if size > 1
            else []
        )
        self._ssl_configuration: dict[str, Any] = ssl_configuration or _generate_ssl_configuration()
        factory = MEMBER_FACTORY or TrizabMember
        self._servers = [
            factory(
                i + 1,
                ports[4 * i],
                ports[4 * i + 1],
                quorum_lines,
                configuration_entries,
                self._ssl_configuration,
                ssl_quorum,
                jaas_config,
                quorum_sasl,
            )
            for i in range(size)
        ]

    def __getitem__(self, k: int) -> Any:
        return self._servers[k]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def start(self) -> None:
        # Same order as kazoo's cluster; each run() waits for readiness instead of a fixed sleep.
        for server in reversed(self._servers):
            server.run()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []

    def terminate(self) -> None:
        for server in self._servers:
            server.destroy()

    def reset(self) -> None:
        for server in self._servers:
            server.reset()

    def get_logs(self) -> list[str]:
        return [line for server in self._servers for line in server.get_logs()]

    def get_ssl_client_configuration(self) -> dict[str, bytes]:
        return {
            "client_key": self._ssl_configuration["client_key_pem"],
            "client_cert": self._ssl_configuration["client_cert_pem"],
            "ca_cert": self._ssl_configuration["ca_cert_pem"],
        }


def _generate_ssl_configuration() -> dict[str, Any]:
    """kazoo's own certificates (CA, server in a JKS key store, CA in a JKS trust store, client)."""
    from kazoo.testing.common import ZookeeperCluster

    holder = ZookeeperCluster.__new__(ZookeeperCluster)
    holder._ssl_configuration = {}
    holder.perform_ssl_certs_generation()
    return dict(holder._ssl_configuration)


# --- the replacement for kazoo.testing.harness.get_global_cluster ------------------------------

CLUSTER: TrizabCluster | None = None
CLUSTER_CONF: dict[str, str | None] | None = None
CONF_KEYS = (
    "ZOOKEEPER_CLUSTER_SIZE",
    "ZOOKEEPER_JAAS_AUTH",
    "ZOOKEEPER_LOCAL_SESSION_RO",
    "TRIZAB_STORAGE",
    "TRIZAB_SSL_QUORUM",
    "TRIZAB_QUORUM_SASL",
    "TRIZAB_READ_REPLICAS",
)
DEFAULTS = {
    "ZOOKEEPER_CLUSTER_SIZE": "3",
    "ZOOKEEPER_LOCAL_SESSION_RO": "false",
    "TRIZAB_STORAGE": "txnlog",
    "TRIZAB_SSL_QUORUM": "false",
    "TRIZAB_QUORUM_SASL": "false",
    "TRIZAB_READ_REPLICAS": "0",
}


def cluster_configuration(conf: dict[str, str | None]) -> list[str]:
    """The zoo.cfg lines kazoo's harness adds for ZooKeeper >= 3.5, plus trizab's storage choice."""
    local_ro = conf["ZOOKEEPER_LOCAL_SESSION_RO"] or "false"
    return [
        "4lw.commands.whitelist=*",
        "reconfigEnabled=true",
        f"localSessionsEnabled={local_ro}",
        f"localSessionsUpgradingEnabled={local_ro}",
        f"storage={conf['TRIZAB_STORAGE']}",
    ]


def replica_configuration(conf: dict[str, str | None], size: int) -> list[str]:
    """``readReplicas=N`` for a standalone server (``TRIZAB_READ_REPLICAS=N``; not for members)."""
    replicas = int(conf["TRIZAB_READ_REPLICAS"] or "0")
    return [f"readReplicas={replicas}"] if replicas and size == 1 else []


def get_global_cluster() -> TrizabCluster:
    """Same contract as kazoo's: one cluster per configuration, rebuilt when the env changes."""
    global CLUSTER, CLUSTER_CONF
    conf = {k: os.environ.get(k, DEFAULTS.get(k)) for k in CONF_KEYS}
    if CLUSTER is not None:
        if conf == CLUSTER_CONF:
            return CLUSTER
        log.info("Config change detected. Reconfiguring cluster...")
        CLUSTER.terminate()
        CLUSTER = None
    size = int(conf["ZOOKEEPER_CLUSTER_SIZE"] or "3")
    cluster = TrizabCluster(
        size=size,
        configuration_entries=cluster_configuration(conf) + replica_configuration(conf, size),
        ssl_quorum=conf["TRIZAB_SSL_QUORUM"] == "true",
        # ZOOKEEPER_JAAS_AUTH=gssapi gets kazoo's Kerberos section, which trizab refuses at
        # start-up (DIGEST-MD5 only); kazoo skips those tests unless a test KDC is set up.
        jaas_config=DIGEST_JAAS if conf["ZOOKEEPER_JAAS_AUTH"] == "digest" else "",
        quorum_sasl=conf["TRIZAB_QUORUM_SASL"] == "true",
    )
    CLUSTER, CLUSTER_CONF = cluster, conf
    atexit.register(cluster.terminate)
    return cluster


# --- switching kazoo's harness over ---------------------------------------------------------------

_KAZOO_GET_GLOBAL_CLUSTER: Any = None


def install() -> None:
    """Make `kazoo.testing.harness` build trizab clusters (idempotent)."""
    global _KAZOO_GET_GLOBAL_CLUSTER
    import kazoo.testing.harness as harness

    if harness.get_global_cluster is not get_global_cluster:
        _KAZOO_GET_GLOBAL_CLUSTER = harness.get_global_cluster
        harness.get_global_cluster = get_global_cluster


def uninstall() -> None:
    """Give kazoo its own `get_global_cluster` back and stop the trizab cluster, if any."""
    global CLUSTER, CLUSTER_CONF, _KAZOO_GET_GLOBAL_CLUSTER
    import kazoo.testing.harness as harness

    if _KAZOO_GET_GLOBAL_CLUSTER is not None:
        harness.get_global_cluster = _KAZOO_GET_GLOBAL_CLUSTER
        _KAZOO_GET_GLOBAL_CLUSTER = None
    if CLUSTER is not None:
        CLUSTER.terminate()
        CLUSTER, CLUSTER_CONF = None, None


def pytest_configure(config: pytest.Config) -> None:
    """Loaded with ``-p trizab.testing.kazoo_harness``: switch at once, undo when the run ends."""
    install()
    config.add_cleanup(uninstall)
