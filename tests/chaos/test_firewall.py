"""compat.chaos.netns and compat.chaos.firewall: refusal outside a namespace, and real traffic inside one.

The real experiment (tests/chaos/fw_probe.py) runs in a private network namespace made with
``unshare --net``, so it needs root and iptables; CI has both, so it fails (never skips) without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compat.chaos import netns
from compat.chaos.firewall import Firewall, FirewallError, MemberPorts

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("fw_probe.py")
SIDS = (1, 2, 3)


def _members() -> list[MemberPorts]:
    return [MemberPorts(sid, 61000 + sid, 20000 + sid, 21000 + sid, 22000 + sid) for sid in SIDS]


def test_firewall_refuses_outside_a_private_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"iptables must not run here: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.delenv(netns.ENV_MARKER, raising=False)
    with pytest.raises(FirewallError, match="private network namespace"):
        Firewall(_members()).install()
    # A marker naming the namespace we are in (an exported variable leaking here) is not believed.
    monkeypatch.setenv(netns.ENV_MARKER, os.readlink("/proc/self/ns/net"))
    assert not netns.in_private_netns()
    with pytest.raises(FirewallError, match="private network namespace"):
        Firewall(_members()).install()


def test_firewall_validates_members() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Firewall([MemberPorts(1, 61001, 1, 2, 3), MemberPorts(2, 61001, 4, 5, 6)])
    with pytest.raises(ValueError, match=">= 1"):
        Firewall([MemberPorts(0, 61000, 1, 2, 3)])
    with pytest.raises(ValueError, match="harness's own group"):
        Firewall([MemberPorts(1, os.getgid(), 1, 2, 3)])
    with pytest.raises(FirewallError, match="not installed"):
        Firewall(_members()).heal()


def test_private_netns_command_wraps_the_command() -> None:
    command = netns.private_netns_command(["python", "-m", "x", "a b"])
    assert command[:3] == ["unshare", "--net", "--"]
    assert f"{netns.ENV_MARKER}={os.readlink('/proc/self/ns/net')}" in command
    assert command[-5:] == ["sh", "python", "-m", "x", "a b"]
    assert "ip link set lo up" in " ".join(command)
    # Run for real (cheap): inside, the marker is believed and loopback is up.
    ok, reason = netns.netns_supported()
    assert ok, f"this machine cannot run the chaos harness: {reason}"
    inside = subprocess.run(
        netns.private_netns_command(
            [
                sys.executable,
                "-c",
                "from compat.chaos.netns import in_private_netns; print(in_private_netns())",
            ]
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert inside.stdout.strip() == "True"
    assert not netns.in_private_netns()


def test_reexec_in_private_netns_replaces_the_process() -> None:
    ok, reason = netns.netns_supported()
    assert ok, f"this machine cannot run the chaos harness: {reason}"
    program = (
        "import os, sys\n"
        "from compat.chaos.netns import in_private_netns, reexec_in_private_netns\n"
        "print('before', in_private_netns(), flush=True)\n"
        "reexec_in_private_netns()\n"
        "print('after', in_private_netns(), sys.argv[1:])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "arg"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    # The same command line ran again, this time inside; nothing after the exec ran outside.
    assert result.stdout.splitlines() == ["before False", "before True", "after True ['arg']"]


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    ok, reason = netns.netns_supported()
    assert ok, f"the firewall needs a private network namespace with iptables: {reason}"
    result = subprocess.run(
        netns.private_netns_command([sys.executable, str(PROBE)]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"fw_probe failed:\n{result.stderr}\n{result.stdout}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _expect(phase: dict[str, Any], blocked: set[tuple[int, int]]) -> None:
    """Every ordered pair in ``blocked`` gets nothing through; every other pair everything."""
    for a in SIDS:
        for b in SIDS:
            if a == b:
                continue
            key = f"{a}->{b}"
            through = (a, b) not in blocked
            assert phase["own"][key] is through, f"{key} on a connection {a} opened: {phase}"
            assert phase["peers"][key] is through, f"{key} on a connection {b} opened: {phase}"
            # A handshake needs both directions.
            handshake = (a, b) not in blocked and (b, a) not in blocked
            assert (phase["connect"][key] == "ok") is handshake, f"new connection {key}: {phase}"
    for sid, closed in phase["closed"].items():
        assert not closed, f"a fault closed connections at {sid} (no FIN/RST may pass): {closed}"


@pytest.mark.slow
def test_baseline_and_healed_let_everything_through(probe: dict[str, Any]) -> None:
    _expect(probe["baseline"], set())
    _expect(probe["healed"], set())


@pytest.mark.slow
def test_cut_blocks_both_directions(probe: dict[str, Any]) -> None:
    _expect(probe["cut"], {(1, 2), (2, 1)})


@pytest.mark.slow
def test_one_way_blocks_only_one_direction(probe: dict[str, Any]) -> None:
    # 2 -> 1 data crosses on open connections, but 2's new connection to 1 cannot complete:
    # 1's SYN-ACK is a packet from 1 to 2, and the cut drops it.
    _expect(probe["one_way"], {(1, 2)})


@pytest.mark.slow
def test_isolate_and_partition(probe: dict[str, Any]) -> None:
    _expect(probe["isolate"], {(3, 1), (1, 3), (3, 2), (2, 3)})
    _expect(probe["partition"], {(1, 2), (2, 1), (1, 3), (3, 1)})


@pytest.mark.slow
def test_cut_clients_is_half_open(probe: dict[str, Any]) -> None:
    clients = probe["clients"]
    # Member 1's clients and the 1-2 peer link are untouched.
    assert clients["client_sees"]["c1"] == "data:from-server-c1"
    assert clients["server_got"]["c1"] == ["from-client-c1"]
    assert clients["peer_got"] == ["peer"]
    # Member 2's clients hear silence: no data, no FIN even though the server closed, no RST.
    assert clients["client_sees"]["c2"] == "timeout"
    assert clients["client_sees"]["srvclose"] == "timeout"
    assert clients["server_got"]["c2"] == []
    assert clients["new_connection"] == "timeout"
    # The server saw no FIN from the client that closed; its sockets stay established.
    assert clients["server_closed"] == {}
    assert clients["server_established"] == {"c2": True, "cliclose": True}
    # Nothing was torn down: once healed, TCP retransmits what was dropped.
    assert clients["after_heal_client_sees"] == "data:from-server-c2"
    assert clients["after_heal_server_got"] == ["from-client-c2"]
    assert clients["after_heal_server_closed"].get("cliclose") == "eof"


@pytest.mark.slow
def test_a_member_killed_behind_a_cut_is_silent(probe: dict[str, Any]) -> None:
    # Killed while cut from 2: its kernel's FINs (some from sockets no process owns any more)
    # reach 3 but not 2.
    orphan = probe["orphan"]
    assert {k: v for k, v in orphan["closed_at_2"].items() if k.startswith("or:")} == {}
    assert orphan["closed_at_3"]["or:1>3"] == "eof"
    assert orphan["closed_at_3"]["or:3>1"] == "eof"


@pytest.mark.slow
def test_heal_keeps_marking_and_close_removes_everything(probe: dict[str, Any]) -> None:
    after_heal = probe["rules_after_heal"]
    assert after_heal and all(rule.startswith("mangle:") and "CONNMARK" in rule for rule in after_heal)
    assert any("--gid-owner 61002" in rule for rule in after_heal)
    assert any("DROP" in rule for rule in probe["cut"]["rules"])
    assert probe["leftover_rules"] == []
