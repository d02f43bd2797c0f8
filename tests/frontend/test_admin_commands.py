"""The AdminServer's command maps (frontend/admin_commands.py), from a hand-made view."""

from __future__ import annotations

import attrs
from trizab.frontend import admin_commands as ac
from trizab.frontend import fourletter


def _snapshot() -> fourletter.Snapshot:
    return fourletter.Snapshot(
        version="3.8.4-trizab-0.1.0, built on trizab",
        mode="follower",
        read_only=False,
        zxid=0x2_0000_0005,
        node_count=5,
        approximate_data_size=10,
        outstanding_requests=0,
        stats=fourletter.ServerStats(),
        connections=[fourletter.ConnectionInfo("127.0.0.1:5000", 1, 0, 3, 3)],  # no session yet
        sessions={7: (10_000, 123_000)},
        ephemerals_by_session={7: ["/e"], 8: []},
        watches_by_session={7: ["/e"]},
        watches_by_path={"/e": [7]},
        conf=[("clientPort", "2181"), ("dataDir", "/d"), ("serverId", "2"), ("membership: ", None)],
        environment=[("host.name", "h")],
    )


MEMBER = ac.MemberView(
    my_id=2,
    is_leader=False,
    leader_id=1,
    leader_host="10.0.0.1",
    voting_view={1: ac.ServerAddress("10.0.0.1:2888", "10.0.0.1:3888", "", True)},
    quorum_host="::1",
    quorum_port=2889,
    election_host="::1",
    election_port=3889,
    client_address="127.0.0.1:2181",
    voting=True,
    zab_state="broadcast",
)


def _view(**changes: object) -> ac.AdminView:
    view = ac.AdminView(_snapshot(), True, MEMBER, None, 0x2_0000_0001, 1_700_000_000)
    return attrs.evolve(view, **changes)


def test_an_electing_member_answers_only_the_commands_that_need_no_server() -> None:
    electing = _view(serving=False)
    assert ac.run("srvr", lambda: electing, {}) == {"command": "srvr", "error": ac.NOT_SERVING}
    assert ac.run("envi", lambda: electing, {})["command"] == "environment"
    assert ac.run("zabstate", lambda: electing, {}) == {
        "voting": False,
        "zabstate": "",
        "command": "zabstate",
        "error": None,
    }
    assert ac.run("mntr", lambda: electing, {})["server_state"] == "follower"


def test_member_commands() -> None:
    zab = ac.run("zabstate", _view, {})
    assert zab["last_zxid"] == "0x200000005" and (zab["zab_epoch"], zab["zab_counter"]) == (2, 5)
    assert zab["quorum_address"]["one"] == "[::1]:2889"
    assert zab["quorum_address"]["all_host_strings"] == ["::1"]
    assert ac.run("lead", _view, {}) == {
        "is_leader": False,
        "leader_id": 1,
        "leader_ip": "10.0.0.1",
        "command": "leader",
        "error": None,
    }
    view = ac.run("voting_view", _view, {})["current_config"]
    assert view == {
        "1": {
            "server_addresses": ["10.0.0.1:2888"],
            "election_addresses": ["10.0.0.1:3888"],
            "client_address": "",
            "learner_type": "participant",
        }
    }
    # A follower expires no sessions (the leader does), as ZooKeeper's LearnerSessionTracker.
    dump = ac.run("dump", _view, {})
    assert dump["expiry_time_to_session_ids"] == {}
    assert dump["session_id_to_ephemeral_paths"] == {"7": ["/e"]}
    standalone = ac.run("dump", lambda: _view(member=None), {})
    assert standalone["expiry_time_to_session_ids"] == {"123000": [7]}
    assert ac.run("lsnp", _view, {})["zxid"] == "200000001"
    assert ac.run("lsnp", lambda: _view(last_snapshot_zxid=None), {})["zxid"] == "ffffffffffffffff"


def test_connections_without_a_session_are_brief_and_conf_is_typed() -> None:
    cons = ac.run("cons", _view, {})["connections"]
    assert set(cons[0]) == {
        "remote_socket_address",
        "interest_ops",
        "outstanding_requests",
        "packets_received",
        "packets_sent",
    }
    conf = ac.run("config", _view, {})
    assert (conf["client_port"], conf["data_dir"], conf["server_id"]) == (2181, "/d", 2)
    assert conf["tick_time"] == -1  # not in the 4lw lines given here


def test_trace_mask_and_unknown_commands() -> None:
    view = _view()
    assert ac.run("stmk", lambda: view, {"traceMask": "12"})["tracemask"] == 12
    assert ac.run("gtmk", lambda: view, {})["tracemask"] == 12
    assert ac.run("stmk", lambda: view, {"traceMask": "x"})["error"].endswith("got x")
    assert ac.run("stmk", lambda: view, {})["error"] == "setTraceMask requires long traceMask argument"
    called = []
    assert ac.run("nope", lambda: called.append(1) or view, {}) == {
        "command": "nope",
        "error": "Unknown command: nope",
    }
    assert called == []
