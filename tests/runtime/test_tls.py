"""TLS towards clients and the x509 scheme, end to end: a real server, stock kazoo and ``ssl`` clients.

Every certificate is made here (trustme, cryptography): a CA, the server's certificate, client
certificates, an expired one and one from a CA the server does not trust.  Each test starts its
own in-process server on 127.0.0.1 from zoo.cfg text (so the keys are parsed as a user writes
them) and stops it when it ends; kazoo runs in a worker thread.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import jks
import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_acl, make_digest_acl

from testkit.process import free_port
from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.runtime.tls import TlsError, rfc2253_name, server_context
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

PASSWORD = "s3cret"
WAIT = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", common_name="server")


@pytest.fixture(scope="module")
def client_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(
        "client.example", common_name="client", organization_name="Example, Inc.", organization_unit_name="QA"
    )


def client_id(cert: trustme.LeafCert) -> str:
    return rfc2253_name(ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode()))


# -- stores in ZooKeeper's three formats --------------------------------------------------------


def _key_and_chain(cert: trustme.LeafCert) -> tuple[Any, list[x509.Certificate]]:
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    chain = [x509.load_pem_x509_certificate(b.bytes()) for b in cert.cert_chain_pems]
    return key, chain


def write_stores(directory: Path, fmt: str, ca: trustme.CA, cert: trustme.LeafCert) -> list[str]:
    """A key store holding ``cert`` and a trust store holding ``ca``, in ``fmt``; their zoo.cfg lines."""
    directory.mkdir(parents=True, exist_ok=True)
    der = serialization.Encoding.DER
    key, chain = _key_and_chain(cert)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    if fmt == "PEM":
        ks, ts = directory / "keystore.pem", directory / "truststore.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(ks))
        ca.cert_pem.write_to_path(str(ts))
    elif fmt == "PKCS12":
        ks, ts = directory / "keystore.p12", directory / "truststore.p12"
        enc = serialization.BestAvailableEncryption(PASSWORD.encode())
        ks.write_bytes(pkcs12.serialize_key_and_certificates(b"server", key, chain[0], chain[1:], enc))
        ts.write_bytes(pkcs12.serialize_key_and_certificates(None, None, None, [ca_cert], enc))
    else:
        ks, ts = directory / "keystore.jks", directory / "truststore.jks"
        pkcs8 = key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        entry = jks.PrivateKeyEntry.new("server", [c.public_bytes(der) for c in chain], pkcs8, "pkcs8")
        jks.KeyStore.new("jks", [entry]).save(str(ks), PASSWORD)
        trusted_entry = jks.TrustedCertEntry.new("ca", ca_cert.public_bytes(der))
        jks.KeyStore.new("jks", [trusted_entry]).save(str(ts), PASSWORD)
    return [
        f"ssl.keyStore.location={ks}",
        f"ssl.keyStore.password={PASSWORD}",
        f"ssl.trustStore.location={ts}",
        f"ssl.trustStore.password={PASSWORD}",
    ]


def self_signed(
    common_name: str, directory: Path, *, days: int = 1, offset_days: int = 0
) -> tuple[Path, Path]:
    """A self-signed certificate and its key as PEM files (``offset_days`` < 0: already expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=offset_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# -- a server and clients ----------------------------------------------------------------------


@asynccontextmanager
async def running(lines: list[str]) -> AsyncIterator[rt.Server]:
    """An in-process server from zoo.cfg ``lines`` (memory storage), stopped on exit."""
    text = "\n".join(["tickTime=200", "storage=memory", "4lw.commands.whitelist=*", *lines]) + "\n"
    config = cfg.parse(text, read_myid=False)
    server = rt.Server(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


def secure_port(server: rt.Server) -> int:
    return server.clients.secure_addresses[0][1]


@contextmanager
def kazoo(port: int, **kw: Any) -> Iterator[KazooClient]:
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=5, connection_retry={"max_tries": 1}, **kw)
    client.start(timeout=5)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def tls_kw(ca: trustme.CA, cert: trustme.LeafCert | None, tmp: Path) -> dict[str, Any]:
    """kazoo's TLS options: trust ``ca``; present ``cert`` (None: no client certificate)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ca_path = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    kw: dict[str, Any] = {"use_ssl": True, "ca": str(ca_path), "verify_certs": True}
    if cert is not None:
        cert_path, key_path = tmp / "client.pem", tmp / "client.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        kw.update(certfile=str(cert_path), keyfile=str(key_path))
    return kw


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def handshake(
    port: int,
    ca: trustme.CA | None,
    cert: tuple[Path, Path] | None = None,
    *,
    versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None,
) -> tuple[str, str]:
    """A bare TLS handshake plus one read (TLS 1.3 reports a refused certificate only then):
    (protocol, cipher) or ssl.SSLError / ConnectionError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca is not None:
        ca.configure_trust(ctx)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if versions is not None:
        ctx.minimum_version, ctx.maximum_version = versions
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"ruok")
            answer = s.recv(16)
            assert answer == b"imok", answer
            return s.version() or "", s.cipher()[0]


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PEM", "PKCS12", "JKS"])
async def test_kazoo_over_tls_with_each_store_format_and_the_x509_id(
    fmt: str, tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, client_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", fmt, ca, server_cert)
    lines = [f"secureClientPort={free_port()}", *stores]
    other = ca.issue_cert("other.example", common_name="other")
    me = client_id(client_cert)
    assert me == "CN=client,OU=QA,O=Example\\, Inc."
    async with running(lines) as server:
        # Only the secure port: no clientPort line means no plain listener at all.
        assert server.addresses == []
        port = secure_port(server)

        def scenario() -> None:
            with kazoo(port, **tls_kw(ca, client_cert, tmp_path / "me")) as zk:
                zk.create("/mine", b"x509 only", acl=[make_acl("x509", me, all=True)])
                assert zk.get("/mine")[0] == b"x509 only"
                # The auth ACL scheme expands to the connection's x509 id, as in ZooKeeper.
                zk.create("/auth", b"", acl=[make_acl("auth", "", all=True)])
                assert zk.get_acls("/auth")[0][0].id.scheme == "x509"
                assert zk.get_acls("/auth")[0][0].id.id == me
            with kazoo(port, **tls_kw(ca, other, tmp_path / "other")) as zk:
                with pytest.raises(NoAuthError):
                    zk.get("/mine")
                with pytest.raises(NoAuthError):
                    zk.get("/auth")

        await in_thread(scenario)


async def test_a_secure_only_config_opens_one_listener(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    port = free_port()
    config = cfg.parse(
        f"secureClientPort={port}\n" + "\n".join(write_stores(tmp_path, "PEM", ca, server_cert))
    )
    assert config.client_port is None
    server = rt.Server(config)
    listeners = await server.clients.bind()
    try:
        assert [ln.socket.getsockname()[1] for ln in listeners] == [port]  # type: ignore[attr-defined]
        assert server.addresses == []
    finally:
        for ln in listeners:
            await ln.aclose()


@pytest.mark.parametrize("mode", ["need", "want", "none"])
async def test_client_auth_modes(
    mode: str, tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, client_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    lines = [f"secureClientPort={free_port()}", f"ssl.clientAuth={mode}", *stores]
    me = client_id(client_cert)
    async with running(lines) as server:
        port = secure_port(server)

        def scenario() -> None:
            with kazoo(port, **tls_kw(ca, client_cert, tmp_path / "me")) as zk:
                if mode == "none":
                    # No certificate was asked for, so the connection has no x509 id.
                    zk.create("/n", b"", acl=[make_acl("x509", me, all=True)])
                    with pytest.raises(NoAuthError):
                        zk.get("/n")
                    return
                else:
                    zk.create("/n", b"", acl=[make_acl("x509", me, all=True)])
                    assert zk.get("/n")[0] == b""
            anonymous = tls_kw(ca, None, tmp_path / "anon")
            if mode == "need":
                with pytest.raises(KazooTimeoutError):  # every handshake is refused
                    with kazoo(port, **anonymous):
                        pass
            else:
                with kazoo(port, **anonymous) as zk:
                    assert zk.exists("/n") is not None
                    with pytest.raises(NoAuthError):
                        zk.get("/n")

        await in_thread(scenario)


async def test_missing_expired_and_untrusted_client_certificates_are_refused_with_need(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, caplog: pytest.LogCaptureFixture
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    expired = ca.issue_cert(
        "old.example",
        common_name="old",
        not_before=datetime.datetime(2020, 1, 1),
        not_after=datetime.datetime(2020, 2, 1),
    )
    expired_dir = tmp_path / "expired"
    expired_dir.mkdir()
    expired.cert_chain_pems[0].write_to_path(str(expired_dir / "c.pem"))
    expired.private_key_pem.write_to_path(str(expired_dir / "k.pem"))
    stranger = self_signed("stranger", tmp_path / "stranger")
    good = ca.issue_cert("fine.example", common_name="fine")
    good.cert_chain_pems[0].write_to_path(str(tmp_path / "good.pem"))
    good.private_key_pem.write_to_path(str(tmp_path / "good.key"))
    async with running([f"secureClientPort={free_port()}", *stores]) as server:
        port = secure_port(server)
        with caplog.at_level(logging.WARNING, logger="trizab.server"):
            # The control: a certificate from the trusted CA is accepted.
            assert (
                await in_thread(lambda: handshake(port, ca, (tmp_path / "good.pem", tmp_path / "good.key")))
            )[0]
            for cert in (None, (expired_dir / "c.pem", expired_dir / "k.pem"), stranger):
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    await in_thread(lambda cert=cert: handshake(port, ca, cert))
            await trio.sleep(0.2)
    failures = [r.getMessage() for r in caplog.records if "TLS handshake with" in r.getMessage()]
    assert len(failures) == 3, failures
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in failures[0]
    assert all("CERTIFICATE" in f for f in failures)


async def test_a_self_signed_server_certificate_is_refused_by_a_verifying_client(
    tmp_path: Path, ca: trustme.CA
) -> None:
    cert, key = self_signed("lonely", tmp_path)
    (tmp_path / "ks.pem").write_bytes(key.read_bytes() + cert.read_bytes())
    lines = [
        f"secureClientPort={free_port()}",
        f"ssl.keyStore.location={tmp_path / 'ks.pem'}",
        "ssl.clientAuth=none",
    ]
    async with running(lines) as server:
        port = secure_port(server)
        with pytest.raises(ssl.SSLCertVerificationError):
            await in_thread(lambda: handshake(port, ca))
        # The same server is fine for a client that trusts that certificate.
        trusting = trustme.Blob(cert.read_bytes())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=trusting.bytes().decode())

        def ok() -> None:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
                ctx.wrap_socket(raw) as s,
            ):
                s.sendall(b"ruok")
                assert s.recv(4) == b"imok"

        await in_thread(ok)


async def test_port_unification_serves_plain_and_tls_on_one_port(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, client_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    port = free_port()
    lines = [f"clientPort={port}", "client.portUnification=true", *stores]
    me = client_id(client_cert)
    async with running(lines) as server:
        assert server.addresses[0][1] == port and server.clients.secure_addresses == []

        def scenario() -> None:
            with kazoo(port, **tls_kw(ca, client_cert, tmp_path / "me")) as zk:
                zk.create("/u", b"tls", acl=[make_acl("x509", me, all=True)])
            with kazoo(port) as plain:
                assert plain.exists("/u") is not None
                with pytest.raises(NoAuthError):
                    plain.get("/u")
                # x509 is registered (ZooKeeper's configureSSLAuth), so plain clients can name it.
                plain.create("/p", b"", acl=[make_acl("x509", me, all=True)])
                with pytest.raises(AuthFailedError):
                    plain.add_auth("x509", "")
            with kazoo(port, **tls_kw(ca, client_cert, tmp_path / "me")) as zk:
                assert zk.get("/u")[0] == b"tls"
                zk.add_auth("x509", "")  # the certificate again: accepted
                assert zk.get("/p")[0] == b""

        await in_thread(scenario)


async def test_a_tls_client_on_the_plain_port_and_a_plain_client_on_the_tls_port_get_one_clear_line(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, caplog: pytest.LogCaptureFixture
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    plain_port, tls_port = free_port(), free_port()
    lines = [f"clientPort={plain_port}", f"secureClientPort={tls_port}", "ssl.clientAuth=none", *stores]
    async with running(lines):
        with caplog.at_level(logging.WARNING, logger="trizab.server"):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await in_thread(lambda: handshake(plain_port, ca))

            def plain_on_tls() -> bytes:
                with socket.create_connection(("127.0.0.1", tls_port), timeout=WAIT) as s:
                    s.sendall(b"\x00\x00\x00\x2c" + bytes(44))
                    return s.recv(100)

            assert await in_thread(plain_on_tls) == b""
            await trio.sleep(0.2)
    messages = [r.getMessage() for r in caplog.records]
    on_plain = [m for m in messages if "TLS handshake on a plain-text port" in m]
    on_tls = [m for m in messages if "TLS handshake with" in m]
    assert len(on_plain) == 1 and f"TLS is served on port {tls_port}" in on_plain[0]
    assert len(on_tls) == 1 and "plain-text client on the TLS port" in on_tls[0]


async def test_certificates_are_reloaded_when_the_files_change(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    lines = [f"secureClientPort={free_port()}", "client.certReload=true", "ssl.clientAuth=none", *stores]
    new_ca = trustme.CA()
    async with running(lines) as server:
        port = secure_port(server)
        assert server.clients.tls is not None
        server.clients.tls.poll_s = 0.1
        assert await in_thread(lambda: handshake(port, ca))
        with pytest.raises(ssl.SSLCertVerificationError):
            await in_thread(lambda: handshake(port, new_ca))
        new_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(tmp_path / "stores" / "keystore.pem")
        )
        with trio.fail_after(WAIT):
            while True:
                try:
                    await in_thread(lambda: handshake(port, new_ca))
                    break
                except ssl.SSLCertVerificationError:
                    await trio.sleep(0.1)
        with pytest.raises(ssl.SSLCertVerificationError):
            await in_thread(lambda: handshake(port, ca))


async def test_a_store_that_no_longer_loads_keeps_the_previous_context(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    async with running([f"secureClientPort={free_port()}", "ssl.clientAuth=none", *stores]) as server:
        tls = server.clients.tls
        assert tls is not None
        before = tls.context
        (tmp_path / "stores" / "keystore.pem").write_text("not a key\n")
        assert not tls.reload_if_changed()
        assert tls.context is before
        assert await in_thread(lambda: handshake(secure_port(server), ca))


async def test_x509_super_user(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert, client_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    admin = ca.issue_cert("admin.example", common_name="admin")
    lines = [
        f"clientPort={free_port()}",
        f"secureClientPort={free_port()}",
        f"X509AuthenticationProvider.superUser={client_id(admin)}",
        *stores,
    ]
    async with running(lines) as server:
        plain, port = server.addresses[0][1], secure_port(server)

        def scenario() -> None:
            with kazoo(plain) as zk:
                zk.add_auth("digest", "alice:pw")
                zk.create("/alice", b"private", acl=[make_digest_acl("alice", "pw", all=True)])
            with kazoo(port, **tls_kw(ca, client_cert, tmp_path / "me")) as zk:
                with pytest.raises(NoAuthError):
                    zk.get("/alice")
            with kazoo(port, **tls_kw(ca, admin, tmp_path / "admin")) as zk:
                assert zk.get("/alice")[0] == b"private"

        await in_thread(scenario)


async def test_x509_acls_are_invalid_where_the_scheme_is_not_registered() -> None:
    async with running([f"clientPort={free_port()}"]) as server:
        port = server.addresses[0][1]

        def scenario() -> None:
            with kazoo(port) as zk:
                with pytest.raises(InvalidACLError):
                    zk.create("/x", b"", acl=[make_acl("x509", "CN=client", all=True)])
                with pytest.raises(AuthFailedError):
                    zk.add_auth("x509", "")

        await in_thread(scenario)


async def test_protocols_and_cipher_suites(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "stores", "PEM", ca, server_cert)
    tls12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    tls13 = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    base = [f"secureClientPort={free_port()}", "ssl.clientAuth=none", *stores]
    # ZooKeeper 3.8's default: TLSv1.2 only, ECDHE suites (GCM first).
    async with running(base) as server:
        port = secure_port(server)
        version, cipher = await in_thread(lambda: handshake(port, ca))
        assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises(ssl.SSLError):
            await in_thread(lambda: handshake(port, ca, versions=tls13))
    lines = [*base, "ssl.enabledProtocols=TLSv1.2,TLSv1.3"]
    lines[0] = f"secureClientPort={free_port()}"
    async with running(lines) as server:
        assert (await in_thread(lambda: handshake(secure_port(server), ca)))[0] == "TLSv1.3"
    lines = [*base, "ssl.ciphersuites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
    lines[0] = f"secureClientPort={free_port()}"
    async with running(lines) as server:
        port = secure_port(server)
        assert (await in_thread(lambda: handshake(port, ca, versions=tls12)))[
            1
        ] == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_bad_stores_and_settings_stop_start_up_with_one_line(
    tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    stores = write_stores(tmp_path / "jks", "JKS", ca, server_cert)
    base = cfg.parse("\n".join(stores))
    cases = {
        "wrong password": {"key_store_password": "nope"},
        "missing file": {"key_store_location": tmp_path / "absent.jks"},
        "a gap in the protocols": {"enabled_protocols": ("TLSv1.1", "TLSv1.3")},
        "unknown cipher": {"cipher_suites": ("TLS_NO_SUCH_SUITE",)},
        "some TLS 1.3 suites": {
            "enabled_protocols": ("TLSv1.3",),
            "cipher_suites": ("TLS_AES_128_GCM_SHA256",),
        },
    }
    for what, change in cases.items():
        with pytest.raises(TlsError) as info:
            server_context(attrs.evolve(base.client_tls, **change))
        assert len(str(info.value).splitlines()) == 1, what
        assert PASSWORD not in str(info.value) and "nope" not in str(info.value), what
    server_context(base.client_tls)  # the control: the unchanged settings load


# ZooKeeper's X509AuthenticationProvider names a client by X500Principal.getName(); whoAmI shows it.
# The same client certificates against Apache ZooKeeper 3.8 and trizab must give the same ids, on
# names that exercise escaping, OIDs written in hex, multi-valued RDNs and non-ASCII text.


def _who_am_i(port: int, ctx: ssl.SSLContext) -> list[tuple[str, str]]:
    """A session over TLS, then whoAmI: the (scheme, user) pairs the server has for it."""

    def frame(*records: object) -> bytes:
        body = b"".join(jute.encode(rec) for rec in records)
        return struct.pack(">i", len(body)) + body

    def read_frame(sock: ssl.SSLSocket) -> bytes:
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
            chunk = sock.recv(65536)
            assert chunk, "server closed the connection"
            data += chunk
        return data[4:]

    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw, ctx.wrap_socket(raw) as sock:
        sock.sendall(frame(r.ConnectRequest(0, 0, 10_000, 0, bytes(16), False)))
        read_frame(sock)
        sock.sendall(frame(r.RequestHeader(xid=1, type=OpCode.WHO_AM_I)))
        reply = read_frame(sock)
        header, pos = jute.decode_prefix(r.ReplyHeader, reply)
        assert header.err == 0
        response = jute.decode(r.WhoAmIResponse, reply[pos:])
        return sorted((i.auth_scheme, i.user) for i in response.client_info)


@pytest.mark.apache
def test_x509_ids_are_apache_zookeepers(tmp_path: Path) -> None:
    from testkit import apache_zk
    from testkit.process import TrizabProcess

    def make(
        name: x509.Name, issuer: x509.Name, key: Any, signer: Any, *, ca: bool = False, ip: bool = False
    ) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if ca:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        if ip:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    attr, rdn = x509.NameAttribute, x509.RelativeDistinguishedName
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([attr(NameOID.COMMON_NAME, "test ca")])
    ca_cert = make(ca_name, ca_name, ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = make(x509.Name([attr(NameOID.COMMON_NAME, "server")]), ca_name, server_key, ca_key, ip=True)
    der = serialization.Encoding.DER
    pkcs8 = server_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    chain = [server_cert.public_bytes(der), ca_cert.public_bytes(der)]
    ks, ts = tmp_path / "keystore.jks", tmp_path / "truststore.jks"
    jks.KeyStore.new("jks", [jks.PrivateKeyEntry.new("server", chain, pkcs8, "pkcs8")]).save(
        str(ks), PASSWORD
    )
    jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("ca", ca_cert.public_bytes(der))]).save(
        str(ts), PASSWORD
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    names = [
        x509.Name([attr(NameOID.COMMON_NAME, "client")]),
        x509.Name(
            [
                attr(NameOID.COUNTRY_NAME, "DE"),
                attr(NameOID.ORGANIZATION_NAME, "Ä Örg, Inc."),
                attr(NameOID.EMAIL_ADDRESS, "a@b.c"),
                attr(NameOID.SERIAL_NUMBER, "123"),
                attr(NameOID.COMMON_NAME, "#lead  "),
                attr(NameOID.DOMAIN_COMPONENT, "example"),
                attr(NameOID.USER_ID, "u=1;<>"),
            ]
        ),
        x509.Name(
            [
                rdn([attr(NameOID.COMMON_NAME, "a"), attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "b")]),
                rdn([attr(NameOID.LOCALITY_NAME, ' x\\y"+')]),
            ]
        ),
        x509.Name(
            [
                attr(NameOID.COMMON_NAME, "plain", _type=x509.name._ASN1Type.PrintableString),
                attr(NameOID.STATE_OR_PROVINCE_NAME, "st", _type=x509.name._ASN1Type.BMPString),
                attr(NameOID.TITLE, "t"),
            ]
        ),
    ]
    contexts = []
    for i, name in enumerate(names):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = make(name, ca_name, key, ca_key)
        (tmp_path / f"c{i}.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=ca_pem)
        ctx.load_cert_chain(str(tmp_path / f"c{i}.pem"))
        contexts.append(ctx)
    zk_port, trizab_port = apache_zk.free_ports(2)
    lines = [
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        f"ssl.keyStore.location={ks}",
        f"ssl.keyStore.password={PASSWORD}",
        f"ssl.trustStore.location={ts}",
        f"ssl.trustStore.password={PASSWORD}",
    ]
    with apache_zk.ApacheZooKeeper(extra_config=[f"secureClientPort={zk_port}", *lines]):
        theirs = [_who_am_i(zk_port, ctx) for ctx in contexts]
    with TrizabProcess(
        tmp_path / "trizab", storage="memory", extra_config=[f"secureClientPort={trizab_port}", *lines]
    ):
        ours = [_who_am_i(trizab_port, ctx) for ctx in contexts]
    assert ours == theirs
    assert ("x509", "CN=client") in theirs[0]
    assert ("x509", "2.5.4.12=#0c0174,ST=\\00s\\00t,CN=plain") in theirs[3]  # Java decodes BMP bytes as UTF-8


# -- TLS between members (PeerTls), in one process: the ensemble tests run it on real members ----


def _peer(tmp: Path, ca: trustme.CA, *names: str, **kw: Any) -> Any:
    from trizab.runtime.tls import PeerTls

    tmp.mkdir(parents=True, exist_ok=True)
    ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(tmp / "ks.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ts.pem"))
    settings = cfg.TlsSettings(
        key_store_location=tmp / "ks.pem",
        key_store_type="PEM",
        trust_store_location=tmp / "ts.pem",
        trust_store_type="PEM",
        **kw,
    )
    return PeerTls(settings, ssl_quorum=True, unification=False)


async def _link(server: Any, client: Any | None) -> tuple[Any, Any]:
    """One accepted and one opened connection through ``server`` and ``client`` (None: plain)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    accepted: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            raw = await listeners[0].accept()
            accepted.append(await server.accept(raw, "quorum"))
            if accepted[0] is None:
                await trio.aclose_forcefully(raw)  # as the transports do: the other side sees EOF

        nursery.start_soon(accept)
        raw = await trio.open_tcp_stream("127.0.0.1", port)
        if client is not None:
            opened = await client.connect(raw, "127.0.0.1", "quorum")
            if opened is None:
                await trio.aclose_forcefully(raw)
        else:
            opened = raw
            await raw.send_all(b"\x00\x00\x00\x2c" + bytes(44))  # a plain member's first frame
    # Both sides have decided; only now does the connecting side go away.
    await trio.aclose_forcefully(raw)
    await listeners[0].aclose()
    return accepted[0], opened


async def test_members_check_each_others_certificate_and_address(tmp_path: Path, ca: trustme.CA) -> None:
    good = _peer(tmp_path / "a", ca, "127.0.0.1")
    other = _peer(tmp_path / "b", ca, "127.0.0.1")
    accepted, opened = await _link(good, other)
    assert isinstance(accepted, trio.SSLStream) and isinstance(opened, trio.SSLStream)
    # A member whose certificate does not name the address it connects from, or listens on.
    elsewhere = _peer(tmp_path / "c", ca, "elsewhere.example")
    accepted, _ = await _link(good, elsewhere)
    assert accepted is None
    _, opened = await _link(elsewhere, good)
    assert opened is None
    # ... is fine with ssl.quorum.hostnameVerification=false on both sides.
    lax = _peer(tmp_path / "d", ca, "127.0.0.1", hostname_verification=False)
    lax_elsewhere = _peer(tmp_path / "e", ca, "elsewhere.example", hostname_verification=False)
    accepted, opened = await _link(lax, lax_elsewhere)
    assert accepted is not None and opened is not None
    # A member with a certificate from another CA is refused either way.
    stranger = _peer(tmp_path / "f", trustme.CA(), "127.0.0.1")
    accepted, _ = await _link(good, stranger)
    assert accepted is None
    # A plain connection: refused by sslQuorum alone, served by portUnification.
    accepted, _ = await _link(good, None)
    assert accepted is None
    good.unification = True
    good.ssl_quorum = False
    accepted, _ = await _link(good, None)
    assert isinstance(accepted, trio.SocketStream)


def _peer_with(tmp: Path, key_and_chain_pem: bytes, trusted_pem: bytes) -> Any:
    from trizab.runtime.tls import PeerTls

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ks.pem").write_bytes(key_and_chain_pem)
    (tmp / "ts.pem").write_bytes(trusted_pem)
    settings = cfg.TlsSettings(
        key_store_location=tmp / "ks.pem",
        key_store_type="PEM",
        trust_store_location=tmp / "ts.pem",
        trust_store_type="PEM",
    )
    return PeerTls(settings, ssl_quorum=True, unification=False)


def _self_signed_for_loopback() -> bytes:
    """A self-signed certificate naming 127.0.0.1 (so only its issuer is wrong), with its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loner")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(
        serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)


async def test_members_with_an_expired_or_self_signed_certificate_are_refused(
    tmp_path: Path, ca: trustme.CA
) -> None:
    good = _peer(tmp_path / "good", ca, "127.0.0.1")
    ca_pem = ca.cert_pem.bytes()
    expired_cert = ca.issue_cert(
        "127.0.0.1",
        not_before=datetime.datetime(2020, 1, 1),
        not_after=datetime.datetime(2020, 2, 1),
    )
    expired = _peer_with(tmp_path / "expired", expired_cert.private_key_and_cert_chain_pem.bytes(), ca_pem)
    loner_pem = _self_signed_for_loopback()
    # The self-signed member trusts its own certificate, and the CA: only the others distrust it.
    loner = _peer_with(
        tmp_path / "loner", loner_pem, ca_pem + loner_pem.split(b"-----END PRIVATE KEY-----\n")[1]
    )
    for bad in (expired, loner):
        accepted, _ = await _link(good, bad)  # it connects to a good member
        assert accepted is None
        _, opened = await _link(bad, good)  # a good member connects to it
        assert opened is None
    # The control: the same good member takes a member with a valid certificate from the CA.
    accepted, opened = await _link(good, _peer(tmp_path / "fine", ca, "127.0.0.1"))
    assert accepted is not None and opened is not None
