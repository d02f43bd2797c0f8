"""SASL GSSAPI (Kerberos) for clients on a real server (in process), against an MIT KDC started here.

The KDC (testkit/kdc.py) serves a throw-away realm on 127.0.0.1; kazoo logs in through
pure-sasl's GSSAPI mechanism (pykerberos) with tickets from ``kinit``.  These tests fail,
not skip, when the Kerberos tools or Python packages are missing: the message says what
to install.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError, SessionClosedRequireSaslError
from kazoo.security import make_acl

from testkit.kdc import MitKdc
from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.runtime.disk import StartupError
from trizab.server.sasl_digest import SaslCompleteError, SaslError
from trizab.server.sasl_gssapi import GssapiClient, GssapiServer, acquire_acceptor, acquire_initiator

SASL_PROVIDER = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

REALM = "TRIZAB.TEST"
SERVICE = f"zookeeper/localhost@{REALM}"


def jaas_text(keytab: Path, principal: str = SERVICE) -> str:
    return (
        "Server {\n"
        "    com.sun.security.auth.module.Krb5LoginModule required\n"
        f'    useKeyTab=true keyTab="{keytab}" storeKey=true useTicketCache=false\n'
        f'    principal="{principal}";\n'
        "};\n"
    )


class Realm:
    """The KDC, its keytabs and a JAAS file for the service principal zookeeper/localhost."""

    def __init__(self, kdc: MitKdc, base: Path) -> None:
        self.kdc = kdc
        self.base = base
        self.service_keytab = base / "zk.keytab"
        self.client_keytab = base / "clients.keytab"
        kdc.add_principal("zookeeper/localhost", self.service_keytab)
        kdc.add_principal("zookeeper/otherhost", base / "other.keytab")
        for user in ("client", "client/worker1", "admin"):
            kdc.add_principal(user, self.client_keytab)
        for user in ("client", "client/worker1", "admin"):
            kdc.kinit(user, self.client_keytab)
        self.jaas = base / "jaas.conf"
        self.jaas.write_text(jaas_text(self.service_keytab))

    def lines(self, *extra: str, jaas: Path | None = None) -> list[str]:
        return [SASL_PROVIDER, f"java.security.auth.login.config={jaas or self.jaas}", *extra]


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    base = tmp_path_factory.mktemp("kdc")
    with MitKdc(base) as kdc, pytest.MonkeyPatch.context() as env:
        for key, value in kdc.env.items():
            env.setenv(key, value)
        env.setenv("KRB5CCNAME", kdc.ccache)
        yield Realm(kdc, base)


def gssapi(principal: str) -> dict[str, object]:
    return {"sasl_options": {"mechanism": "GSSAPI", "service": "zookeeper", "principal": principal}}


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


async def in_thread(fn: Any) -> Any:
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


def _client(port: int, **kw: Any) -> KazooClient:
    # pure-sasl names the service principal after the host kazoo dials: zookeeper/localhost.
    return KazooClient(hosts=f"localhost:{port}", timeout=5, connection_retry={"max_tries": 1}, **kw)


@contextmanager
def kazoo(port: int, **kw: Any) -> Iterator[KazooClient]:
    client = _client(port, **kw)
    client.start(timeout=5)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def start_fails(port: int, **kw: Any) -> BaseException:
    """The error of a client's first request (kazoo's start() returns before SASL is done)."""
    # When the AuthFailed reply lands while start() is still checking that it connected (the
    # session is created before SASL starts), kazoo raises a time-out; its connection's log says why.
    logger = logging.getLogger(f"{__name__}.client{next(_CLIENTS)}")
    seen = _Records()
    logger.addHandler(seen)
    client = _client(port, logger=logger, **kw)
    try:
        client.start(timeout=5)
        client.exists("/")
    except Exception as exc:
        if not isinstance(exc, AuthFailedError) and any("AUTH_FAILED" in m for m in seen.messages):
            return AuthFailedError(f"kazoo logged AUTH_FAILED and raised {type(exc).__name__}")
        return exc
    finally:
        client.stop()
        client.close()
        logger.removeHandler(seen)
    raise AssertionError("the client connected")


_CLIENTS = itertools.count()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def sasl_id_of(port: int, principal: str) -> str:
    """The sasl id the server gave ``principal`` (what an ``auth`` ACL expands to)."""
    with kazoo(port, **gssapi(principal)) as zk:
        path = "/who-" + principal.replace("/", "_").replace("@", "_")
        zk.create(path, acl=[make_acl("auth", "", all=True)])
        (acl,) = zk.get_acls(path)[0]
        assert acl.id.scheme == "sasl"
        return str(acl.id.id)


pytestmark = pytest.mark.kerberos


async def test_gssapi_client_owns_a_node_others_cannot_read(realm: Realm) -> None:
    async with running(realm.lines()) as port:

        def scenario() -> None:
            with kazoo(port, **gssapi(f"client@{REALM}")) as client:
                client.create("/k", b"x", acl=[make_acl("sasl", f"client@{REALM}", all=True)])
                assert client.get("/k")[0] == b"x"
            with kazoo(port, **gssapi(f"admin@{REALM}")) as admin:
                with pytest.raises(NoAuthError):
                    admin.get("/k")
            with kazoo(port) as anonymous:
                with pytest.raises(NoAuthError):
                    anonymous.get("/k")

        await in_thread(scenario)


@pytest.mark.parametrize(
    ("keys", "principal", "expected"),
    [
        ((), "client", f"client@{REALM}"),
        ((), "client/worker1", f"client/worker1@{REALM}"),
        (("kerberos.removeHostFromPrincipal=true",), "client/worker1", f"client@{REALM}"),
        (("kerberos.removeRealmFromPrincipal=true",), "client/worker1", "client/worker1"),
        (
            ("kerberos.removeHostFromPrincipal=true", "kerberos.removeRealmFromPrincipal=true"),
            "client/worker1",
            "client",
        ),
        (("zookeeper.kerberos.removeRealmFromPrincipal=true",), "client", "client"),
    ],
)
async def test_sasl_id_is_what_zookeeper_computes(
    realm: Realm, keys: tuple[str, ...], principal: str, expected: str
) -> None:
    async with running(realm.lines(*keys)) as port:
        assert await in_thread(lambda: sasl_id_of(port, f"{principal}@{REALM}")) == expected


async def test_super_user_reads_every_node(realm: Realm) -> None:
    async with running(realm.lines(f"superUser=admin@{REALM}")) as port:

        def scenario() -> None:
            with kazoo(port, **gssapi(f"client@{REALM}")) as client:
                client.create("/mine", b"m", acl=[make_acl("sasl", f"client@{REALM}", all=True)])
            with kazoo(port, **gssapi(f"admin@{REALM}")) as admin:
                assert admin.get("/mine")[0] == b"m"

        await in_thread(scenario)


def _one_failure_line(caplog: pytest.LogCaptureFixture) -> str:
    lines = [r.getMessage() for r in caplog.records if "failed to SASL authenticate" in r.getMessage()]
    assert len(lines) == 1, lines
    return lines[0]


async def test_stale_keytab_is_auth_failed_and_one_line(
    realm: Realm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A keytab taken before the service got a new key (the other keytab has both).
    stale = tmp_path / "stale.keytab"
    realm.kdc.export_key("zookeeper/localhost", stale)
    realm.kdc.export_key("zookeeper/localhost", realm.service_keytab)
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(jaas_text(stale))
    # A fresh cache: the next service ticket is for the newest key.
    realm.kdc.kinit("client", realm.client_keytab)
    async with running(realm.lines(jaas=jaas)) as port:
        with caplog.at_level(logging.INFO):
            exc = await in_thread(lambda: start_fails(port, **gssapi(f"client@{REALM}")))
    assert isinstance(exc, AuthFailedError), exc
    assert "GSSAPI" in _one_failure_line(caplog)


async def test_ticket_for_another_service_principal_is_auth_failed(
    realm: Realm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The server is zookeeper/otherhost; the client asks for zookeeper/localhost (the host it dials).
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(jaas_text(realm.base / "other.keytab", f"zookeeper/otherhost@{REALM}"))
    async with running(realm.lines(jaas=jaas)) as port:
        with caplog.at_level(logging.INFO):
            exc = await in_thread(lambda: start_fails(port, **gssapi(f"client@{REALM}")))
    assert isinstance(exc, AuthFailedError), exc
    _one_failure_line(caplog)


async def test_enforced_sasl_takes_gssapi(realm: Realm) -> None:
    lines = realm.lines("enforce.auth.enabled=true", "enforce.auth.schemes=sasl")
    async with running(lines) as port:

        def scenario() -> None:
            assert isinstance(start_fails(port), SessionClosedRequireSaslError)
            with kazoo(port, **gssapi(f"client@{REALM}")) as client:
                client.create("/enforced", b"ok")
                assert client.get("/enforced")[0] == b"ok"

        await in_thread(scenario)


def _startup_error(realm: Realm, jaas_text_: str, tmp_path: Path) -> str:
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(jaas_text_)
    text = "\n".join(["storage=memory", "clientPort=0", *realm.lines(jaas=jaas)]) + "\n"
    with pytest.raises(StartupError) as info:
        rt.Server(cfg.parse(text, read_myid=False))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_keytab_stops_startup(realm: Realm, tmp_path: Path) -> None:
    message = _startup_error(realm, jaas_text(tmp_path / "nope.keytab"), tmp_path)
    assert "nope.keytab" in message and SERVICE in message


def test_keytab_without_the_principal_stops_startup(realm: Realm, tmp_path: Path) -> None:
    message = _startup_error(realm, jaas_text(realm.client_keytab), tmp_path)
    assert "clients.keytab" in message and SERVICE in message


def test_without_python_gssapi_startup_names_what_to_install(
    realm: Realm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gssapi", None)  # import gssapi now raises ImportError
    message = _startup_error(realm, jaas_text(realm.service_keytab), tmp_path)
    assert "pip install 'trizab[kerberos]'" in message and "libkrb5-dev" in message


@contextmanager
def apache_zookeeper(realm: Realm, lines: list[str], workdir: Path) -> Iterator[int]:
    """A real ZooKeeper 3.8 with the same zoo.cfg lines, JAAS file and realm; yields its client port."""
    from testkit.apache_zk import ApacheZooKeeper

    jaas = next(
        line.split("=", 1)[1] for line in lines if line.startswith("java.security.auth.login.config=")
    )
    extra = [line for line in lines if not line.startswith("java.security.auth.login.config=")]
    properties = [
        f"-Djava.security.auth.login.config={jaas}",
        f"-Djava.security.krb5.conf={realm.kdc.krb5_conf}",
    ]
    with ApacheZooKeeper(extra_config=extra, java_properties=properties, workdir=workdir) as zk:
        yield zk.client_port


@pytest.mark.apache
@pytest.mark.slow
@pytest.mark.parametrize(
    "keys",
    [
        (),
        ("kerberos.removeHostFromPrincipal=true",),
        ("kerberos.removeRealmFromPrincipal=true",),
        ("kerberos.removeHostFromPrincipal=true", "kerberos.removeRealmFromPrincipal=true"),
    ],
)
async def test_same_ids_and_failures_as_apache_zookeeper(
    realm: Realm, tmp_path: Path, keys: tuple[str, ...]
) -> None:
    """The same kazoo logins give the same sasl ids, and the same refusals, on both servers."""
    principals = [f"client@{REALM}", f"client/worker1@{REALM}"]
    other = tmp_path / "other-jaas.conf"
    other.write_text(jaas_text(realm.base / "other.keytab", f"zookeeper/otherhost@{REALM}"))

    def observe(port: int, other_port: int) -> list[object]:
        seen: list[object] = [sasl_id_of(port, p) for p in principals]
        # A ticket for zookeeper/localhost at a server that is zookeeper/otherhost.
        seen.append(type(start_fails(other_port, **gssapi(f"client@{REALM}"))).__name__)
        return seen

    async with running(realm.lines(*keys)) as port, running(realm.lines(*keys, jaas=other)) as other_port:
        ours = await in_thread(lambda: observe(port, other_port))

    def theirs() -> list[object]:
        with (
            apache_zookeeper(realm, realm.lines(*keys), tmp_path / "zk") as zk_port,
            apache_zookeeper(realm, realm.lines(*keys, jaas=other), tmp_path / "zk-other") as zk_other_port,
        ):
            return observe(zk_port, zk_other_port)

    with trio.fail_after(120):
        apache = await trio.to_thread.run_sync(theirs)
    assert ours == apache


@pytest.mark.apache
@pytest.mark.slow
def test_java_client_with_gssapi_matches_zookeeper(realm: Realm, tmp_path: Path) -> None:
    from compat.javaclient import variants
    from compat.javaclient.transcript import compare

    variant = variants.kerberos(
        tmp_path,
        krb5_conf=realm.kdc.krb5_conf,
        service_keytab=realm.service_keytab,
        client_keytab=realm.client_keytab,
        realm=REALM,
    )
    zookeeper = variants.transcript(variant, apache=True)
    text = "\n".join(zookeeper)
    # The controls: the script ran, authenticated by GSSAPI (whoami shows the Kerberos id).
    assert "Created /jc/seq-0000000002" in text
    assert "WatchedEvent state:SaslAuthenticated" in text
    assert f"sasl: client@{REALM}" in text
    diff = compare(zookeeper, variants.transcript(variant, apache=False))
    assert diff is None, diff


def _mechanisms(realm: Realm) -> tuple[GssapiServer, GssapiClient]:
    acceptor = acquire_acceptor(SERVICE, str(realm.service_keytab))
    initiator = acquire_initiator(f"client@{REALM}", str(realm.client_keytab))
    return GssapiServer(acceptor), GssapiClient(initiator, SERVICE)


def test_the_exchange_step_by_step(realm: Realm) -> None:
    """RFC 4752: context tokens, an empty token, the wrapped offer, the wrapped choice."""
    server, client = _mechanisms(realm)
    ap_rep = server.evaluate(client.initial())
    assert ap_rep and not server.complete
    assert client.evaluate(ap_rep) == b""  # the context is up: ask for the offer
    offer = server.evaluate(b"")
    assert offer is not None and not server.complete
    assert server.evaluate(client.evaluate(offer)) is None
    assert server.complete and client.complete
    assert server.authorization_id == f"client@{REALM}" and server.principal == f"client@{REALM}"
    with pytest.raises(SaslCompleteError):
        server.evaluate(b"more")


def test_a_replayed_token_is_refused(realm: Realm) -> None:
    server, client = _mechanisms(realm)
    first = client.initial()
    server.evaluate(first)
    again, _ = _mechanisms(realm)
    with pytest.raises(SaslError, match="GSSAPI"):
        again.evaluate(first)


@pytest.mark.parametrize("layer", [0x02, 0x04, 0x00])
def test_only_the_layer_none_is_accepted(realm: Realm, layer: int) -> None:
    server, client = _mechanisms(realm)
    client.evaluate(server.evaluate(client.initial()) or b"")
    offer = server.evaluate(b"")
    assert offer is not None
    context = client._context  # the established context, to wrap another choice than the client's
    assert context.unwrap(offer).message == bytes([0x01, 0, 0, 0])  # "none" only, no buffer
    choice = context.wrap(bytes([layer, 0, 0x10, 0]), False).message
    with pytest.raises(SaslError, match="security layer"):
        server.evaluate(choice)
    assert not server.complete


@pytest.mark.parametrize("token", [b"", b"not a GSS token"])
def test_a_bad_first_token_is_refused(realm: Realm, token: bytes) -> None:
    server, _ = _mechanisms(realm)
    with pytest.raises(SaslError, match="GSSAPI"):
        server.evaluate(token)
