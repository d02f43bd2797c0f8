"""How a simulated server is configured: its reconfig entries, and the elector it runs.

The simulation's log entries are opaque client payloads; a reconfig is one whose
payload is ``b"cfg:"`` and a ``/zookeeper/config`` text, read by the runtime's own
reader.  The elector comes from an installed election plugin, or is the
:class:`PerverseElector` that shows safety does not depend on the election.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from trizab.plugins.election.fast import FastElector
from trizab.server.replica import config_membership as replica_config_membership
from trizab.zab.election import Elector
from trizab.zab.membership import Membership, render_membership
from trizab.zab.peer import PeerConfig
from trizab.zab.vote import Vote

# Reconfig entries of the simulation: b"cfg:" + a configuration text (render_membership).
_CFG = b"cfg:"


def encode_config(m: Membership) -> bytes:
    """A reconfig entry installing ``m``: the prefix, then ``m`` as configuration text."""
    return _CFG + render_membership(m)


def config_membership(data: bytes) -> Membership | None:
    """The simulation's ``membership_fn``: which entries are reconfigs, and to what.

    The simulation's log entries are opaque client payloads, not ZooKeeper txns, so a
    reconfig is told apart by its prefix rather than by a txn header
    (:func:`trizab.zab.membership.txn_membership`).  The configuration itself is read
    by the runtime's reader of a ``/zookeeper/config`` text
    (:func:`trizab.server.replica.config_membership`), so both parse one format with
    one parser.
    """
    if not data.startswith(_CFG):
        return None
    return replica_config_membership(data[len(_CFG) :])


def snapshot_membership(data: bytes) -> Membership | None:
    """The last configuration an application snapshot (a pickled delivered sequence) applied.

    The runtime's :func:`trizab.server.replica.snapshot_membership` reads the
    ``/zookeeper/config`` node of a serialized data tree; the simulation's application
    is only its delivered sequence, so the configuration in force is that of its last
    reconfig entry, read by :func:`config_membership`.
    """
    for _, payload in reversed(pickle.loads(data)):
        m = config_membership(payload)
        if m is not None:
            return m
    return None


class PerverseElector(FastElector):
    """FLE with the vote order reversed: it elects the *least* up-to-date peer it can.

    Not a plugin anyone should use: it exists to show that safety does not depend
    on the election (discovery must then learn the history from a follower).
    """

    def beats(self, new: Vote, cur: Vote) -> bool:
        return (-new.peer_epoch, -new.zxid, new.leader) > (-cur.peer_epoch, -cur.zxid, cur.leader)


def electors(name: str, options: dict[str, str] | None = None) -> Callable[[PeerConfig], Elector]:
    """An elector factory from an installed election plugin (or ``perverse``, see PerverseElector)."""
    from trizab.plugin import load_plugin

    if name == "perverse":
        return lambda cfg: PerverseElector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())

    plugin = load_plugin("trizab.election", name, options or {})

    def make(cfg: PeerConfig) -> Elector:
        return plugin.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())

    return make
