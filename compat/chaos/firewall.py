"""Network faults between ensemble members, as iptables rules in a private network namespace.

Theory of operation
-------------------
Every member runs on 127.0.0.1, so addresses cannot tell members apart; group ids can.  Each member
process is started with a group id of its own (``Popen(group=...)``), and iptables matches a packet's
sender with ``-m owner --gid-owner``.  Ports alone cannot say who is on the other end of a connection
(the ephemeral port of an outgoing connection is anybody's), so the firewall also remembers who opened
every connection: a rule in the mangle table's OUTPUT path copies the opener's server id into the
connection's conntrack mark on its first packet (``--ctstate NEW -m owner --gid-owner G_x -j
CONNMARK --set-mark x``).  Connections opened by anything that is not a member (the harness and its
clients) keep mark 0.  Because the marks are set on the first packet, :meth:`Firewall.install` must
run before the members start: a connection already open when conntrack starts watching is picked up
mid-stream and may be attributed to the wrong end.

On loopback every packet passes the sender's OUTPUT chain, so all faults are DROP rules in one
filter chain (``TRIZAB_CHAOS``) that OUTPUT jumps to; healing is flushing that chain.  Dropping
"what ``a`` sends to ``b``" means:

- on connections ``b`` opened (mark ``b``): whatever ``a``'s process sends, and whatever leaves
  ``a``'s quorum or election port (this also catches what no process owns any more: the SYN-ACK
  of a listener's half-open connection on kernels where the owner match misses it, a FIN after
  ``a`` died, a kernel RST when nothing listens);
- on connections ``a`` opened (mark ``a``, or ``a``'s process): whatever goes to ``b``'s quorum or
  election port, the SYN included.

A one-way cut ``a -> b`` therefore drops every packet from ``a`` to ``b`` and none from ``b`` to ``a``:
data ``b`` sends on an open connection still reaches ``a``'s application, but no new connection
between them can complete in either direction (a handshake needs packets both ways).  That is the
usual meaning of a one-way partition (Jepsen's, too).

Cutting the clients of a member drops every packet to and from its client port on connections the
member did not open (peers never connect to one another's client ports).  Nothing is closed and no
RST is sent: a connected client simply hears nothing, and the server keeps its socket open, exactly
a half-open TCP connection.  Its own ``srvr`` answers stop too, which is fine for a client cut.

Each fault is added with one ``iptables-restore --noflush`` call, so a partition appears at once
rather than one rule at a time.  Every call first checks that this process is in a private network
namespace (:func:`compat.chaos.netns.in_private_netns`) and raises otherwise, so these rules can
never land on a host's firewall.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from compat.chaos.netns import in_private_netns

__all__ = ["FILTER_CHAIN", "MARK_CHAIN", "Firewall", "FirewallError", "MemberPorts"]

FILTER_CHAIN = "TRIZAB_CHAOS"
MARK_CHAIN = "TRIZAB_CHAOS_MARK"

# Per-namespace conntrack knob: with it, conntrack calls fewer long-blocked retransmissions INVALID,
# and an INVALID packet carries no connection mark, so no mark-based rule could drop it.
_BE_LIBERAL = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")


class FirewallError(RuntimeError):
    """An iptables call failed, or the firewall was asked to run outside a private namespace."""


@dataclass(frozen=True)
class MemberPorts:
    """One member as the firewall sees it: its server id, process group id and ports."""

    sid: int
    gid: int
    client_port: int
    quorum_port: int
    election_port: int

    @property
    def peer_ports(self) -> str:
        """The quorum and election ports, as a ``multiport`` list."""
        return f"{self.quorum_port},{self.election_port}"


class Firewall:
    """Faults between ``members`` (see the module docstring); a context manager around install/close."""

    def __init__(self, members: Iterable[MemberPorts], *, iptables: str = "iptables") -> None:
        self.members: dict[int, MemberPorts] = {}
        for m in members:
            if m.sid in self.members:
                raise ValueError(f"server id {m.sid} given twice")
            if m.sid < 1:
                raise ValueError(f"server id {m.sid}: must be >= 1 (connection mark 0 means a client)")
            self.members[m.sid] = m
        gids = [m.gid for m in self.members.values()]
        if len(set(gids)) != len(gids):
            raise ValueError(f"member group ids must be distinct: {gids}")
        # The harness's own connections are told apart from members' by group id.
        own = {os.getgid(), os.getegid()}
        if own & set(gids):
            raise ValueError(f"a member group id {sorted(own & set(gids))} is the harness's own group")
        self.iptables = iptables
        self.iptables_restore = f"{iptables}-restore"
        self.installed = False
        self._faults: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def install(self) -> None:
        """Create the chains and the connection-marking rules (before any member starts)."""
        if self.installed:
            return
        self._require_netns()
        if self._chain_exists("filter", FILTER_CHAIN) or self._chain_exists("mangle", MARK_CHAIN):
            raise FirewallError(f"chain {FILTER_CHAIN} already exists: another Firewall in this namespace?")
        mark = [
            f"-A {MARK_CHAIN} -m conntrack --ctstate NEW -m owner --gid-owner {m.gid} "
            f'-m comment --comment "opened by {m.sid}" -j CONNMARK --set-mark {m.sid}'
            for m in self.members.values()
        ]
        self._restore(
            {
                "mangle": [f":{MARK_CHAIN} - [0:0]", f"-I OUTPUT 1 -j {MARK_CHAIN}", *mark],
                "filter": [f":{FILTER_CHAIN} - [0:0]", f"-I OUTPUT 1 -j {FILTER_CHAIN}"],
            }
        )
        self.installed = True
        try:
            _BE_LIBERAL.write_text("1\n")
        except OSError:
            pass  # an older kernel without the knob: the rules still work, slightly less tightly

    def close(self) -> None:
        """Remove every rule and both chains (idempotent; the namespace's end removes them anyway)."""
        if not self.installed:
            return
        self._require_netns()
        for table, chain in (("filter", FILTER_CHAIN), ("mangle", MARK_CHAIN)):
            self._run(["-t", table, "-D", "OUTPUT", "-j", chain], check=False)
            self._run(["-t", table, "-F", chain], check=False)
            self._run(["-t", table, "-X", chain], check=False)
        self._faults.clear()
        self.installed = False

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- faults --------------------------------------------------------------------------------

    def cut(self, a: int, b: int, *, one_way: bool = False) -> None:
        """Drop every packet from ``a`` to ``b`` and, unless ``one_way``, from ``b`` to ``a``."""
        self._check_pair(a, b)
        rules = self._direction(a, b)
        if not one_way:
            rules += self._direction(b, a)
        self._add(f"cut {a}{' -> ' if one_way else ' <-> '}{b}", rules)

    def isolate(self, sid: int) -> None:
        """Cut ``sid`` from every other member, both ways."""
        self._check_member(sid)
        rules = [r for other in self.members if other != sid for r in self._both(sid, other)]
        self._add(f"isolate {sid}", rules)

    def partition(self, groups: Sequence[set[int]]) -> None:
        """No traffic between members of different groups.

        Members named in no group form one more group together, so ``partition([{1}])`` is
        ``isolate(1)``.
        """
        seen: set[int] = set()
        for group in groups:
            if not group:
                raise ValueError("empty group in partition")
            for sid in group:
                self._check_member(sid)
            if seen & group:
                raise ValueError(f"members {sorted(seen & group)} are in more than one group")
            seen |= group
        all_groups = [set(g) for g in groups]
        rest = set(self.members) - seen
        if rest:
            all_groups.append(rest)
        rules: list[str] = []
        for i, left in enumerate(all_groups):
            for right in all_groups[i + 1 :]:
                for a in sorted(left):
                    for b in sorted(right):
                        rules += self._both(a, b)
        described = " | ".join(",".join(map(str, sorted(g))) for g in all_groups)
        self._add(f"partition {described}", rules)

    def cut_clients(self, sid: int) -> None:
        """Silently drop all traffic between ``sid``'s client port and its clients (half-open TCP)."""
        self._check_member(sid)
        m = self.members[sid]
        why = f"clients of {sid}"
        # Ports only, no connection mark: a packet conntrack finds INVALID has no mark, and nothing
        # but clients (the harness, its kazoo clients) connects to a client port.
        rules = [
            f'-p tcp --dport {m.client_port} -m comment --comment "{why}: to server" -j DROP',
            f'-p tcp --sport {m.client_port} -m comment --comment "{why}: to clients" -j DROP',
        ]
        self._add(why, rules)

    def heal(self) -> None:
        """Remove every fault rule; the marking rules stay, so faults can be added again."""
        self._require_installed()
        self._run(["-t", "filter", "-F", FILTER_CHAIN])
        self._faults.clear()

    # -- inspection ----------------------------------------------------------------------------

    @property
    def faults(self) -> list[str]:
        """The faults added since the last heal, in order, e.g. ``["cut 1 <-> 2"]``."""
        return list(self._faults)

    def rules(self) -> list[str]:
        """Every rule now in the firewall's chains, as ``iptables -S`` prints it, for logs."""
        self._require_installed()
        out: list[str] = []
        for table, chain in (("mangle", MARK_CHAIN), ("filter", FILTER_CHAIN)):
            listing = self._run(["-t", table, "-S", chain]).stdout
            out += [f"{table}: {line}" for line in listing.splitlines() if line.startswith("-A")]
        return out

    # -- rule construction ---------------------------------------------------------------------

    def _direction(self, src: int, dst: int) -> list[str]:
        """The rules that drop every packet ``src`` sends to ``dst`` (see the module docstring)."""
        s, d = self.members[src], self.members[dst]
        c = f'-m comment --comment "{src} -> {dst}"'
        return [
            # Connections dst opened: src's process, whatever the port ...
            f"-m connmark --mark {dst} -m owner --gid-owner {s.gid} {c} -j DROP",
            # ... and src's peer ports, also when no process owns the packet (SYN-ACK, FIN, RST).
            f"-p tcp -m connmark --mark {dst} -m multiport --sports {s.peer_ports} {c} -j DROP",
            # Connections src opened to dst's peer ports, SYN included; the owner match covers a
            # packet conntrack found INVALID (no mark), the mark covers one src no longer owns.
            f"-p tcp -m connmark --mark {src} -m multiport --dports {d.peer_ports} {c} -j DROP",
            f"-p tcp -m owner --gid-owner {s.gid} -m multiport --dports {d.peer_ports} {c} -j DROP",
        ]

    def _both(self, a: int, b: int) -> list[str]:
        return self._direction(a, b) + self._direction(b, a)

    def _add(self, description: str, rules: list[str]) -> None:
        self._require_installed()
        self._restore({"filter": [f"-A {FILTER_CHAIN} {rule}" for rule in rules]})
        self._faults.append(description)

    def _check_member(self, sid: int) -> None:
        if sid not in self.members:
            raise ValueError(f"unknown member {sid} (members: {sorted(self.members)})")

    def _check_pair(self, a: int, b: int) -> None:
        self._check_member(a)
        self._check_member(b)
        if a == b:
            raise ValueError(f"cannot cut member {a} from itself")

    # -- running iptables ----------------------------------------------------------------------

    def _require_netns(self) -> None:
        if not in_private_netns():
            raise FirewallError(
                "refusing to change iptables outside a private network namespace "
                "(run the harness through compat.chaos.netns.private_netns_command or "
                "reexec_in_private_netns)"
            )

    def _require_installed(self) -> None:
        if not self.installed:
            raise FirewallError("the firewall is not installed (call install() first)")

    def _chain_exists(self, table: str, chain: str) -> bool:
        return self._run(["-t", table, "-S", chain], check=False).returncode == 0

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        self._require_netns()
        command = [self.iptables, "-w", *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise FirewallError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _restore(self, tables: dict[str, list[str]]) -> None:
        """Apply rules to several tables in one atomic ``iptables-restore --noflush``."""
        self._require_netns()
        text = "".join(
            f"*{table}\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n"
            for table, lines in tables.items()
        )
        command = [self.iptables_restore, "-w", "--noflush"]
        result = subprocess.run(command, input=text, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise FirewallError(
                f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}\ninput:\n{text}"
            )
