"""SASL DIGEST-MD5 for clients on a real server (in process), with kazoo's sasl_options."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.security import make_acl, make_digest_acl

from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.server.sasl_digest import DigestMD5Client
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_bob="bob_secret"
    user_alice="alice_secret";
};
"""
SASL_PROVIDER = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"


@pytest.fixture
def jaas(tmp_path: Path) -> Path:
    path = tmp_path / "jaas.conf"
    path.write_text(JAAS)
    return path


@asynccontextmanager
async def running(lines: list[str]) -> AsyncIterator[int]:
    """An in-process server from zoo.cfg ``lines`` (memory storage); yields its client port."""
    text = "\n".join(["tickTime=200", "storage=memory", "clientPort=0", *lines]) + "\n"
    server = rt.Server(cfg.parse(text, read_myid=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server.addresses[0][1]
        finally:
            nursery.cancel_scope.cancel()


def sasl(user: str, password: str) -> dict[str, Any]:
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": user, "password": password}}


@contextmanager
def kazoo(port: int, **kw: Any) -> Iterator[KazooClient]:
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=5, connection_retry={"max_tries": 1}, **kw)
    client.start(timeout=5)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def start_fails(port: int, **kw: Any) -> BaseException:
    """The error of a client's first request (kazoo's start() returns before SASL is done)."""
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=5, connection_retry={"max_tries": 1}, **kw)
    try:
        client.start(timeout=5)
        client.exists("/")
    except Exception as exc:
        return exc
    finally:
        client.stop()
        client.close()
    raise AssertionError("the client connected")


async def in_thread(fn: Any) -> Any:
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


async def test_sasl_user_creates_a_node_only_it_can_read(jaas: Path) -> None:
    async with running([SASL_PROVIDER, f"java.security.auth.login.config={jaas}"]) as port:

        def scenario() -> None:
            with kazoo(port, **sasl("bob", "bob_secret")) as bob:
                assert bob.client_info if hasattr(bob, "client_info") else True
                bob.create("/bob", b"x", acl=[make_acl("sasl", "bob", all=True)])
                assert bob.get("/bob")[0] == b"x"
                # The auth scheme expands to the sasl id.
                bob.create("/bob-auth", acl=[make_acl("auth", "", all=True)])
                assert bob.get_acls("/bob-auth")[0][0].id.scheme == "sasl"
                assert bob.get_acls("/bob-auth")[0][0].id.id == "bob"
            with kazoo(port, **sasl("alice", "alice_secret")) as alice:
                with pytest.raises(NoAuthError):
                    alice.get("/bob")
            with kazoo(port) as anonymous:
                with pytest.raises(NoAuthError):
                    anonymous.get("/bob")
            # The JAAS user "super" matches every sasl ACL (SASLAuthenticationProvider.matches).
            with kazoo(port, **sasl("super", "super_secret")) as sup:
                assert sup.get("/bob")[0] == b"x"

        await in_thread(scenario)


async def test_wrong_password_is_auth_failed_and_not_logged(
    jaas: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running([SASL_PROVIDER, f"java.security.auth.login.config={jaas}"]) as port:
        with caplog.at_level(logging.INFO):
            exc = await in_thread(lambda: start_fails(port, **sasl("bob", "guessed-password")))
            assert isinstance(exc, AuthFailedError)
            exc = await in_thread(lambda: start_fails(port, **sasl("nobody", "x")))
            assert isinstance(exc, AuthFailedError)
    assert "failed to SASL authenticate" in caplog.text
    assert "guessed-password" not in caplog.text and "bob_secret" not in caplog.text


async def test_sasl_scheme_needs_its_provider(jaas: Path) -> None:
    # Without authProvider.N=...SASLAuthenticationProvider, an ACL naming sasl is invalid (as in
    # ZooKeeper); SASL login still works (the JAAS Server section makes the SASL server).
    async with running([f"java.security.auth.login.config={jaas}"]) as port:

        def scenario() -> None:
            with kazoo(port, **sasl("bob", "bob_secret")) as bob:
                with pytest.raises(InvalidACLError):
                    bob.create("/n", acl=[make_acl("sasl", "bob", all=True)])

        await in_thread(scenario)


async def test_super_password_property_replaces_the_jaas_one(jaas: Path) -> None:
    lines = [
        SASL_PROVIDER,
        f"java.security.auth.login.config={jaas}",
        "SASLAuthenticationProvider.superPassword=from-the-property",
    ]
    async with running(lines) as port:
        assert await in_thread(lambda: transcript(port, [("sasl", ("super", "from-the-property"))])) == [
            0,
            "open",
        ]
        assert await in_thread(lambda: transcript(port, [("sasl", ("super", "super_secret"))])) == [
            -115,
            "closed",
        ]


async def test_super_user(jaas: Path) -> None:
    lines = [SASL_PROVIDER, f"java.security.auth.login.config={jaas}", "zookeeper.superUser=alice"]
    async with running(lines) as port:

        def scenario() -> None:
            with kazoo(port, auth_data=[("digest", "d:pw")]) as d:
                d.create("/digest-only", b"y", acl=[make_digest_acl("d", "pw", all=True)])
            with kazoo(port, **sasl("bob", "bob_secret")) as bob:
                with pytest.raises(NoAuthError):
                    bob.get("/digest-only")
            with kazoo(port, **sasl("alice", "alice_secret")) as alice:
                assert alice.get("/digest-only")[0] == b"y"

        await in_thread(scenario)


def transcript(port: int, steps: list[tuple[str, Any]]) -> list[Any]:
    """A raw client session: the reply code of each step, then "closed" once the server hangs up.

    Steps: ("sasl", (user, password)) runs DIGEST-MD5 (our client side) and records the code of
    its last reply; ("auth", (scheme, bytes)) is addauth; ("exists", path) and ("whoami", None).
    """

    def frame(*records: object) -> bytes:
        body = b"".join(jute.encode(rec) for rec in records)
        return struct.pack(">i", len(body)) + body

    def read_frame(sock: socket.socket) -> bytes | None:
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            data += chunk
        return data[4:]

    out: list[Any] = []
    xid = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(r.ConnectRequest(0, 0, 10_000, 0, bytes(16), False)))
        assert read_frame(sock) is not None
        for kind, arg in steps:
            xid += 1
            if kind == "sasl":
                client = DigestMD5Client(arg[0], arg[1], cnonce=b"cnonce-for-tests")
                token = client.initial()
                code: Any = None
                while True:
                    sock.sendall(frame(r.RequestHeader(xid, OpCode.SASL), r.GetSASLRequest(token)))
                    reply = read_frame(sock)
                    if reply is None:
                        code = "closed"
                        break
                    header, pos = jute.decode_prefix(r.ReplyHeader, reply)
                    code = header.err
                    if code != 0:
                        break
                    challenge = jute.decode(r.SetSASLResponse, reply[pos:]).token
                    token = client.evaluate(challenge)
                    if client.complete:
                        break
                out.append(code)
                if code == "closed":
                    return out
                continue
            if kind == "auth":
                sock.sendall(frame(r.RequestHeader(-4, OpCode.AUTH), r.AuthPacket(0, arg[0], arg[1])))
            elif kind == "exists":
                sock.sendall(frame(r.RequestHeader(xid, OpCode.EXISTS), r.ExistsRequest(arg, False)))
            elif kind == "whoami":
                sock.sendall(frame(r.RequestHeader(xid, OpCode.WHO_AM_I)))
            reply = read_frame(sock)
            if reply is None:
                out.append("closed")
                return out
            header, pos = jute.decode_prefix(r.ReplyHeader, reply)
            if kind == "whoami" and header.err == 0:
                response = jute.decode(r.WhoAmIResponse, reply[pos:])
                out.append(sorted((i.auth_scheme, i.user) for i in response.client_info))
            else:
                out.append(header.err)
        # The server may close right after its last reply; see whether it did.
        sock.settimeout(0.5)
        try:
            out.append("closed" if sock.recv(1) == b"" else "open")
        except TimeoutError:
            out.append("open")
        except ConnectionResetError:
            out.append("closed")
    return out


