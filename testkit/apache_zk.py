"""Start and stop real Apache ZooKeeper 3.8 servers for tests, compat runs and benchmarks.

Theory of operation: every comparison against Apache ZooKeeper (the differential tester, the
Java-client transcripts, the compat runner, the load generator) needs the same thing: a real
ZooKeeper on free loopback ports with a fresh dataDir, up before the first request and gone after
the last one. This module does that synchronously with `subprocess`, so it works from plain
pytest, from Trio code (call it in a thread or before the nursery) and from scripts.

- The JVM runs `ZooKeeperServerMain` (standalone) or `QuorumPeerMain` (ensemble members) from the
  Debian package `zookeeper`. Debian's zookeeper.jar names most of its dependencies in its manifest
  Class-Path, but not netty-codec, netty-resolver and netty-transport-native-unix-common (without
  them every client connection fails) nor a logging backend, so the default classpath adds them.
  `ZOOKEEPER_CLASSPATH` overrides the whole list.
- Readiness is "ruok answers imok and srvr reports a Mode" (a quorum member answers ruok before it
  has joined a quorum, so ruok alone is not enough for an ensemble), within a bounded timeout.
- Stopping is by pid only: SIGTERM, then SIGKILL after a grace period.
- The admin HTTP server (default port 8080) is disabled so that parallel servers do not collide;
  its jars are on the classpath, so a test may enable it with its own `admin.serverPort`.
- For fault injection (`compat.chaos`) an ensemble member exposes `sid`, `quorum_port` and
  `election_port`, may run under its own group id (`gid`, so a firewall can tell its packets
  apart), can be paused (SIGSTOP/SIGCONT) and, while stopped, lose its data (`wipe_data()`,
  which keeps `myid`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from testkit.ensemble_base import OwnedWorkdir, ProcessEnsemble, clear_directory
from testkit.procs import ChildProcess
from trizab.runtime.free_ports import free_ports
from trizab.runtime.launcher import four_letter

JAVA_DIR = "/usr/share/java"
DEFAULT_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
    "netty-handler.jar",
    "netty-buffer.jar",
    "netty-common.jar",
    "netty-transport.jar",
    "slf4j-api.jar",
    "slf4j-log4j12.jar",
    "log4j-1.2.jar",
)
# The AdminServer's (JettyAdminServer) dependencies, which Debian's zookeeper.jar does not name:
# with them on the classpath a test may turn it on (admin.enableServer=true, its own
# admin.serverPort); it stays off by default, as below.
ADMIN_JARS = (
    "jetty9-server.jar",
    "jetty9-servlet.jar",
    "jetty9-util.jar",
    "jetty9-http.jar",
    "jetty9-io.jar",
    "jetty9-security.jar",
    "servlet-api.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
)
STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
HOST = "127.0.0.1"

_LOG4J = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={path}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} [myid:%X{{myid}}] - %-5p [%t:%C{{1}}@%L] - %m%n
"""


class ApacheZooKeeperError(RuntimeError):
    """The server could not be started (missing Java/jar, early exit, or not ready in time)."""


