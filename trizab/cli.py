"""The ``trizab`` command line: ``serve``, ``ensemble``, ``status``, ``snapshot``, ``purge``, ``plugins``.

``trizab serve`` without ``--config`` runs the embedded default configuration:
127.0.0.1:2181, data in ``./trizab-data``, tickTime 2000, every four-letter word
enabled (``4lw.commands.whitelist=*``, unlike ZooKeeper's ``srvr``-only default,
because a local development server should answer ``ruok`` and kazoo's
``server_version()``), and the ``txnlog`` storage engine when it is installed
(``memory`` otherwise).  With ``--config`` the file is read as a ZooKeeper
``zoo.cfg`` and ZooKeeper's defaults apply to anything it does not set;
``--port``, ``--host`` and ``--data-dir`` override the file.

Logging (``--log-config``, ``--log-file``, ``--log-format``, ``--log-level``) is set
up by :mod:`trizab.logsetup`; the operator commands live in :mod:`trizab.ops`.

Every user mistake (bad flag, unreadable or invalid config, unknown plugin, port
in use, a data directory that another server owns or that cannot be written:
:mod:`trizab.runtime.datadir`) prints one line on stderr and exits with status 2,
without a traceback.  A storage that fails while serving (an fsync error: nothing
after the last durable write can be trusted) stops the server with one line and
status 3; a restart recovers from the log.  A full disk does not stop it (writes
are refused with ThrottledOp until there is space again).

``trizab serve`` is the one place that tunes the interpreter for a server (the
collector, the GIL switch interval: :mod:`trizab.runtime.tuning`); a program that
embeds a :class:`~trizab.runtime.server.Server` keeps its own settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import trio

from trizab import config as cfg
from trizab.logsetup import DEFAULT_LOG_BACKUPS, DEFAULT_LOG_MAX_BYTES, LogSetupError, configure_logging

DEFAULT_DATA_DIR = Path("trizab-data")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2181

EXIT_USAGE = 2
EXIT_DISK_FAILED = 3  # the storage failed while serving (see trizab.runtime.disk.DiskFailed)

log = logging.getLogger("trizab")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        sys.stderr.write(f"trizab: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {raw!r}: expected an integer 0..65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {raw!r}: expected an integer 0..65535")
    return value


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad number {raw!r}: expected an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"bad number {raw!r}: expected an integer >= 0")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"bad time {raw!r}: expected seconds, above 0 and below 3600")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trizab")
    except PackageNotFoundError:  # a checkout that is not installed
        return "0.0.0"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trizab", description="A ZooKeeper-compatible coordination service on Trio.")
    parser.add_argument("--version", action="version", version=f"trizab {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run a server")
    serve.add_argument("--config", type=Path, help="a ZooKeeper zoo.cfg")
    serve.add_argument("--port", type=_port, help=f"client port (default {DEFAULT_PORT})")
    serve.add_argument("--host", help=f"client address to listen on (default {DEFAULT_HOST})")
    serve.add_argument("--data-dir", type=Path, help=f"data directory (default ./{DEFAULT_DATA_DIR})")
    serve.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    serve.add_argument(
        "--log-config",
        type=Path,
        help="a logging.config.dictConfig as JSON (*.json) or TOML; replaces the other --log-* flags",
    )
    serve.add_argument("--log-file", type=Path, help="write the log here, rotated (default: stderr)")
    serve.add_argument(
        "--log-max-bytes",
        type=_count,
        default=DEFAULT_LOG_MAX_BYTES,
        help="rotate at this size (default 10 MiB)",
    )
    serve.add_argument(
        "--log-backups", type=_count, default=DEFAULT_LOG_BACKUPS, help="old files kept (default 10)"
    )
    serve.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="json: one object a line"
    )
    # Internal: how the main process of a server with readReplicas starts each replica.
    serve.add_argument("--replica-of", help=argparse.SUPPRESS)
    status = sub.add_parser("status", help="each member's role, zxid, lag and the leader (srvr)")
    status.add_argument(
        "--server", action="append", metavar="HOST:PORT", help="a member's client address (repeat it)"
    )
    status.add_argument("--config", type=Path, help="a zoo.cfg: its server.N hosts with their client port")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--timeout", type=_seconds, default=2.0, help="seconds per member (default 2)")
    purge = sub.add_parser(
        "purge", help="keep the N newest snapshots and the logs they need (zkCleanup.sh -n N)"
    )
    purge.add_argument("--count", "-n", type=int, required=True, help="snapshots to keep (at least 3)")
    purge.add_argument("--data-dir", type=Path, help="dataDir (or --config)")
    purge.add_argument("--data-log-dir", type=Path, help="dataLogDir, if not the dataDir")
    purge.add_argument("--config", type=Path, help="a zoo.cfg: its dataDir, dataLogDir and storage")
    snap = sub.add_parser("snapshot", help="ask a running server for a snapshot now (its AdminServer)")
    snap.add_argument(
        "--server",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="the AdminServer (default 127.0.0.1:8080)",
    )
    snap.add_argument("--auth", metavar="SCHEME:CREDENTIALS", help="e.g. digest:user:password")
    ens = sub.add_parser("ensemble", help="run a local replicated ensemble on 127.0.0.1 (development)")
    ens.add_argument("--size", type=int, default=3, choices=[1, 3, 5, 7], help="voting members (default 3)")
    ens.add_argument("--observers", type=int, default=0, help="observers (default 0)")
    ens.add_argument("--base-dir", type=Path, help="member directories (default: a temporary directory)")
    ens.add_argument("--tick-time", type=int, default=2000, help="tickTime in ms (default 2000)")
    ens.add_argument(
        "--base-port",
        type=_port,
        help="member k listens on base+3k (clients), base+3k+1 (quorum), base+3k+2 (election); "
        "default: free ports, kept when --base-dir already holds the ensemble",
    )
    sub.add_parser("plugins", help="list installed storage and election plugins with their options")
    sub.add_parser("version", help="print the version")
    for p in sub.choices.values():
        p.error = parser.error  # type: ignore[method-assign]
    return parser


def server_config(args: argparse.Namespace) -> cfg.ServerConfig:
    """The configuration ``trizab serve`` runs: the file (or the embedded default) plus flags."""
    if args.config is not None:
        config = cfg.load(args.config)
    else:
        config = cfg.ServerConfig(data_dir=DEFAULT_DATA_DIR, four_letter_whitelist=cfg.ALL_4LW)
    changes: dict[str, object] = {}
    if args.port is not None:
        changes["client_port"] = args.port
    if args.host is not None:
        changes["client_port_address"] = args.host
    if args.data_dir is not None:
        changes["data_dir"] = args.data_dir
    if changes:
        config = config.evolve(**changes)
    if config.data_dir is None:
        config = config.evolve(data_dir=DEFAULT_DATA_DIR)
    jaas = jaas_from_jvm_flags(os.environ)
    if config.sasl.jaas_login_config is None and jaas is not None:
        # zkServer.sh users pass the JAAS file as a JVM option; the zoo.cfg key wins.
        config = config.evolve(sasl=attrs.evolve(config.sasl, jaas_login_config=jaas))
    return config


def jaas_from_jvm_flags(environ: Mapping[str, str]) -> Path | None:
    """``-Djava.security.auth.login.config=FILE`` from SERVER_JVMFLAGS or JVMFLAGS (zkServer.sh's)."""
    for var in ("SERVER_JVMFLAGS", "JVMFLAGS"):
        try:
            flags = shlex.split(environ.get(var, ""))
        except ValueError:  # unbalanced quotes: the JVM would not start either; not ours to judge
            continue
        for flag in flags:
            if flag.startswith("-Djava.security.auth.login.config="):
                value = flag.split("=", 1)[1]
                if value:
                    return Path(value)
    return None


def _serve(args: argparse.Namespace) -> int:
    from trizab.plugin import PluginError
    from trizab.progress import ProgressReporter
    from trizab.runtime import replicas
    from trizab.runtime.disk import DiskFailed
    from trizab.runtime.server import Server, StartupError
    from trizab.runtime.tuning import freeze_big_tree, tune_process
    from trizab.storage import StorageError

    try:
        configure_logging(
            level=args.log_level,
            log_format=args.log_format,
            log_file=args.log_file,
            max_bytes=args.log_max_bytes,
            backups=args.log_backups,
            config_file=args.log_config,
        )
    except LogSetupError as exc:
        raise cfg.ConfigError(str(exc)) from None
    config = server_config(args)
    progress = ProgressReporter(sys.stderr)
    for key, d in (("dataDir", config.data_dir), ("dataLogDir", config.data_log_dir)):
        if d is not None:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise cfg.ConfigError(f"cannot create {key} {d.absolute()}: {exc.strerror or exc}") from None
    replica_spec = replicas.ReplicaSpec.from_json(args.replica_of) if args.replica_of else None
    supervisor: replicas.ReplicaSupervisor | None = None
    if replica_spec is not None:
        # Only the main process answers Ctrl-C; it stops its replicas itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        config = replicas.replica_config(config, replica_spec)
    elif config.read_replicas:
        refused = replicas.refusal(config)
        if refused is not None:
            raise cfg.ConfigError(refused)
        plan = replicas.plan_replicas(config)
        config = replicas.leader_config(config, plan)
        supervisor = replicas.ReplicaSupervisor(plan, _replica_argv(args), args.log_file)
    try:
        # server.N lines (more than one): a replicated member, as ZooKeeper's QuorumPeerMain.
        server = Server(config, on_tree_settled=freeze_big_tree, progress=progress)
        replicated = server.replicated
    except (PluginError, StartupError) as exc:
        raise cfg.ConfigError(str(exc)) from None
    # Interpreter-wide settings are this process's to choose, not the library's.
    tune_process(replicated=replicated)

    async def main() -> None:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("received %s; shutting down", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(stop_on_signal)
            if replica_spec is not None:
                nursery.start_soon(replicas.watch_parent, replica_spec.parent_fd, nursery.cancel_scope.cancel)
            await nursery.start(server.run)
            if supervisor is not None:
                secure = server.clients.secure_addresses
                await nursery.start(
                    supervisor.run,
                    server.addresses[0][1] if server.addresses else None,
                    secure[0][1] if secure else None,
                )

    try:
        trio.run(main)
    except (StartupError, PluginError, StorageError) as exc:
        raise cfg.ConfigError(str(exc)) from None
    except DiskFailed as exc:
        sys.stderr.write(f"trizab: {exc}\n")
        return EXIT_DISK_FAILED
    except BaseExceptionGroup as group:
        # A storage that cannot be trusted stops the server: one line, its own status.
        failed, _rest = group.split(DiskFailed)
        if failed is not None:
            sys.stderr.write(f"trizab: {_first_leaf(failed)}\n")
            return EXIT_DISK_FAILED
        # Start-up errors surface through the nursery; report the first as one line.
        match, _rest = group.split((StartupError, PluginError, StorageError))
        if match is None:
            raise
        raise cfg.ConfigError(str(_first_leaf(match))) from None
    return 0


def _replica_argv(args: argparse.Namespace) -> list[str]:
    """``trizab serve`` as a read replica runs it: the main process's config and log options.

    The client ports, the quorum ports and the replica's id come in ``--replica-of``.
    """
    argv = [sys.executable, "-m", "trizab", "serve", "--log-level", args.log_level]
    argv += ["--log-format", args.log_format, "--log-max-bytes", str(args.log_max_bytes)]
    argv += ["--log-backups", str(args.log_backups)]
    if args.config is not None:
        argv += ["--config", str(args.config.absolute())]
    if args.host is not None:
        argv += ["--host", args.host]
    if args.log_config is not None:
        argv += ["--log-config", str(args.log_config.absolute())]
    return argv


def _status(args: argparse.Namespace) -> int:
    from trizab.ops import status as st

    try:
        members = [st.parse_address(a) for a in args.server or []]
        if args.config is not None:
            members += st.members_from_config(str(args.config))
    except st.StatusError as exc:
        raise cfg.ConfigError(str(exc)) from None
    if not members:
        members = [("127.0.0.1", DEFAULT_PORT)]
    found = st.collect(members, timeout=args.timeout)
    sys.stdout.write(st.format_json(found) if args.json else st.format_table(found))
    return 0 if st.healthy(found) else 1


def _purge(args: argparse.Namespace) -> int:
    from trizab.ops.purge import PurgeError, purge
    from trizab.progress import ProgressReporter

    logging.basicConfig(level="INFO", format="%(message)s", stream=sys.stderr)
    config = cfg.load(args.config) if args.config is not None else cfg.ServerConfig()
    changes: dict[str, object] = {}
    if args.data_dir is not None:
        changes["data_dir"] = args.data_dir
    if args.data_log_dir is not None:
        changes["data_log_dir"] = args.data_log_dir
    config = config.evolve(**changes) if changes else config
    progress = ProgressReporter(sys.stderr)
    try:
        result = purge(config, args.count, progress)
    except PurgeError as exc:
        raise cfg.ConfigError(str(exc)) from None
    finally:
        progress.close()
    for path in result.removed_files:
        print(f"Removing file: {path}")
    kept = ", ".join(f"0x{z:x}" for z in result.kept) or "none"
    print(
        f"{result.engine}: removed {len(result.removed_snapshots)} snapshots and {len(result.removed_files)} "
        f"files; kept {len(result.kept)} snapshots ({kept})"
    )
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from trizab.ops.snapshot import SnapshotError, request_snapshot

    try:
        taken = request_snapshot(args.server, auth=args.auth)
    except SnapshotError as exc:
        sys.stderr.write(f"trizab: {exc}\n")
        return 1
    size = f", {taken.size:,} bytes" if taken.size is not None else ""
    print(f"snapshot taken at zxid {taken.zxid}{size}")
    return 0


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "ensemble":
            from trizab.runtime.launcher import run_ensemble

            ports = 3 * (args.size + args.observers)
            if args.base_port is not None and args.base_port + ports - 1 > 65535:
                raise cfg.ConfigError(f"--base-port {args.base_port} leaves no room for {ports} ports")
            return run_ensemble(args.size, args.observers, args.base_dir, args.tick_time, args.base_port)
        if args.command == "status":
            return _status(args)
        if args.command == "purge":
            return _purge(args)
        if args.command == "snapshot":
            return _snapshot(args)
        if args.command == "plugins":
            from trizab.plugin import describe_plugins

            sys.stdout.write(describe_plugins())
            return 0
        if args.command == "version":
            from trizab.runtime.server import trizab_version

            print(trizab_version())
            return 0
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    except cfg.ConfigError as exc:
        sys.stderr.write(f"trizab: {exc}\n")
        return EXIT_USAGE

    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
