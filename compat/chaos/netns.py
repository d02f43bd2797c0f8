"""Run the fault-injection harness inside a private network namespace.

Theory of operation
-------------------
Network faults are iptables rules.  So that they can never touch the machine's own firewall, the
whole harness (servers, clients, rules) runs in a network namespace of its own: ``unshare --net``
gives the process a namespace with nothing but a loopback interface, ``ip link set lo up`` brings
that up, and every rule added afterwards lives and dies with the namespace.  When the harness exits,
however it exits, the kernel drops the namespace and every rule in it, so cleanup cannot be
forgotten.  Nothing in the namespace can reach another address; the servers all listen on
127.0.0.1, which is all the harness needs.

:func:`private_netns_command` wraps a command line so it runs that way; the wrapped command gets the
environment marker ``TRIZAB_CHAOS_NETNS`` holding the identity of the namespace it was started from.
:func:`in_private_netns` believes the marker only when the current namespace is a different one, is
not init's (when that can be read) and has no interface but loopback, so a stray exported marker
never lets the firewall loose on a real network.  :func:`reexec_in_private_netns` is what a
``python -m compat.chaos`` entry point calls first: it replaces the process with the same command
line inside a fresh namespace (or returns at once when already inside one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

__all__ = [
    "ENV_MARKER",
    "NetnsUnavailable",
    "in_private_netns",
    "netns_supported",
    "private_netns_command",
    "reexec_in_private_netns",
]

ENV_MARKER = "TRIZAB_CHAOS_NETNS"

# Every tool the namespace and the firewall need; iptables-restore applies a fault atomically.
REQUIRED_TOOLS = ("unshare", "ip", "iptables", "iptables-restore", "sh", "env")

# Run inside a throwaway namespace by netns_supported(): the same kinds of rules the firewall adds,
# so a kernel without owner/conntrack/connmark/multiport/comment matches is found out up front.
_SELF_TEST = """\
set -e
ip link set lo up
iptables -w -t mangle -A OUTPUT -m conntrack --ctstate NEW -m owner --gid-owner 61001 \
    -m comment --comment probe -j CONNMARK --set-mark 1
iptables -w -A OUTPUT -p tcp -m connmark --mark 1 -m multiport --dports 1,2 -j DROP
iptables -w -A OUTPUT -p tcp -m connmark --mark 1 -m owner --gid-owner 61001 -j DROP
printf '*filter\\n-A OUTPUT -p tcp --sport 3 -j DROP\\nCOMMIT\\n' | iptables-restore -w --noflush
"""


class NetnsUnavailable(RuntimeError):
    """A private network namespace with iptables cannot be had here (the message says why)."""


def _netns_id(pid: str = "self") -> str | None:
    """``net:[inode]`` of a process's network namespace, or None when it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _interfaces() -> list[str] | None:
    """The network interfaces of this process's namespace (from /proc/self/net/dev)."""
    try:
        with open("/proc/self/net/dev") as f:
            lines = f.read().splitlines()[2:]  # two header lines
    except OSError:
        return None
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def netns_supported() -> tuple[bool, str]:
    """Whether this machine can run the harness in a private namespace; the reason when not.

    Checks for Linux, root, the tools, and then really creates a throwaway namespace and adds the
    kinds of rules the firewall uses in it (never in the current namespace).
    """
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, "network namespaces and iptables need root (run as root, e.g. in CI)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return False, f"missing tools: {', '.join(missing)} (Debian: apt-get install -y iptables iproute2)"
    try:
        result = subprocess.run(
            ["unshare", "--net", "--", "sh", "-c", _SELF_TEST],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"unshare --net failed: {exc}"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        return False, f"a private namespace with iptables does not work here: {detail}"
    return True, "ok"


def in_private_netns() -> bool:
    """True inside a namespace made by :func:`private_netns_command` (see the module docstring)."""
    left = os.environ.get(ENV_MARKER)
    current = _netns_id()
    if not left or current is None or current == left:
        return False
    init = _netns_id("1")  # often unreadable (another user's process, a sandbox): then skip
    if init is not None and init == current:
        return False
    interfaces = _interfaces()
    return interfaces is not None and all(name == "lo" for name in interfaces)


def private_netns_command(argv: list[str]) -> list[str]:
    """``argv`` wrapped to run in a fresh network namespace with loopback up and the marker set."""
    if not argv:
        raise ValueError("empty command")
    left = _netns_id() or "unknown"
    return [
        "unshare",
        "--net",
        "--",
        "env",
        f"{ENV_MARKER}={left}",
        "sh",
        "-c",
        'ip link set lo up && exec "$@"',
        "sh",
        *argv,
    ]


def reexec_in_private_netns(argv: list[str] | None = None) -> None:
    """Replace this process with ``argv`` (default: this interpreter's command line) in a namespace.

    Returns only when already inside a private namespace; raises :class:`NetnsUnavailable` when
    one cannot be made.  Refuses a second re-exec (marker set but the check fails), which would
    otherwise loop forever.
    """
    if in_private_netns():
        return
    if os.environ.get(ENV_MARKER):
        raise NetnsUnavailable(
            f"{ENV_MARKER} is set but this is not a private network namespace with only loopback"
        )
    ok, reason = netns_supported()
    if not ok:
        raise NetnsUnavailable(reason)
    # orig_argv keeps "-m package", which sys.argv has already turned into a file path.
    command = private_netns_command(argv if argv is not None else [sys.executable, *sys.orig_argv[1:]])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, dict(os.environ))
