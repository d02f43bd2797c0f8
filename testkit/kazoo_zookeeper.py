"""Apache ZooKeeper 3.8 members inside kazoo-harness clusters: mixed ensembles for kazoo's own suite.

Theory of operation
-------------------
``trizab.testing.kazoo_harness.TrizabCluster`` picks four free ports per member (client, secure
client, quorum, election) and gives every member the same ``server.N`` lines.  With
:func:`install` (the compat runner calls it for ``python -m compat --zookeeper-members 1,2``)
the members with the chosen server ids are :class:`ZooKeeperMember` s instead of trizab
processes: Apache ZooKeeper's ``QuorumPeerMain`` on exactly those ports and ``server.N`` lines,
so trizab and ZooKeeper members form ONE ensemble, and kazoo's tests, which index members
(``cluster[0].stop()``), reach whichever implementation holds that id.

A ZooKeeper member gets what kazoo's own harness (``kazoo.testing.common.ManagedZooKeeper``)
gives Java, with the trizab members' settings: ``secureClientPort`` with the cluster's JKS key
and trust stores, the Netty connection factory, the SASL authentication provider and a JAAS file
named by ``-Djava.security.auth.login.config``, the super digest of ``super:test`` and
``-Dreadonlymode.enabled=true`` as JVM properties, ``initLimit=4``/``syncLimit=2``, the 4lw
whitelist, ``reconfigEnabled`` and the local-session flags.  It leaves out trizab's own
``storage=`` line, and turns the AdminServer off (``admin.enableServer=false``) so that no member
takes port 8080.  Client ports listen on 127.0.0.1 only.  The JVM is started and logged as
:mod:`testkit.apache_zk` does it (the Debian jars' classpath, a log4j file per member).

``run()`` returns once the member answers ``ruok``, as a trizab member's does: a member started
alone cannot serve before a quorum is up, and kazoo's harness starts the members one by one and
then checks the cluster with a client.  ``running`` is kazoo's notion (started and not stopped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from testkit.apache_zk import (
    QUORUM_MAIN,
    ApacheZooKeeperError,
    _Member,
    four_letter_word,
    require_available,
)
from trizab.testing import kazoo_harness

__all__ = ["ZooKeeperMember", "install", "member_factory", "parse_server_ids", "uninstall"]

HOST = "127.0.0.1"
START_TIMEOUT = float(os.environ.get("TRIZAB_HARNESS_ZOOKEEPER_START_TIMEOUT", "60"))
# Lines of the trizab members' configuration that mean nothing to ZooKeeper, or that ZooKeeper
# reads from JVM properties instead (zoo.cfg keys it does not know become `zookeeper.<key>`
# properties, which is not the name these are read by).
TRIZAB_ONLY_KEYS = ("storage",)


def parse_server_ids(text: str, size: int) -> frozenset[int]:
    """``"1,2"`` -> {1, 2}; each id within 1..size, at least one, and at least one left for trizab."""
    try:
        ids = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"ZooKeeper members must be server ids like 1,2, not {text!r}") from None
    if not ids:
        raise ValueError("name at least one server id to run as ZooKeeper")
    outside = sorted(i for i in ids if not 1 <= i <= size)
    if outside:
        raise ValueError(f"server ids {outside} are outside 1..{size} (the cluster size)")
    if len(ids) == size:
        raise ValueError(f"every one of the {size} members would be ZooKeeper: leave at least one to trizab")
    return ids


class ZooKeeperMember:
    """Apache ZooKeeper's ``QuorumPeerMain`` with the surface of ``kazoo_harness.TrizabMember``."""

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
        self.ssl_configuration = ssl_configuration
        self.working_path = tempfile.mkdtemp(prefix=f"zookeeper-compat-{server_id}-")
        workdir = Path(self.working_path)
        keystore = workdir / "keystore.jks"
        truststore = workdir / "truststore.jks"
        self.jaas_path = workdir / "jaas.conf"
        with_quorum = bool(self.quorum_lines)
        self.jaas_config = jaas_config + (kazoo_harness.QUORUM_JAAS if quorum_sasl and with_quorum else "")
        lines = [
            "tickTime=2000",
            f"clientPort={client_port}",
            f"clientPortAddress={HOST}",
            f"secureClientPort={secure_client_port}",
            f"secureClientPortAddress={HOST}",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
            "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            *(
                line
                for line in configuration_entries
                if line.partition("=")[0].strip() not in TRIZAB_ONLY_KEYS
            ),
            *kazoo_harness.member_lines(
                str(keystore),
                str(truststore),
                self.quorum_lines,
                ssl_quorum=ssl_quorum,
                quorum_sasl=quorum_sasl,
            ),
        ]
        self.process = _Member(
            workdir,
            main_class=QUORUM_MAIN,
            config_lines=lines,
            myid=server_id if with_quorum else None,
            client_port=client_port,
            java_properties=[
                "-Dreadonlymode.enabled=true",
                f"-Dzookeeper.DigestAuthenticationProvider.superDigest={kazoo_harness.SUPER_DIGEST}",
                f"-Djava.security.auth.login.config={self.jaas_path}",
            ],
            jvm_args=["-Xmx256m"],
        )
        self._started = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def secure_address(self) -> str:
        return f"{self.host}:{self.secure_client_port}"

    @property
    def running(self) -> bool:
        # kazoo's notion: started and not stopped (a JVM that died still counts until stop()).
        return self._started

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def run(self) -> None:
        """Start the JVM (if not running) and wait until it answers ruok (see the module docstring)."""
        if self.running:
            return
        require_available()
        Path(self.working_path).mkdir(parents=True, exist_ok=True)
        self.jaas_path.write_text(self.jaas_config)
        for name in ("keystore", "truststore"):
            self.ssl_configuration[name].save(os.path.join(self.working_path, f"{name}.jks"), "apassword")
        self.process.start()
        self._started = True
        try:
            self._wait_for_ruok(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _wait_for_ruok(self, timeout: float) -> None:
        # Not `_Member.wait_ready`: that also waits for a Mode in srvr, which a member started
        # before a quorum of the others never shows.
        deadline = time.monotonic() + timeout
        while True:
            proc = self.process.process
            if proc is not None and proc.poll() is not None:
                raise ApacheZooKeeperError(
                    f"ZooKeeper member {self.server_id} exited with {proc.returncode}; last log lines:\n"
                    + self.process.tail()
                )
            with contextlib.suppress(OSError):
                if four_letter_word(self.client_port, "ruok", timeout=1.0) == "imok":
                    return
            if time.monotonic() > deadline:
                raise ApacheZooKeeperError(
                    f"ZooKeeper member {self.server_id} on {self.address} did not answer ruok within "
                    f"{timeout} s; last log lines:\n" + self.process.tail()
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL), keeping its data."""
        self.process.stop()
        self._started = False

    def reset(self) -> None:
        """Stop and wipe the data directory (``myid`` is written again at the next run())."""
        self.stop()
        shutil.rmtree(self.process.data_dir, ignore_errors=True)
        self.process.data_dir.mkdir(parents=True)

    def destroy(self) -> None:
        """Stop and remove the working directory (the next run() recreates it, empty)."""
        self.stop()
        shutil.rmtree(self.working_path, ignore_errors=True)

    def get_logs(self, num_lines: int = 100) -> list[str]:
        return self.process.get_logs(num_lines)


def member_factory(zookeeper_ids: Collection[int]) -> Callable[..., Any]:
    """A `kazoo_harness` member factory: ZooKeeper for ``zookeeper_ids``, trizab for the others."""
    chosen = frozenset(zookeeper_ids)

    def build(server_id: int, *args: Any, **kwargs: Any) -> Any:
        kind = ZooKeeperMember if server_id in chosen else kazoo_harness.TrizabMember
        return kind(server_id, *args, **kwargs)

    return build


def install(zookeeper_ids: Collection[int]) -> None:
    """Make clusters built by `kazoo_harness` from now on mixed (the ids run as ZooKeeper)."""
    kazoo_harness.set_member_factory(member_factory(zookeeper_ids))


def uninstall() -> None:
    kazoo_harness.set_member_factory(None)
