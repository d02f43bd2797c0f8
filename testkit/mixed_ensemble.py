"""One ensemble of trizab and Apache ZooKeeper 3.8 members, as real processes.

Theory of operation
-------------------
A mixed ensemble is what an operator gets while migrating: every member reads the
same ``server.N`` lines (one zoo.cfg body for all), each its own ``myid``; a
ZooKeeper member runs ``QuorumPeerMain`` (:mod:`testkit.apache_zk`), a trizab
member ``trizab serve`` (:mod:`testkit.trizab_ensemble`).  ``kinds`` says which
is which, in server-id order; ``observers`` names the server ids that observe.
Members are indexable, with the launchers' own ``start()``, ``stop()``, ``kill()``,
``wait_ready()``, ``wipe_data()``, ``four_letter_word()``; processes are stopped by
pid only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from testkit.apache_zk import QUORUM_MAIN, _Member, free_ports, require_available
from testkit.ensemble_base import ProcessEnsemble, member_mode
from testkit.trizab_ensemble import TrizabMember

__all__ = ["TRIZAB", "ZOOKEEPER", "MixedEnsemble"]

Kind = Literal["trizab", "zookeeper"]
TRIZAB: Kind = "trizab"
ZOOKEEPER: Kind = "zookeeper"


class MixedEnsemble(ProcessEnsemble[Any]):
    """Members of both implementations on loopback (see the module docstring)."""

    def __init__(
        self,
        kinds: Sequence[Kind],
        *,
        observers: Sequence[int] = (),
        tick_time: int = 2000,
        init_limit: int = 10,
        sync_limit: int = 5,
        extra_config: Sequence[str] = (),
        member_config: Mapping[int, Sequence[str]] | None = None,
        java_properties: Mapping[int, Sequence[str]] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 90.0,
        log_level: str = "INFO",
    ) -> None:
        """``member_config`` adds zoo.cfg lines for one server id (a JAAS file of its own, say);
        ``java_properties`` (``-D...``) go to that member's JVM when it runs ZooKeeper."""
        super().__init__(workdir, prefix="mixed-ens-", start_timeout=start_timeout)
        self.kinds = list(kinds)
        n = len(kinds)
        ports = free_ports(3 * n)
        self.observers = set(observers)  # server ids
        servers = [
            f"server.{k + 1}=127.0.0.1:{ports[3 * k + 1]}:{ports[3 * k + 2]}:"
            + ("observer" if k + 1 in self.observers else "participant")
            for k in range(n)
        ]
        common = [
            f"tickTime={tick_time}",
            f"initLimit={init_limit}",
            f"syncLimit={sync_limit}",
            "clientPortAddress=127.0.0.1",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            *extra_config,
            *servers,
        ]
        self.members: list[Any] = []
        for k, kind in enumerate(kinds):
            sid, port = k + 1, ports[3 * k]
            d = self.workdir / f"member{sid}"
            own = ["peerType=observer"] if sid in self.observers else []
            own += (member_config or {}).get(sid, ())
            if kind == ZOOKEEPER:
                self.members.append(
                    _Member(
                        d,
                        main_class=QUORUM_MAIN,
                        config_lines=[f"clientPort={port}", *own, *common],
                        myid=sid,
                        client_port=port,
                        java_properties=list((java_properties or {}).get(sid, ())),
                        jvm_args=["-Xmx256m"],
                    )
                )
            else:
                data = d / "data"
                data.mkdir(parents=True, exist_ok=True)
                (data / "myid").write_text(f"{sid}\n")
                path = d / "zoo.cfg"
                path.write_text("\n".join([f"dataDir={data}", f"clientPort={port}", *own, *common]) + "\n")
                self.members.append(TrizabMember(sid, path, port, log_level=log_level))

    def _check_available(self) -> None:
        if ZOOKEEPER in self.kinds:
            require_available()

    def modes(self) -> dict[int, str | None]:
        """Each member's ``srvr`` Mode (None: stopped or not answering), by server id."""
        out: dict[int, str | None] = {}
        for k, m in enumerate(self.members):
            mode = None
            with contextlib.suppress(OSError):
                mode = member_mode(m)
            out[k + 1] = mode
        return out

    def leader(self) -> Any | None:
        for k, mode in self.modes().items():
            if mode == "leader":
                return self.members[k - 1]
        return None
