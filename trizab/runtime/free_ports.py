"""Free TCP ports for servers started on this host (tests, benchmarks, local ensembles).

A port the kernel picks for ``bind(0)`` comes from its ephemeral range, the same range every
outgoing connection takes its source port from: between our choosing a port and the server
binding it, a client connecting anywhere may take it ("Address already in use", seen in a CI
run for a Prometheus port).  Ports are therefore drawn at random from below that range, where
the kernel never puts an outgoing connection, and each is checked by binding it.  Ports are
bound together, then released, so the ``count`` are distinct.  Read replicas take their
loopback quorum ports here too, for the same reason (and so that a restarted replica finds
them free again).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port", "free_ports"]

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below the ports of well-known services and above them all in everyday use.
_LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_ports(count: int, host: str = "127.0.0.1", rng: random.Random | None = None) -> list[int]:
    """``count`` distinct TCP ports on ``host`` that were free a moment ago (drawn with ``rng``)."""
    rng = rng or random.SystemRandom()
    top = _ephemeral_start()
    if top - _LOWEST < 1000:  # a range that leaves no room below it: take the kernel's choice
        return _kernel_ports(count, host)
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, rng.randrange(_LOWEST, top)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def _kernel_ports(count: int, host: str) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
