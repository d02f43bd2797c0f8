"""A deterministic simulated ensemble of ZAB peers, with faults and the Zab property checker.

Theory of operation
-------------------
Everything runs in one thread on a simulated clock (integer milliseconds) and an
event heap; the only randomness is one ``random.Random(seed)``, so a seed *is* a
schedule and replays exactly.

* **Peers** are real :class:`trizab.zab.peer.Peer` objects driven like the Trio
  runtime drives them: inputs are stepped in, then the peer's ``Ready`` is carried
  out in its documented order.  Storage writes are asynchronous: a Ready's writes
  become durable only when its simulated fsync completes (1-5 ms later); only
  then are its messages sent, its committed txns applied and ``advance`` called.
  Inputs keep arriving meanwhile (group commit).  In half of the schedules an
  established leader sends its Ready's broadcast before the fsync, and the
  proposals and COMMITs it makes meanwhile at once (``Ready.may_send_early``,
  ``Peer.early_messages``), as the runtime does.
* **Storage** (:class:`SimStorage`) keeps a durable part and the writes of the
  Ready in flight.  A crash keeps a random *prefix* of the in-flight writes, in
  the order the Ready contract prescribes (truncate, snapshot, appends, epochs
  last), and loses the rest, as a log that was appended but not synced would.
* **Network** (:class:`SimNetwork`): per directed pair, a FIFO quorum channel
  that models a TCP connection (a partition holds bytes until it heals; closing
  or breaking a connection delivers what was sent, then the close; whatever the
  other side sent on the dead connection is discarded), and a lossy election
  channel (a partition drops notifications).  Delays are random per message but
  never reorder a channel.
* **Clients** write unique payloads to random live peers; a write is
  *acknowledged* when the peer it was sent to applies it.  Unacknowledged writes
  are retried every second at a random peer.
* **Syncs** (``Peer.read_index``) are asked of a random peer that believes it
  is the established leader (a stale one too, e.g. one paused meanwhile); when
  the token comes back confirmed, every write acknowledged before the call must
  have a zxid at most the leader's last zxid at the call, i.e. the read that
  follows would see it (linearizability of sync + read).
* **Pauses** (SIGSTOP, a long GC): a paused server neither ticks nor receives
  nor completes a storage write; what was sent to it waits, and when it resumes
  it first reads the syncs its clients asked meanwhile, then the rest.
* **The application** of each peer is just its delivered sequence of
  ``(zxid, payload)``; a snapshot is that sequence, pickled.

After every applied transaction the checker verifies: that a quorum of voters
held it durably when it was first applied anywhere (a commit is a quorum's
durable acknowledgement), agreement (every peer's
delivered sequence is a prefix of one global sequence), integrity and primary
order (a delivered txn is exactly what the leader of its epoch proposed at that
zxid, and within an epoch counters are delivered 1, 2, 3... with no gap, epochs
increasing), at most one established leader per epoch, and that no leader
proposed two different txns at one zxid.  After the fault phase everything
heals and restarts; then within ``LIVENESS_BOUND_MS`` of simulated time a leader
must be established, every acknowledged and every pending write must be applied
on every peer, and all peers must agree exactly (durability and liveness).

Run a soak with ``python -m trizab.testing.sim --schedules 100000 --peers 5
--election fast``; a failure prints its seed and the one-line replay command.

Layout (every name is imported from here)
-----------------------------------------
* ``storage.py`` (:class:`SimStorage`) and ``network.py`` (:class:`SimNetwork`): the
  simulated disk and network;
* ``configuration.py``: reconfig entries (:func:`encode_config`,
  :func:`config_membership`, :func:`snapshot_membership`) and electors
  (:func:`electors`, :class:`PerverseElector`);
* ``simulation.py``: the driver (:class:`Simulation`, :class:`Node`, :class:`SimParams`),
  which mixes in ``faults.py`` (the actions a schedule is made of, reconfigs) and
  ``invariants.py`` (the checker, :class:`InvariantViolation`, ``LIVENESS_BOUND_MS``);
* ``runner.py``: schedules from seeds and the command line (:func:`params_for`,
  :func:`run_schedule`, :func:`soak`, :func:`measure_failover`, :func:`main`);
  ``__main__.py`` runs :func:`main`.
"""

from trizab.testing.sim.configuration import (
    PerverseElector,
    config_membership,
    electors,
    encode_config,
    snapshot_membership,
)
from trizab.testing.sim.invariants import LIVENESS_BOUND_MS, InvariantViolation
from trizab.testing.sim.network import SimNetwork
from trizab.testing.sim.runner import main, measure_failover, params_for, replay_command, run_schedule, soak
from trizab.testing.sim.simulation import Node, SimParams, Simulation
from trizab.testing.sim.storage import SimStorage

__all__ = [
    "LIVENESS_BOUND_MS",
    "InvariantViolation",
    "Node",
    "PerverseElector",
    "SimNetwork",
    "SimParams",
    "SimStorage",
    "Simulation",
    "config_membership",
    "electors",
    "encode_config",
    "main",
    "measure_failover",
    "params_for",
    "replay_command",
    "run_schedule",
    "snapshot_membership",
    "soak",
]
