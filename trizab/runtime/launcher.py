"""``trizab ensemble --size N``: a local ensemble on 127.0.0.1 for development.

Theory of operation
-------------------
:func:`run_ensemble`, which the command line (:mod:`trizab.cli`) runs, writes
one ``zoo.cfg`` and ``myid`` per member under a base directory
(``server.N=127.0.0.1:quorumPort:electionPort`` lines on free ports), starts
every member as its own ``python -m trizab serve --config ...`` process (so
killing one is a real crash), waits until each answers on its client port,
prints every member's client address and who leads (from ``srvr``), and on
Ctrl-C (or SIGTERM) stops them all with SIGTERM, then SIGKILL after a grace
period.  :func:`write_configs`, :func:`four_letter`, :func:`member_mode` and
:func:`free_ports` (:mod:`trizab.runtime.free_ports`) are shared with the tests, the
benchmarks and the test launchers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from trizab.runtime.free_ports import free_ports

__all__ = ["four_letter", "free_ports", "member_mode", "run_ensemble", "write_configs"]


def write_configs(
    base: Path,
    size: int,
    *,
    observers: int = 0,
    tick_time: int = 2000,
    init_limit: int = 10,
    sync_limit: int = 5,
    storage: str | None = None,
    extra: Sequence[str] = (),
    base_port: int | None = None,
) -> list[tuple[int, Path, int]]:
    """One directory per member with zoo.cfg and myid; returns (sid, config path, client port).

    Member ``k`` (from 0) gets client, quorum and election ports ``base_port + 3k``, ``+1``,
    ``+2``; without ``base_port``, free ports the system picks.
    """
    total = size + observers
    if base_port is not None:
        if not 1 <= base_port <= 65535 - 3 * total + 1:
            raise ValueError(f"base port {base_port} leaves no room for {3 * total} ports")
        ports = list(range(base_port, base_port + 3 * total))
    else:
        ports = free_ports(3 * total)
    lines = []
    for k in range(total):
        sid = k + 1
        role = ":observer" if k >= size else ""
        lines.append(f"server.{sid}=127.0.0.1:{ports[3 * k + 1]}:{ports[3 * k + 2]}{role}")
    out = []
    for k in range(total):
        sid = k + 1
        d = base / f"member{sid}"
        (d / "data").mkdir(parents=True, exist_ok=True)
        (d / "data" / "myid").write_text(f"{sid}\n")
        text = [
            f"tickTime={tick_time}",
            f"initLimit={init_limit}",
            f"syncLimit={sync_limit}",
            f"dataDir={d / 'data'}",
            f"clientPort={ports[3 * k]}",
            "clientPortAddress=127.0.0.1",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            # The members share one host: they would compete for the AdminServer's port 8080.
            "admin.enableServer=false",
            *([f"storage={storage}"] if storage else []),
            *(["peerType=observer"] if k >= size else []),
            *extra,
            *lines,
        ]
        path = d / "zoo.cfg"
        path.write_text("\n".join(text) + "\n")
        out.append((sid, path, ports[3 * k]))
    return out


def four_letter(port: int, word: str, timeout: float = 2.0, *, host: str = "127.0.0.1") -> str:
    """Send a four-letter word on a fresh connection; the whole reply ('' if closed at once)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def member_mode(port: int) -> str | None:
    """leader / follower / observer / None (not answering or not serving)."""
    try:
        text = four_letter(port, "srvr", 1.0)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def member_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "trizab", "serve", "--config", str(config)]


def ensemble_configs(
    base_dir: Path, size: int, observers: int, tick_time: int, base_port: int | None = None
) -> list[tuple[int, Path, int]]:
    """The members' configurations in ``base_dir``: those already there when it holds a whole
    ensemble of this size and no ``base_port`` asks for others (so a rerun on the same data
    keeps its ports), else new ones."""
    total = size + observers
    paths = [base_dir / f"member{sid}" / "zoo.cfg" for sid in range(1, total + 1)]
    if base_port is None and all(p.exists() for p in paths):
        from trizab import config as cfg

        existing = []
        for sid, path in enumerate(paths, 1):
            conf = cfg.load(path)
            if len(conf.servers) != total or conf.client_port is None:
                break
            existing.append((sid, path, conf.client_port))
        else:
            return existing
    return write_configs(base_dir, size, observers=observers, tick_time=tick_time, base_port=base_port)


def run_ensemble(
    size: int, observers: int, base_dir: Path | None, tick_time: int, base_port: int | None = None
) -> int:
    tmp = None
    if base_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="trizab-ensemble-")
        base_dir = Path(tmp.name)
    members = ensemble_configs(base_dir, size, observers, tick_time, base_port)
    procs: list[subprocess.Popen[bytes]] = []
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    # SIGINT too: a launcher started in the background may have inherited SIGINT ignored.
    old = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    try:
        for sid, path, _port in members:
            logf = open(path.parent / "member.log", "ab")  # closed below, once the child has it
            procs.append(
                subprocess.Popen(member_command(path), stdout=logf, stderr=subprocess.STDOUT, cwd=path.parent)
            )
            logf.close()
            print(f"member {sid}: pid {procs[-1].pid}, config {path}", flush=True)
        deadline = time.monotonic() + 30
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline and not stop:
            modes = {sid: member_mode(port) for sid, _, port in members}
            if all(m in ("leader", "follower", "observer") for m in modes.values()):
                break
            time.sleep(0.2)
        for sid, _path, port in members:
            print(f"member {sid}: 127.0.0.1:{port} {modes.get(sid) or 'not serving'}", flush=True)
        print("connect string: " + ",".join(f"127.0.0.1:{p}" for _, _, p in members), flush=True)
        print("Ctrl-C stops the ensemble.", flush=True)
        last = modes
        exited: set[int] = set()
        while not stop:
            time.sleep(1.0)
            for k, p in enumerate(procs):
                if p.poll() is not None and k not in exited:
                    exited.add(k)
                    print(f"member {members[k][0]} exited with status {p.returncode}", flush=True)
            now = {sid: member_mode(port) for sid, _, port in members}
            if [s for s, m in now.items() if m == "leader"] != [s for s, m in last.items() if m == "leader"]:
                leaders = [s for s, m in now.items() if m == "leader"]
                print(f"leader is now {leaders[0] if leaders else 'nobody'}", flush=True)
            last = now
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        print("ensemble stopped", flush=True)
        if tmp is not None:
            tmp.cleanup()
    return 0
