"""Emptying a server's tree between tests, as kazoo's own harness does instead of restarting.

:func:`wipe_tree` connects as ZooKeeper's superuser (the fixtures' servers are started with
:data:`SUPER_DIGEST`, the digest of ``super:test``, the password kazoo's harness gives Java), so
ACLs a test set cannot stop it, and deletes every znode outside ``/zookeeper``.  It needs
kazoo, imported when called: the fixtures are for kazoo users.
"""

from __future__ import annotations

__all__ = ["SUPER_AUTH", "SUPER_DIGEST", "wipe_tree"]

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
SUPER_AUTH = ("digest", "super:test")
WIPE_TIMEOUT_S = 10.0


def wipe_tree(hosts: str, timeout: float = WIPE_TIMEOUT_S) -> int:
    """Delete every znode but ``/zookeeper`` and its children; return how many top-level
    znodes went."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError

    client = KazooClient(hosts, auth_data=[SUPER_AUTH], timeout=timeout)
    client.start(timeout=timeout)
    try:
        gone = 0
        for child in client.get_children("/"):
            if child == "zookeeper":
                continue
            try:
                client.delete(f"/{child}", recursive=True)
            except NoNodeError:  # an ephemeral whose session ended meanwhile
                pass
            gone += 1
        return gone
    finally:
        client.stop()
        client.close()
