"""Experiment for tests/chaos/test_firewall.py: real TCP traffic through compat.chaos.firewall.

Theory of operation
-------------------
Run inside a private network namespace (the test starts it with
:func:`compat.chaos.netns.private_netns_command`); it refuses to run anywhere else.  Three fake
"members" are small Python processes, each under its own group id like a real ensemble member,
listening on a client, a quorum and an election port and driven over stdin/stdout with one JSON
command per line (never over the network, which is what is being cut).  Every connection starts
with a ``HELLO <label>`` line so both ends know it by name.  The probe itself (group 0) plays the
clients.

Each peer phase opens a connection from every member to every other member's quorum port, applies
one fault, sends a line each way on every connection, tries a new connection from every member to
every other member's election port, and reports which ordered pairs got through.  The client phase
checks the half-open behaviour of ``cut_clients``, and the orphan phase that a member killed behind
a cut sends nothing its peer can see.  The result is one JSON object on stdout.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Run as a script: make the repository importable (the test also sets PYTHONPATH).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from compat.chaos.firewall import Firewall, MemberPorts
from compat.chaos.netns import in_private_netns
from trizab.runtime.free_ports import free_ports

HOST = "127.0.0.1"
SIDS = (1, 2, 3)
GID_BASE = 61000
SETTLE = 0.5  # time for a line to cross loopback, generously
CONNECT_TIMEOUT = 1.0


# -- the member process -------------------------------------------------------------------------


def member_main(ports: list[int]) -> None:
    lock = threading.Lock()
    conns: dict[str, socket.socket] = {}
    received: dict[str, list[str]] = {}
    closed: dict[str, str] = {}
    closed_here: set[str] = set()

    def read(label: str, sock: socket.socket, reader: Any) -> None:
        try:
            for line in reader:
                with lock:
                    received.setdefault(label, []).append(line.strip())
            outcome = "eof"
        except ConnectionResetError:
            outcome = "rst"
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            if label not in closed_here:
                closed[label] = outcome

    def serve(listener: socket.socket) -> None:
        while True:
            sock, _ = listener.accept()
            reader = sock.makefile("r")
            hello = reader.readline().split()
            if len(hello) != 2 or hello[0] != "HELLO":
                sock.close()
                continue
            with lock:
                conns[hello[1]] = sock
            threading.Thread(target=read, args=(hello[1], sock, reader), daemon=True).start()

    def connect(label: str, port: int, timeout: float, results: dict[str, str]) -> None:
        try:
            sock = socket.create_connection((HOST, port), timeout=timeout)
        except TimeoutError:
            results[label] = "timeout"
            return
        except ConnectionRefusedError:
            results[label] = "refused"
            return
        sock.settimeout(None)
        sock.sendall(f"HELLO {label}\n".encode())
        with lock:
            conns[label] = sock
        threading.Thread(target=read, args=(label, sock, sock.makefile("r")), daemon=True).start()
        results[label] = "ok"

    for port in ports:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(64)
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)

    for line in sys.stdin:
        op = json.loads(line)
        reply: dict[str, Any] = {}
        if op["op"] == "connect":
            results: dict[str, str] = {}
            threads = [
                threading.Thread(target=connect, args=(label, port, op["timeout"], results))
                for label, port in op["targets"]
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            reply = {"results": results}
        elif op["op"] == "send":
            with lock:
                sock = conns[op["label"]]
            sock.sendall((op["data"] + "\n").encode())
        elif op["op"] == "close":
            with lock:
                closed_here.add(op["label"])
                sock = conns.pop(op["label"])
            sock.close()
        elif op["op"] == "state":
            with lock:
                reply = {"labels": sorted(conns), "received": dict(received), "closed": dict(closed)}
        print(json.dumps(reply), flush=True)


class Member:
    """A member process (own group id) and its command pipe."""

    def __init__(self, ports: MemberPorts) -> None:
        self.ports = ports
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "member",
                str(ports.client_port),
                str(ports.quorum_port),
                str(ports.election_port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            group=ports.gid,
        )
        assert json.loads(self._readline()) == {"ready": True}

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"member {self.ports.sid} exited ({self.proc.poll()})")
        return line

    def call(self, **op: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(op) + "\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._readline())
        return result

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


# -- the experiments ----------------------------------------------------------------------------


def pairs() -> list[tuple[int, int]]:
    return [(a, b) for a in SIDS for b in SIDS if a != b]


def wait_registered(members: dict[int, Member], labels: dict[int, set[str]]) -> None:
    """Until every acceptor knows every label (the HELLO lines crossed before the fault)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(labels[sid] <= set(members[sid].call(op="state")["labels"]) for sid in labels):
            return
        time.sleep(0.02)
    raise RuntimeError("connections not registered in time")