BOB = ("bob", "bob_secret")
# (zoo.cfg lines, steps, expected): the same as Apache ZooKeeper 3.8 answers (test_same_as_apache).
SCENARIOS: list[tuple[list[str], list[tuple[str, Any]], list[Any]]] = [
    ([], [("sasl", BOB), ("whoami", None)], [0, [("ip", "127.0.0.1"), ("sasl", "bob")], "open"]),
    ([], [("sasl", ("bob", "wrong"))], [-115, "closed"]),
    ([], [("sasl", ("nobody", "x"))], [-115, "closed"]),
    ([], [("auth", ("sasl", b"bob:bob_secret"))], [-115, "closed"]),
    (
        ["superUser=bob"],
        [("sasl", BOB), ("whoami", None)],
        [0, [("ip", "127.0.0.1"), ("sasl", "bob"), ("super", "")], "open"],
    ),
    (["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"], [("exists", "/")], [-124, "closed"]),
    (
        ["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"],
        [("sasl", BOB), ("exists", "/")],
        [0, 0, "open"],
    ),
    (
        ["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"],
        [("sasl", ("bob", "wrong"))],
        [-124, "closed"],
    ),
    (
        ["enforce.auth.enabled=true", "enforce.auth.schemes=sasl"],
        [("auth", ("digest", b"d:pw")), ("exists", "/")],
        [0, -124, "closed"],
    ),
    (
        ["enforce.auth.enabled=true", "enforce.auth.schemes=digest,sasl"],
        [("auth", ("digest", b"d:pw")), ("exists", "/")],
        [0, 0, "open"],
    ),
    (["sessionRequireClientSASLAuth=true"], [("exists", "/")], [-124, "closed"]),
    (["sessionRequireClientSASLAuth=true"], [("sasl", BOB), ("exists", "/")], [0, 0, "open"]),
    (["enforce.auth.enabled=false"], [("exists", "/")], [0, "open"]),
]


@pytest.mark.parametrize(("lines", "steps", "expected"), SCENARIOS)
async def test_wire_behaviour(jaas: Path, lines: list[str], steps: list[Any], expected: list[Any]) -> None:
    async with running([SASL_PROVIDER, f"java.security.auth.login.config={jaas}", *lines]) as port:
        assert await in_thread(lambda: transcript(port, steps)) == expected


@pytest.mark.apache
def test_same_as_apache(tmp_path: Path) -> None:
    """The scenarios above against Apache ZooKeeper 3.8 with the same JAAS file and zoo.cfg lines."""
    from testkit.apache_zk import ApacheZooKeeper

    jaas = tmp_path / "jaas.conf"
    jaas.write_text(JAAS)
    seen = []
    for lines, steps, _expected in SCENARIOS:
        with ApacheZooKeeper(
            extra_config=[SASL_PROVIDER, *lines],
            jvm_args=[f"-Djava.security.auth.login.config={jaas}"],
        ) as zk:
            seen.append((lines, steps, transcript(int(zk.address.rsplit(":", 1)[1]), steps)))
    assert seen == [(lines, steps, expected) for lines, steps, expected in SCENARIOS]
