"""trizab's pytest plugin, used as a kazoo user would: test modules written with pytester, run by pytest.

The plugin is loaded by its ``pytest11`` entry point (the package is installed), as in a
user's project; nothing here loads it by hand.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SERVER_TESTS = """
import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

SEEN = {}


def test_crud(trizab_server, kazoo_client):
    assert trizab_server.hosts == trizab_server.address
    kazoo_client.create("/app/config", b"v1", makepath=True)
    kazoo_client.set("/app/config", b"v2")
    data, stat = kazoo_client.get("/app/config")
    assert (data, stat.version) == (b"v2", 1)
    kazoo_client.create("/app/lock-", b"", ephemeral=True, sequence=True)
    assert len(kazoo_client.get_children("/app")) == 2
    kazoo_client.delete("/app/config")
    assert kazoo_client.exists("/app/config") is None
    kazoo_client.create("/app/kept", b"")
    # Nobody may delete /app's children now; the reset between tests still empties the tree.
    kazoo_client.set_acls("/app", [make_acl("world", "anyone", read=True)])
    with pytest.raises(NoAuthError):
        kazoo_client.delete("/app/kept")
    SEEN["server"] = trizab_server.pid


def test_function_scope_is_fresh_and_reused(trizab_server, kazoo_client):
    assert kazoo_client.get_children("/") == ["zookeeper"]
    assert trizab_server.pid == SEEN["server"]  # the same process, its tree emptied


def test_a_killed_server_is_revived_for_the_next_test(trizab_server):
    trizab_server.kill()


def test_after_the_kill(trizab_server, kazoo_client):
    assert trizab_server.pid != SEEN["server"]
    assert kazoo_client.get_children("/") == ["zookeeper"]


def test_session_scope_keeps_state(trizab_server_session, kazoo_client):
    kazoo_client.create("/kept", b"1")
    SEEN["session"] = trizab_server_session.pid


def test_session_scope_reused(trizab_server_session, kazoo_client_factory):
    other = kazoo_client_factory()
    assert other.get("/kept")[0] == b"1"
    assert trizab_server_session.pid == SEEN["session"]
"""

ENSEMBLE_TESTS = """
import socket
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

SEEN = {}


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def connected_member(client, ensemble):
    port = client._connection._socket.getpeername()[1]
    return next(m for m in ensemble.members if m.port == port)


def test_connect_string_names_three_members(trizab_ensemble, kazoo_client):
    assert trizab_ensemble.hosts == ",".join(f"127.0.0.1:{m.port}" for m in trizab_ensemble.members)
    assert len(trizab_ensemble.hosts.split(",")) == 3
    assert sorted(m.mode for m in trizab_ensemble.members) == ["follower", "follower", "leader"]
    kazoo_client.create("/x", b"1")


def test_kill_and_restart_a_member_the_client_reconnects(trizab_ensemble, kazoo_client):
    assert kazoo_client.get_children("/") == ["zookeeper"]  # reset since the last test
    kazoo_client.create("/before", b"1")
    states = []
    kazoo_client.add_listener(states.append)
    victim = connected_member(kazoo_client, trizab_ensemble)
    session = kazoo_client.client_id
    trizab_ensemble.kill(victim.sid)
    wait_for(lambda: KazooState.SUSPENDED in states and kazoo_client.connected)
    kazoo_client.retry(kazoo_client.create, "/after", b"2")
    assert kazoo_client.client_id == session  # the same session, through another member
    assert connected_member(kazoo_client, trizab_ensemble) is not victim
    trizab_ensemble.restart(victim.sid)
    assert victim.mode in ("leader", "follower")
    only_victim = KazooClient(victim.address)
    only_victim.start(timeout=10)
    try:
        only_victim.sync("/")
        assert only_victim.get("/after")[0] == b"2"  # it caught up after its restart
    finally:
        only_victim.stop()
        only_victim.close()


