"""The two servers a differential run compares, configured identically.

Both get the same zoo.cfg lines: the super digest the runner's admin session
uses to wipe the tree between examples, TTL nodes enabled
(``extendedTypesEnabled``), and every four-letter word whitelisted.
ZooKeeper's container/TTL reaper (``ContainerManager``) runs on a timer
(``znode.container.checkIntervalMs``, default 60 s); it is set to an hour so
that it never fires in the middle of an example, where its effect would depend
on timing rather than on the operations.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from compat.differential.runner import SUPER_DIGEST_CONFIG

CONFIG_LINES = (
    SUPER_DIGEST_CONFIG,
    "extendedTypesEnabled=true",
    "4lw.commands.whitelist=*",
    "maxClientCnxns=0",
)
APACHE_JAVA_PROPERTIES = ("-Dznode.container.checkIntervalMs=3600000",)


@contextlib.contextmanager
def apache_server(
    extra_config: tuple[str, ...] = (), java_properties: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    """A running Apache ZooKeeper 3.8 standalone; yields its (host, port).

    ``java_properties`` are more ``-D`` options for its JVM (a JAAS file, for instance).
    """
    from testkit.apache_zk import HOST, ApacheZooKeeper

    with ApacheZooKeeper(
        extra_config=[*CONFIG_LINES, *extra_config],
        java_properties=[*APACHE_JAVA_PROPERTIES, *java_properties],
    ) as zk:
        yield (HOST, zk.client_port)


# The same container reaping as ZooKeeper above: only ContainerManager's periodic check, never
# during an example (trizab's default also reaps a container the moment it empties; that is a
# deliberate difference, compat/README.md).
TRIZAB_CONFIG_LINES = ("znode.container.checkIntervalMs=3600000", "reapContainersImmediately=false")


@contextlib.contextmanager
def trizab_server(extra_config: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """A running ``trizab serve`` (memory storage, in a temporary directory); yields its (host, port)."""
    from testkit.process import TrizabProcess

    lines = [*CONFIG_LINES, *TRIZAB_CONFIG_LINES, *extra_config]
    with (
        tempfile.TemporaryDirectory(prefix="trizab-diff-") as workdir,
        TrizabProcess(Path(workdir), extra_config=lines, storage="memory") as proc,
    ):
        assert proc.port is not None
        yield (proc.host, proc.port)


@contextlib.contextmanager
def ensemble(kinds: tuple[str, ...]) -> Iterator[list[tuple[str, int]]]:
    """An ensemble whose members run the programs in ``kinds`` (``zookeeper``/``trizab``, one per
    member), configured as the servers above; yields the members' (host, port), in sid order.

    Raises AssertionError, saying how, if the members do not form one ensemble.
    """
    from testkit.rolling_ensemble import HOST, RollingEnsemble

    with RollingEnsemble(
        len(kinds),
        extra_config=(*CONFIG_LINES, *TRIZAB_CONFIG_LINES),
        java_properties=APACHE_JAVA_PROPERTIES,
    ) as ens:
        ens.start(kinds, timeout=60)  # type: ignore[arg-type]
        yield [(HOST, slot.client_port) for slot in ens.slots]
