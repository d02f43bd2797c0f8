"""Passwords never reach the log, the four-letter words or start-up errors of a real ``trizab serve``.

A TLS server with every kind of secret configured (a key store password inline, a trust store
password in a ``passwordPath`` file, ``ssl.quorum.*`` passwords, a super digest) serves clients
that authenticate with digest credentials (one of them wrongly), answers every four-letter word,
and logs at DEBUG; then its whole log and every answer are searched for each secret.  The same
zoo.cfg on Apache ZooKeeper 3.8 prints the same ``conf`` keys, and no secret either.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError
from kazoo.security import make_digest_acl

from compat.differential.ops import digest_id
from testkit.apache_zk import ApacheZooKeeper
from testkit.process import TrizabProcess, free_port
from testkit.tls import TlsFiles, make_tls_files
from trizab.config import ALL_4LW

pytestmark = pytest.mark.slow

STORE_PASSWORD = "st0re-pw-7301"  # both stores' (make_tls_files uses one)
QUORUM_PASSWORD = "qu0rum-pw-7302"
SUPER_PASSWORD = "sup3r-pw-7303"
CLIENT_PASSWORD = "cl1ent-pw-7304"
WRONG_PASSWORD = "wr0ng-pw-7305"
OTHER_PASSWORD = "0ther-pw-7306"  # a *.password key neither server knows
SUPER_DIGEST = digest_id("super", SUPER_PASSWORD)


def secrets() -> dict[str, str]:
    """Every value that must not be shown, by what it is (the super digest's hash included)."""
    return {
        "store password": STORE_PASSWORD,
        "quorum password": QUORUM_PASSWORD,
        "super password": SUPER_PASSWORD,
        "super digest": SUPER_DIGEST.split(":", 1)[1],
        "client password": CLIENT_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "other password": OTHER_PASSWORD,
    }


def assert_no_secret(text: str, where: str) -> None:
    for what, value in secrets().items():
        assert value not in text, f"the {what} appears in {where}"


def config_lines(files: TlsFiles, directory: Path, secure_port: int) -> list[str]:
    password_file = directory / "truststore.pw"
    password_file.write_text(STORE_PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    return [
        f"secureClientPort={secure_port}",
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        f"ssl.keyStore.location={files.keystore}",
        f"ssl.keyStore.password={STORE_PASSWORD}",
        f"ssl.trustStore.location={files.truststore}",
        f"ssl.trustStore.passwordPath={password_file}",
        f"ssl.quorum.keyStore.password={QUORUM_PASSWORD}",
        f"ssl.quorum.trustStore.password={QUORUM_PASSWORD}",
        f"DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
        f"metrics.exporter.password={OTHER_PASSWORD}",
    ]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    files = make_tls_files(tmp_path_factory.mktemp("tls"), STORE_PASSWORD)
    os.chmod(files.keystore, 0o644)  # open to others: one warning line expected
    return files


@contextmanager
def client(port: int, files: TlsFiles | None, **kw: Any) -> Iterator[KazooClient]:
    tls: dict[str, Any] = {}
    if files is not None:
        tls = {
            "use_ssl": True,
            "verify_certs": True,
            "ca": str(files.ca),
            "certfile": str(files.client_cert),
            "keyfile": str(files.client_key),
        }
    zk = KazooClient(f"127.0.0.1:{port}", timeout=10, connection_retry={"max_tries": 2}, **tls, **kw)
    zk.start(timeout=15)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def exercise(plain_port: int, secure_port: int, files: TlsFiles) -> None:
    """Digest credentials over TLS and over plain text, a super user, and a failed authentication."""
    with client(secure_port, files, auth_data=[("digest", f"alice:{CLIENT_PASSWORD}")]) as zk:
        zk.create("/s", b"x", acl=[make_digest_acl("alice", CLIENT_PASSWORD, all=True)])
        assert zk.get("/s")[0] == b"x"
    with client(plain_port, None) as zk:
        zk.add_auth("digest", f"super:{SUPER_PASSWORD}")
        assert zk.get("/s")[0] == b"x"  # super reads it, whatever the ACL
    with client(plain_port, None) as zk, pytest.raises(AuthFailedError):
        zk.add_auth("nosuchscheme", f"alice:{WRONG_PASSWORD}")


def four_letter_words(send: Any) -> dict[str, str]:
    # stmk waits for its 8-byte argument (the trace mask), and answers nothing but that mask.
    return {word: send(word) for word in sorted(ALL_4LW - {"stmk"})}


def test_no_password_in_the_log_or_four_letter_words_of_a_debug_run(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    secure_port = free_port()
    lines = config_lines(tls_files, tmp_path, secure_port)
    server = TrizabProcess(tmp_path / "trizab", extra_config=lines, storage="memory", log_level="DEBUG")
    with server:
        assert server.port is not None
        exercise(server.port, secure_port, tls_files)
        answers = four_letter_words(server.command)
    log = server.log_path.read_text()
    # The controls: a debug-level run that did what the test meant it to do.
    assert " DEBUG " in log
    assert "authenticated as x509:CN=client" in log
    assert "authentication failed for scheme 'nosuchscheme'" in log
    assert "unknown key metrics.exporter.password; ignored" in log
    assert f"secureClientPort={secure_port}" in answers["conf"]
    assert "Environment:" in answers["envi"]
    # The key store is open to others: one line naming it and its mode, not its content.
    warnings = [line for line in log.splitlines() if "holds a secret" in line]
    assert len(warnings) == 1, warnings
    assert str(tls_files.keystore) in warnings[0] and "mode 0644" in warnings[0]
    assert_no_secret(log, "the log")
    for word, text in answers.items():
        assert_no_secret(text, f"the answer to {word}")


@pytest.mark.apache
def test_conf_and_envi_show_no_password_on_either_server_and_conf_has_zookeepers_keys(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    answers = {}
    trizab_lines = config_lines(tls_files, tmp_path, free_port())
    with TrizabProcess(tmp_path / "trizab", extra_config=trizab_lines, storage="memory") as server:
        answers["trizab"] = {w: server.command(w) for w in ("conf", "envi")}
    with ApacheZooKeeper(extra_config=config_lines(tls_files, tmp_path, free_port())) as zk:
        answers["zookeeper"] = {w: zk.four_letter_word(w) for w in ("conf", "envi")}
    for system, words in answers.items():
        for word, text in words.items():
            assert "=" in text, (system, word, text)  # the control: a real answer
            assert_no_secret(text, f"{system}'s {word}")

    def keys(text: str) -> list[str]:
        return [line.split("=", 1)[0] for line in text.splitlines() if "=" in line]

    assert keys(answers["trizab"]["conf"]) == keys(answers["zookeeper"]["conf"])


def _start_up_error(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "zoo.cfg"
    config.write_text("\n".join([f"dataDir={tmp_path / 'data'}", f"clientPort={free_port()}", *lines]) + "\n")
    return subprocess.run(
        [sys.executable, "-m", "trizab", "serve", "--config", str(config), "--log-level", "DEBUG"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _encrypted_pem_key_store(files: TlsFiles, directory: Path) -> Path:
    """The client's key (encrypted with STORE_PASSWORD) and certificate in one PEM file."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(files.client_key.read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode()),
    )
    path = directory / "encrypted.pem"
    path.write_bytes(encrypted + files.client_cert.read_bytes())
    return path


def _pkcs12_key_store(files: TlsFiles, directory: Path) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(files.client_key.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(files.client_cert.read_bytes())
    data = pkcs12.serialize_key_and_certificates(
        b"k",
        key,
        cert,
        None,
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode()),  # type: ignore[arg-type]
    )
    path = directory / "keystore.p12"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("store", ["JKS", "PKCS12", "PEM", "trust store", "quorum key store"])
def test_a_wrong_store_password_is_one_line_without_the_password(
    tmp_path: Path, tls_files: TlsFiles, store: str
) -> None:
    secure = [f"secureClientPort={free_port()}"]
    wrong = f"ssl.keyStore.password={WRONG_PASSWORD}"
    right_trust = [
        f"ssl.trustStore.location={tls_files.truststore}",
        f"ssl.trustStore.password={STORE_PASSWORD}",
    ]
    if store == "JKS":
        lines = [*secure, f"ssl.keyStore.location={tls_files.keystore}", wrong, *right_trust]
    elif store == "PKCS12":
        lines = [
            *secure,
            f"ssl.keyStore.location={_pkcs12_key_store(tls_files, tmp_path)}",
            wrong,
            *right_trust,
        ]
    elif store == "PEM":
        lines = [*secure, f"ssl.keyStore.location={_encrypted_pem_key_store(tls_files, tmp_path)}", wrong]
    elif store == "trust store":
        lines = [
            *secure,
            f"ssl.keyStore.location={tls_files.keystore}",
            f"ssl.keyStore.password={STORE_PASSWORD}",
            f"ssl.trustStore.location={tls_files.truststore}",
            f"ssl.trustStore.password={WRONG_PASSWORD}",
        ]
    else:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "myid").write_text("1\n")
        p = [free_port() for _ in range(4)]
        lines = [
            f"server.1=127.0.0.1:{p[0]}:{p[1]}",
            f"server.2=127.0.0.1:{p[2]}:{p[3]}",
            "sslQuorum=true",
            f"ssl.quorum.keyStore.location={tls_files.keystore}",
            f"ssl.quorum.keyStore.password={WRONG_PASSWORD}",
            f"ssl.quorum.trustStore.location={tls_files.truststore}",
            f"ssl.quorum.trustStore.password={STORE_PASSWORD}",
        ]
    result = _start_up_error(tmp_path, lines)
    assert result.returncode == 2, result
    errors = result.stderr.strip().splitlines()
    error = errors[-1]
    assert error.startswith("trizab: "), result.stderr
    # The error is the one line above DEBUG (no warning about the key store's mode either: the
    # server never started).
    assert [line for line in errors if " DEBUG " not in line] == [error], errors
    assert ("quorum TLS" if store == "quorum key store" else "client TLS") in error, error
    assert "trustStore" in error if store == "trust store" else "keyStore" in error, error
    assert "password" in error.lower(), error  # says why, so the operator knows what to fix
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stderr + result.stdout, "the start-up error")


def test_an_encrypted_pem_key_store_without_a_password_is_refused_and_the_right_one_loads(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    """No password must not mean OpenSSL's prompt on the terminal (a server would hang there); the
    right password loads the same file, so the refusals above were the password's."""
    from trizab.config import TlsSettings
    from trizab.runtime.tls import TlsError, server_context

    path = _encrypted_pem_key_store(tls_files, tmp_path)
    settings = TlsSettings(key_store_location=path, key_store_type="PEM", client_auth="none")
    with pytest.raises(TlsError, match="encrypted and no password is set"):
        server_context(settings)
    ctx = server_context(attrs.evolve(settings, key_store_password=STORE_PASSWORD))
    assert isinstance(ctx, ssl.SSLContext)