def test_partitioned_member_loses_quorum_the_others_serve(trizab_ensemble, kazoo_client_factory):
    cut = trizab_ensemble.leader()
    others = [m for m in trizab_ensemble.members if m is not cut]
    trizab_ensemble.partition(cut.sid)
    wait_for(lambda: cut.mode is None)  # it stepped down: no quorum, no clients served
    leader = trizab_ensemble.wait_serving(15)
    assert leader is not cut and leader in others
    majority = kazoo_client_factory(",".join(m.address for m in others))
    majority.create("/while-cut", b"1")
    lonely = KazooClient(cut.address, timeout=2)
    with pytest.raises((KazooTimeoutError, ConnectionLoss, SessionExpiredError)):
        lonely.start(timeout=2)
        lonely.create("/lonely", b"")
    lonely.stop()
    lonely.close()
    trizab_ensemble.restart(cut.sid, kill=True)  # while cut: comes back empty, cannot serve yet
    assert cut.running and cut.mode is None
    trizab_ensemble.heal()
    trizab_ensemble.wait_serving(15)
    assert cut.mode == "follower"
    rejoined = kazoo_client_factory(cut.address)
    rejoined.sync("/")
    assert rejoined.get("/while-cut")[0] == b"1"  # synced from the leader
    assert rejoined.exists("/lonely") is None
    # Its restart kept it behind its proxies: cut again, it stops.
    trizab_ensemble.partition(cut.sid)
    wait_for(lambda: cut.mode is None)


def test_partition_with_clients_cuts_proxied_clients_too(trizab_ensemble, kazoo_client_factory):
    client = kazoo_client_factory(trizab_ensemble.proxied_hosts)
    proxy_port = client._connection._socket.getpeername()[1]
    mine = next(m for m in trizab_ensemble.members if trizab_ensemble.client_links[m.sid].port == proxy_port)
    session = client.client_id
    states = []
    client.add_listener(states.append)
    trizab_ensemble.partition(mine.sid, clients=True)
    wait_for(lambda: KazooState.SUSPENDED in states and client.connected)
    client.retry(client.create, "/moved")
    assert client.client_id == session  # the same session, through another member's proxy
    assert client._connection._socket.getpeername()[1] != proxy_port
    wait_for(lambda: mine.mode is None)
    assert "not currently serving" in mine.command("srvr")  # directly, it answers
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=0.5) as through_proxy:
        through_proxy.sendall(b"srvr")
        with pytest.raises(TimeoutError):
            through_proxy.recv(100)  # through its proxy, nothing comes back


def test_a_member_synced_by_snapshot_keeps_its_proxies(trizab_ensemble, kazoo_client):
    # A follower the client does not use: killing its own member would fail the creates in
    # flight with ConnectionLoss (seen once in CI).
    mine = connected_member(kazoo_client, trizab_ensemble)
    follower = next(m for m in trizab_ensemble.followers() if m is not mine)
    trizab_ensemble.kill(follower.sid)
    for batch in range(11):  # more than the leader keeps in memory for a DIFF: a SNAP follows
        for result in [kazoo_client.create_async(f"/n{batch}-{k}") for k in range(100)]:
            result.get(10)
    trizab_ensemble.start_member(follower.sid)

    def server_lines(text):
        lines = [line for line in text.splitlines() if line.startswith("server.")]
        return sorted(line.rsplit(":participant", 1)[0] for line in lines)

    # Its own zoo.cfg (the others behind proxies), not the leader's view in the snapshot.
    assert server_lines(follower.command("conf")) == server_lines(follower.config_path.read_text())


def test_pause_and_resume(trizab_ensemble, kazoo_client):
    mine = connected_member(kazoo_client, trizab_ensemble)
    follower = next(m for m in trizab_ensemble.followers() if m is not mine)
    trizab_ensemble.pause(follower.sid)
    assert follower.mode is None
    kazoo_client.create("/paused", b"")  # two of three still make a quorum
    trizab_ensemble.resume(follower.sid)
    trizab_ensemble.partition(follower.sid)  # left for the next test's reset to undo
    SEEN["members"] = [m.pid for m in trizab_ensemble.members]