def java_executable() -> str | None:
    """The `java` to run: $JAVA_HOME/bin/java if set, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home, "bin", "java")
        if candidate.is_file():
            return str(candidate)
    return shutil.which("java")


def classpath() -> str:
    """`ZOOKEEPER_CLASSPATH` if set, else the Debian jars that exist."""
    env = os.environ.get("ZOOKEEPER_CLASSPATH")
    if env:
        return env
    java_dir = Path(os.environ.get("ZOOKEEPER_JAVA_DIR", JAVA_DIR))
    jars = (*DEFAULT_JARS, *ADMIN_JARS)
    return os.pathsep.join(str(java_dir / jar) for jar in jars if (java_dir / jar).exists())


def available() -> bool:
    """True when java and a zookeeper jar on the classpath exist.

    Tests marked `apache` must fail rather than skip when this is False in CI: use
    `require_available()` in their fixtures.
    """
    if java_executable() is None:
        return False
    return any(
        Path(p).name.startswith("zookeeper") and Path(p).is_file() for p in classpath().split(os.pathsep)
    )


def require_available() -> None:
    """Raise `ApacheZooKeeperError` with a useful message when Apache ZooKeeper cannot run here."""
    if not available():
        raise ApacheZooKeeperError(
            "Apache ZooKeeper is not available: install the Debian package `zookeeper` (and a JRE) "
            "or set ZOOKEEPER_CLASSPATH; classpath tried: " + (classpath() or "<empty>")
        )


def four_letter_word(port: int, command: str, *, host: str = HOST, timeout: float = 2.0) -> str:
    """Send a four-letter word and return the whole text reply ('' if the server closed at once)."""
    return four_letter(port, command, timeout, host=host)


def _serving(port: int) -> bool:
    """ruok says imok and srvr shows a Mode; a word outside the whitelist is not held against it."""
    try:
        ruok = four_letter_word(port, "ruok", timeout=1.0)
        srvr = four_letter_word(port, "srvr", timeout=1.0)
    except OSError:
        return False
    ruok_ok = ruok == "imok" or "not in the whitelist" in ruok
    srvr_ok = "Mode: " in srvr or "not in the whitelist" in srvr
    return ruok_ok and srvr_ok and ("Mode: " in srvr or ruok == "imok")


def _with_default_whitelist(lines: Sequence[str]) -> list[str]:
    """Enable every four-letter word unless the caller chose a whitelist."""
    if any(line.strip().startswith("4lw.commands.whitelist") for line in lines):
        return list(lines)
    return ["4lw.commands.whitelist=*", *lines]


class _Member(ChildProcess):
    """One JVM: config, dataDir, log file, process."""

    def __init__(
        self,
        workdir: Path,
        *,
        main_class: str,
        config_lines: Sequence[str],
        myid: int | None,
        client_port: int,
        java_properties: Sequence[str],
        jvm_args: Sequence[str],
        gid: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.main_class = main_class
        self.config_lines = list(config_lines)
        self.myid = myid
        self.client_port = client_port
        self.java_properties = list(java_properties)
        self.jvm_args = list(jvm_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir = workdir / "data"
        self.log_path = workdir / "zookeeper.log"
        # The JVM's group id (None: inherit ours); read at start(), so it may be set later.
        self.gid = gid

    @property
    def sid(self) -> int:
        """The server id (``myid``); 0 for a standalone server, as in trizab's config."""
        return self.myid or 0

    def _config_value(self, key: str) -> str | None:
        for line in self.config_lines:
            name, sep, value = line.partition("=")
            if sep and name.strip() == key:
                return value.strip()
        return None

    def _server_line(self) -> list[str]:
        """``host:quorumPort:electionPort[:role]`` of this member's ``server.N`` line, split."""
        value = self._config_value(f"server.{self.sid}")
        if value is None:
            raise ApacheZooKeeperError(f"no server.{self.sid} line: not an ensemble member")
        return value.split(";")[0].split(":")

    @property
    def quorum_port(self) -> int:
        return int(self._server_line()[1])

    @property
    def election_port(self) -> int:
        return int(self._server_line()[2])

    def wipe_data(self) -> None:
        """Empty the dataDir (and a dataLogDir), keeping ``myid``; only while stopped."""
        if self.running:
            raise ApacheZooKeeperError(f"{self.address} is running: stop or kill it before wiping its data")
        clear_directory(self.data_dir, keep=("myid",))
        data_log_dir = self._config_value("dataLogDir")
        if data_log_dir:
            clear_directory(Path(data_log_dir), keep=("myid",))

    @property
    def address(self) -> str:
        return f"{HOST}:{self.client_port}"

    def start(self) -> None:
        if self.running:
            return
        java = java_executable()
        if java is None:
            raise ApacheZooKeeperError("no java executable (set JAVA_HOME or install a JRE)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if self.myid is not None:
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text("\n".join([f"dataDir={self.data_dir}", *self.config_lines]) + "\n")
        log4j = self.workdir / "log4j.properties"
        log4j.write_text(_LOG4J.format(path=self.log_path))
        args = [
            java,
            "-cp",
            classpath(),
            "-Dfile.encoding=UTF-8",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j.configuration=file:{log4j}",
            f"-Dzookeeper.log.dir={self.workdir}",
            *self.jvm_args,
            *self.java_properties,
            self.main_class,
            str(cfg),
        ]
        stdout = (self.workdir / "stdout.log").open("ab")
        try:
            self.process = subprocess.Popen(
                args, stdout=stdout, stderr=subprocess.STDOUT, cwd=self.workdir, group=self.gid
            )
        finally:
            stdout.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ApacheZooKeeperError(
                    f"ZooKeeper exited with {self.process.returncode}; last log lines:\n" + self.tail()
                )
            if _serving(self.client_port):
                return
            if time.monotonic() > deadline:
                raise ApacheZooKeeperError(
                    f"ZooKeeper on {self.address} not ready within {timeout} s; last log lines:\n"
                    + self.tail()
                )
            time.sleep(0.1)

    def get_logs(self, num_lines: int = 100) -> list[str]:
        lines: list[str] = []
        for path in (self.workdir / "stdout.log", self.log_path):
            if path.exists():
                lines += path.read_text(errors="replace").splitlines(keepends=True)
        return lines[-num_lines:]

    def tail(self, num_lines: int = 30) -> str:
        return "".join(self.get_logs(num_lines))

    def four_letter_word(self, command: str, timeout: float = 2.0) -> str:
        return four_letter_word(self.client_port, command, timeout=timeout)


class ApacheZooKeeper(_Member, OwnedWorkdir):
    """A standalone Apache ZooKeeper 3.8 (`ZooKeeperServerMain`) on a free loopback port.

    >>> with ApacheZooKeeper(extra_config=["4lw.commands.whitelist=*"]) as zk:
    ...     KazooClient(zk.address)

    `extra_config` lines are appended to zoo.cfg (unknown keys become `zookeeper.<key>` system
    properties, e.g. `extendedTypesEnabled=true`); every four-letter word is enabled unless they set
    `4lw.commands.whitelist`. `java_properties` are `-D...` JVM options.
    With no `workdir` a temporary directory is created and removed by `close()`/`__exit__`.
    """

    def __init__(
        self,
        *,
        extra_config: Sequence[str] = (),
        java_properties: Sequence[str] = (),
        jvm_args: Sequence[str] = (),
        tick_time: int = 2000,
        client_port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._own_workdir = workdir is None
        path = Path(tempfile.mkdtemp(prefix="apache-zk-")) if workdir is None else Path(workdir)
        port = client_port if client_port is not None else free_ports(1)[0]
        lines = [
            f"tickTime={tick_time}",
            f"clientPort={port}",
            f"clientPortAddress={HOST}",
            "admin.enableServer=false",
            "maxClientCnxns=0",
            *_with_default_whitelist(extra_config),
        ]
        super().__init__(
            path,
            main_class=STANDALONE_MAIN,
            config_lines=lines,
            myid=None,
            client_port=port,
            java_properties=java_properties,
            jvm_args=jvm_args,
        )
        self.start_timeout = start_timeout

    def start(self) -> None:
        """Start the JVM and wait until it serves (bounded by `start_timeout`)."""
        require_available()
        super().start()
        try:
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.stop()
            raise


class ApacheEnsemble(ProcessEnsemble[_Member]):
    """An ensemble of `size` Apache ZooKeeper 3.8 `QuorumPeerMain` members on free loopback ports.

    Members are indexable; each has `.address`, `.client_port`, `.pid`, `.start()`, `.stop()`,
    `.kill()`, `.wait_ready()` (and the fault-injection extras in the module docstring). `address`
    is the comma-separated connect string.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        extra_config: Sequence[str] = (),
        java_properties: Sequence[str] = (),
        jvm_args: Sequence[str] = (),
        tick_time: int = 2000,
        init_limit: int = 5,
        sync_limit: int = 2,
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        gids: Mapping[int, int] | None = None,
    ) -> None:
        """``gids`` maps a server id to the group id its JVM runs with (default: ours)."""
        super().__init__(workdir, prefix="apache-zk-ens-", start_timeout=start_timeout)
        gids = gids or {}
        ports = free_ports(3 * size)
        servers = [
            f"server.{i + 1}={HOST}:{ports[3 * i + 1]}:{ports[3 * i + 2]}:participant" for i in range(size)
        ]
        self.members: list[_Member] = []
        for i in range(size):
            lines = [
                f"tickTime={tick_time}",
                f"initLimit={init_limit}",
                f"syncLimit={sync_limit}",
                f"clientPort={ports[3 * i]}",
                f"clientPortAddress={HOST}",
                "admin.enableServer=false",
                "maxClientCnxns=0",
                *servers,
                *_with_default_whitelist(extra_config),
            ]
            self.members.append(
                _Member(
                    self.workdir / f"member{i + 1}",
                    main_class=QUORUM_MAIN,
                    config_lines=lines,
                    myid=i + 1,
                    client_port=ports[3 * i],
                    java_properties=java_properties,
                    jvm_args=jvm_args,
                    gid=gids.get(i + 1),
                )
            )

    def _check_available(self) -> None:
        require_available()

    def leader(self) -> _Member | None:
        """The member whose `srvr` says `Mode: leader`, if any."""
        for member in self.members:
            if not member.running:
                continue
            with contextlib.suppress(OSError):
                if "Mode: leader" in member.four_letter_word("srvr", timeout=1.0):
                    return member
        return None