def peer_phase(name: str, members: dict[int, Member], fault: Any, fw: Firewall) -> dict[str, Any]:
    """Open connections, apply ``fault``, and report what crosses each ordered pair."""
    own: dict[tuple[int, int], str] = {(a, b): f"{name}:{a}>{b}" for a, b in pairs()}
    for (a, b), label in own.items():
        result = members[a].call(
            op="connect", targets=[[label, members[b].ports.quorum_port]], timeout=CONNECT_TIMEOUT
        )
        assert result["results"][label] == "ok", result
    wait_registered(members, {b: {own[a, b] for a in SIDS if a != b} for b in SIDS})
    fault()
    rules = fw.rules()
    for (a, b), label in own.items():
        members[a].call(op="send", label=label, data=f"{a}")  # a -> b on a connection a opened
        members[b].call(op="send", label=label, data=f"{b}")  # b -> a on a connection a opened
    # New connections from every member to every other, all at once (each may wait the timeout).
    new_label = {(a, b): f"{name}:new:{a}>{b}" for a, b in pairs()}
    replies: dict[int, dict[str, Any]] = {}

    def connect_all(a: int) -> None:
        targets = [[new_label[a, b], members[b].ports.election_port] for b in SIDS if b != a]
        replies[a] = members[a].call(op="connect", targets=targets, timeout=CONNECT_TIMEOUT)

    threads = [threading.Thread(target=connect_all, args=(a,)) for a in SIDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(SETTLE)
    state = {sid: members[sid].call(op="state") for sid in SIDS}
    fw.heal()
    report: dict[str, Any] = {"rules": rules, "own": {}, "peers": {}, "connect": {}}
    for a, b in pairs():
        # "own": a's line reached b on the connection a opened; "peers": on the one b opened.
        report["own"][f"{a}->{b}"] = f"{a}" in state[b]["received"].get(own[a, b], [])
        report["peers"][f"{a}->{b}"] = f"{a}" in state[b]["received"].get(own[b, a], [])
        report["connect"][f"{a}->{b}"] = replies[a]["results"][new_label[a, b]]
    report["closed"] = {sid: state[sid]["closed"] for sid in SIDS}
    return report


def recv_outcome(sock: socket.socket, timeout: float) -> str:
    """What a client sees within ``timeout``: data, eof, rst or silence."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "rst"
    return f"data:{data.decode().strip()}" if data else "eof"


def client_connect(port: int, label: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.sendall(f"HELLO {label}\n".encode())
    return sock


def established_peers(port: int) -> set[int]:
    """Remote ports of the established TCP sockets whose local port is ``port`` (from ss)."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(line.split()[-1].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


def client_phase(members: dict[int, Member], fw: Firewall) -> dict[str, Any]:
    """cut_clients(2): silence both ways, nothing closed, other members and peers untouched."""
    m1, m2 = members[1], members[2]
    c1 = client_connect(m1.ports.client_port, "c1")
    c2 = client_connect(m2.ports.client_port, "c2")
    srv_close = client_connect(m2.ports.client_port, "srvclose")
    cli_close = client_connect(m2.ports.client_port, "cliclose")
    m1.call(op="connect", targets=[["cc:1>2", m2.ports.quorum_port]], timeout=CONNECT_TIMEOUT)
    wait_registered(members, {1: {"c1"}, 2: {"c2", "srvclose", "cliclose", "cc:1>2"}})
    client_ports = {label: sock.getsockname()[1] for label, sock in (("c2", c2), ("cliclose", cli_close))}

    fw.cut_clients(2)
    report: dict[str, Any] = {"rules": fw.rules()}
    for sock, label in ((c1, "c1"), (c2, "c2")):
        sock.sendall(f"from-client-{label}\n".encode())
    m1.call(op="send", label="c1", data="from-server-c1")
    m2.call(op="send", label="c2", data="from-server-c2")
    m2.call(op="close", label="srvclose")  # the server closes: its FIN must not reach the client
    cli_close.close()  # the client closes: its FIN must not reach the server
    m1.call(op="send", label="cc:1>2", data="peer")
    try:
        client_connect(m2.ports.client_port, "new", timeout=CONNECT_TIMEOUT).close()
        report["new_connection"] = "ok"
    except TimeoutError:
        report["new_connection"] = "timeout"
    except OSError as exc:
        report["new_connection"] = type(exc).__name__
    time.sleep(SETTLE)
    report["client_sees"] = {
        "c1": recv_outcome(c1, SETTLE),
        "c2": recv_outcome(c2, SETTLE),
        "srvclose": recv_outcome(srv_close, SETTLE),
    }
    state1, state2 = m1.call(op="state"), m2.call(op="state")
    report["server_got"] = {"c1": state1["received"].get("c1", []), "c2": state2["received"].get("c2", [])}
    report["peer_got"] = state2["received"].get("cc:1>2", [])
    report["server_closed"] = state2["closed"]
    # The server's side of c2 and cliclose, as the kernel sees it: still established.
    established = established_peers(m2.ports.client_port)
    report["server_established"] = {label: port in established for label, port in client_ports.items()}

    fw.heal()
    # TCP retransmits what was dropped, so the half-open connection recovers once healed.
    report["after_heal_client_sees"] = recv_outcome(c2, 10.0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state2 = m2.call(op="state")
        if state2["received"].get("c2") and "cliclose" in state2["closed"]:
            break
        time.sleep(0.1)
    report["after_heal_server_got"] = state2["received"].get("c2", [])
    report["after_heal_server_closed"] = state2["closed"]
    for sock in (c1, c2, srv_close):
        sock.close()
    return report


def orphan_phase(members: dict[int, Member], fw: Firewall) -> dict[str, Any]:
    """cut(1, 2), then kill 1: the FINs its kernel sends reach 3 but not 2."""
    labels = {"or:1>2", "or:2>1", "or:1>3", "or:3>1"}
    for label in sorted(labels):
        a, b = int(label[3]), int(label[5])
        members[a].call(
            op="connect", targets=[[label, members[b].ports.quorum_port]], timeout=CONNECT_TIMEOUT
        )
    wait_registered(members, {2: {"or:1>2"}, 1: {"or:2>1", "or:3>1"}, 3: {"or:1>3"}})
    fw.cut(1, 2)
    members[1].kill()
    time.sleep(2 * SETTLE)
    report = {
        "closed_at_2": members[2].call(op="state")["closed"],
        "closed_at_3": members[3].call(op="state")["closed"],
    }
    fw.heal()
    return report


def main() -> None:
    if not in_private_netns():
        raise SystemExit("fw_probe: not in a private network namespace (use private_netns_command)")
    ports = free_ports(3 * len(SIDS))
    specs = [
        MemberPorts(sid, GID_BASE + sid, ports[3 * k], ports[3 * k + 1], ports[3 * k + 2])
        for k, sid in enumerate(SIDS)
    ]
    fw = Firewall(specs)
    fw.install()  # before the members start: every connection gets its opener's mark
    members = {spec.sid: Member(spec) for spec in specs}
    results: dict[str, Any] = {}
    try:
        results["baseline"] = peer_phase("base", members, lambda: None, fw)
        results["cut"] = peer_phase("cut", members, lambda: fw.cut(1, 2), fw)
        results["one_way"] = peer_phase("oneway", members, lambda: fw.cut(1, 2, one_way=True), fw)
        results["isolate"] = peer_phase("iso", members, lambda: fw.isolate(3), fw)
        results["partition"] = peer_phase("part", members, lambda: fw.partition([{1}, {2, 3}]), fw)
        results["healed"] = peer_phase("healed", members, lambda: None, fw)
        results["clients"] = client_phase(members, fw)
        results["rules_after_heal"] = fw.rules()
        results["orphan"] = orphan_phase(members, fw)
    finally:
        for member in members.values():
            if member.proc.poll() is None:
                member.kill()
        fw.close()
    after = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    # close() leaves the built-in chains empty (the tables themselves stay once created).
    results["leftover_rules"] = [
        line for line in after.splitlines() if "TRIZAB" in line or line.startswith("-")
    ]
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "member":
        member_main([int(p) for p in sys.argv[2:]])
    else:
        main()