def test_reset_heals_and_empties(trizab_ensemble, kazoo_client):
    assert not trizab_ensemble.isolated
    assert sorted(m.mode for m in trizab_ensemble.members) == ["follower", "follower", "leader"]
    assert [m.pid for m in trizab_ensemble.members] == SEEN["members"]  # reused, not restarted
    assert kazoo_client.get_children("/") == ["zookeeper"]


def test_session_ensemble_keeps_state(trizab_ensemble_session, kazoo_client):
    kazoo_client.create("/kept", b"1")
    SEEN["session"] = [m.pid for m in trizab_ensemble_session.members]


def test_session_ensemble_reused(trizab_ensemble_session, kazoo_client):
    assert kazoo_client.get("/kept")[0] == b"1"
    assert [m.pid for m in trizab_ensemble_session.members] == SEEN["session"]
"""

HARNESS_TESTS = """
import kazoo.testing.harness as harness
from kazoo.testing import KazooTestCase


class TestWithKazoosHarness(KazooTestCase):
    def test_runs_against_trizab(self):
        from trizab.testing.kazoo_harness import TrizabCluster

        assert isinstance(self.cluster, TrizabCluster)
        self.client.create("/node", b"data")
        assert self.client.get("/node")[0] == b"data"
        assert self.client.server_version()[:2] == (3, 8)

    def test_member_stop_and_run(self):
        self.client.create("/kept", b"1")
        self.cluster[0].stop()
        self.cluster[0].run()
        self.client.retry(self.client.get, "/")
        assert self.client.retry(self.client.get, "/kept")[0] == b"1"
"""


def test_server_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_server=SERVER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--durations=0")
    result.assert_outcomes(passed=6)


def test_ensemble_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_ensemble=ENSEMBLE_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--durations=0")
    result.assert_outcomes(passed=9)


def test_kazoo_harness_switched_by_one_ini_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ntrizab_kazoo_harness = true\n")
    pytester.makepyfile(test_user_harness=HARNESS_TESTS)
    monkeypatch.setenv("ZOOKEEPER_CLUSTER_SIZE", "1")
    monkeypatch.delenv("TRIZAB_KAZOO_HARNESS", raising=False)
    for name in ("ZOOKEEPER_PATH", "ZOOKEEPER_CLASSPATH", "ZOOKEEPER_VERSION"):
        monkeypatch.delenv(name, raising=False)  # no Java: only trizab can pass
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_harness_switch_off_by_default_and_env_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_which="""
import os
import kazoo.testing.harness as harness
from trizab.testing import kazoo_harness

def test_which():
    swapped = harness.get_global_cluster is kazoo_harness.get_global_cluster
    assert swapped == (os.environ["EXPECT"] == "trizab")
"""
    )
    # In-process runs (nothing starts a server here): the switch is undone when each run ends.
    monkeypatch.delenv("TRIZAB_KAZOO_HARNESS", raising=False)
    monkeypatch.setenv("EXPECT", "kazoo")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECT", "trizab")
    by_name = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "trizab.testing.kazoo_harness")
    by_name.assert_outcomes(passed=1)
    monkeypatch.setenv("TRIZAB_KAZOO_HARNESS", "1")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\ntrizab_kazoo_harness = true\n")
    monkeypatch.setenv("TRIZAB_KAZOO_HARNESS", "0")
    monkeypatch.setenv("EXPECT", "kazoo")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setenv("TRIZAB_KAZOO_HARNESS", "maybe")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*TRIZAB_KAZOO_HARNESS='maybe': expected 1 or 0*"])
    import kazoo.testing.harness as harness

    from trizab.testing import kazoo_harness

    assert harness.get_global_cluster is not kazoo_harness.get_global_cluster  # undone


def test_loading_the_plugin_starts_and_imports_nothing() -> None:
    code = (
        "import sys, trizab.testing.pytest_plugin\n"
        "print(sorted(m for m in ('kazoo', 'trio', 'trizab.testing.process') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "trizab"]
    assert plugin.value == "trizab.testing.pytest_plugin"
