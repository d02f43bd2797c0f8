"""Hosts with their own addresses, made of network namespaces, for the docs tests.

Theory of operation
-------------------
:class:`NetnsHosts` makes one named network namespace per host (``ip netns add``), each with a
veth interface ``eth0`` carrying its address, and one more namespace holding a bridge that joins
the other ends: a switch.  Nothing is added to the machine's own namespace (the veth pairs are
created inside the switch namespace), so its interfaces, routes and firewall are never touched;
iptables rules a test adds inside a host namespace live and die with it.  ``close`` stops every
process started through :meth:`NetnsHosts.popen` (by its pid) and deletes the namespaces; the
test calls it in a ``finally``.  Namespace names carry this process's pid, so two test runs on
one machine do not collide.

Needs Linux, root and ``ip`` (iproute2); without them :class:`NetnsHosts` raises
:class:`NetnsUnavailable` and the test fails, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence

__all__ = ["NetnsHosts", "NetnsUnavailable"]


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (the message says why)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


class NetnsHosts:
    """Hosts ``1..n`` at ``addresses[k-1]``/``prefix`` on one bridge (see the module docstring)."""

    def __init__(self, addresses: Sequence[str], prefix: int = 24) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (CI runs the tests as root)")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("no ip command (Debian: apt-get install iproute2)")
        self.addresses = list(addresses)
        tag = f"tzdoc{os.getpid()}"
        self.switch = f"{tag}sw"
        self.names = [f"{tag}h{k}" for k in range(1, len(addresses) + 1)]
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        try:
            self._create(prefix)
        except BaseException:
            self.close()
            raise

    def _create(self, prefix: int) -> None:
        _ip("netns", "add", self.switch)
        self._created.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for k, (name, address) in enumerate(zip(self.names, self.addresses, strict=True), 1):
            _ip("netns", "add", name)
            self._created.append(name)
            port = f"port{k}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside host ``host``'s namespace (hosts count from 1)."""
        return ["ip", "netns", "exec", self.names[host - 1], *argv]

    def run(
        self, host: int, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion in host ``host``; output captured, status not checked."""
        return subprocess.run(
            self.command(host, argv),
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )

    def popen(
        self, host: int, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log: str
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in host ``host``, its output to the file ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.command(host, argv), stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ)
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for proc in self._procs:
            self.stop(proc, timeout=5.0)
        self._procs.clear()
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)
        self._created.clear()
