"""Secrets stay secret: not in repr() of the configuration or of an auth packet, and key files open
to others than their owner get one warning line at start-up (the file and its mode, not its content)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from trizab import config as cfg
from trizab.runtime.key_files import loose_key_files, secret_files, warn_loose_key_files
from trizab.server.core import CoreConfig
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import encode
from trizab.wire.requests import decode_request

SECRETS = {
    "ssl.keyStore.password": "ks-pw-5501",
    "ssl.trustStore.password": "ts-pw-5502",
    "ssl.quorum.keyStore.password": "qks-pw-5503",
    "ssl.quorum.trustStore.password": "qts-pw-5504",
    "DigestAuthenticationProvider.superDigest": "super:Dg5505+Base64/digest=",
}


def test_no_secret_in_the_repr_of_a_parsed_configuration() -> None:
    text = "\n".join(f"{k}={v}" for k, v in SECRETS.items())
    config = cfg.parse(f"tickTime=2000\n{text}\nsecureClientPort=2281\nssl.keyStore.location=ks.jks\n")
    # The values were read (the control), and none shows in repr, str or the TLS settings' repr.
    assert config.client_tls.key_store_password == SECRETS["ssl.keyStore.password"]
    assert config.quorum_tls.trust_store_password == SECRETS["ssl.quorum.trustStore.password"]
    assert config.super_digest == SECRETS["DigestAuthenticationProvider.superDigest"]
    for shown in (repr(config), str(config), repr(config.client_tls), repr(config.quorum_tls)):
        for key, value in SECRETS.items():
            assert value not in shown, key
    core = CoreConfig(super_digest=SECRETS["DigestAuthenticationProvider.superDigest"])
    assert core.super_digest is not None and core.super_digest not in repr(core)


def test_an_auth_packets_credentials_are_not_in_its_repr() -> None:
    packet = decode_request(OpCode.AUTH, encode(r.AuthPacket(0, "digest", b"alice:cl-pw-5506")))
    assert packet.auth == b"alice:cl-pw-5506"  # the control: decoded whole
    assert "cl-pw-5506" not in repr(packet)
    assert "digest" in repr(packet)


def _tls_config(directory: Path, *, quorum: bool = False) -> cfg.ServerConfig:
    lines = [
        "secureClientPort=2281",
        f"ssl.keyStore.location={directory / 'keystore.jks'}",
        f"ssl.keyStore.passwordPath={directory / 'ks.pw'}",
        f"ssl.trustStore.location={directory / 'truststore.jks'}",
        f"ssl.trustStore.passwordPath={directory / 'ts.pw'}",
    ]
    if quorum:
        lines += [
            "sslQuorum=true",
            f"ssl.quorum.keyStore.location={directory / 'keystore.jks'}",  # the same file: one line
            f"ssl.quorum.keyStore.passwordPath={directory / 'qks.pw'}",
        ]
    return cfg.parse("\n".join(lines) + "\n")


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    os.chmod(path, mode)


def test_key_files_open_to_others_get_one_line_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path / "keystore.jks", "KEY-CONTENT-5507", 0o644)
    _write(tmp_path / "ks.pw", "pw-in-file-5508\n", 0o600)
    _write(tmp_path / "ts.pw", "pw-in-file-5509\n", 0o640)
    _write(tmp_path / "truststore.jks", "certificates are public", 0o644)
    _write(tmp_path / "qks.pw", "pw-in-file-5510\n", 0o604)
    config = _tls_config(tmp_path, quorum=True)
    assert [k for k, _p in secret_files(config)] == [
        "ssl.keyStore.location",
        "ssl.keyStore.passwordPath",
        "ssl.trustStore.passwordPath",
        "ssl.quorum.keyStore.passwordPath",
    ]
    with caplog.at_level(logging.WARNING, logger="trizab.server"):
        warn_loose_key_files(config)
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 3, lines
    assert f"ssl.keyStore.location {tmp_path / 'keystore.jks'}" in lines[0] and "mode 0644" in lines[0]
    assert f"ssl.trustStore.passwordPath {tmp_path / 'ts.pw'}" in lines[1] and "mode 0640" in lines[1]
    assert f"ssl.quorum.keyStore.passwordPath {tmp_path / 'qks.pw'}" in lines[2] and "mode 0604" in lines[2]
    text = "\n".join(lines)
    assert "5507" not in text and "5508" not in text and "5509" not in text and "5510" not in text
    # Owner-only files: nothing to say.
    for name in ("keystore.jks", "ts.pw", "qks.pw"):
        os.chmod(tmp_path / name, 0o600)
    assert loose_key_files(config) == []


def test_files_of_a_tls_kind_not_in_use_are_not_checked(tmp_path: Path) -> None:
    _write(tmp_path / "keystore.jks", "x", 0o644)
    config = cfg.parse(f"ssl.keyStore.location={tmp_path / 'keystore.jks'}\n")  # no TLS listener
    assert secret_files(config) == []
    assert secret_files(config.evolve(client_port_unification=True)) == [
        ("ssl.keyStore.location", tmp_path / "keystore.jks")
    ]


def test_a_jaas_file_open_to_others_gets_its_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    jaas = tmp_path / "jaas.conf"
    _write(
        jaas,
        'Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob="pw-5511"; };',
        0o644,
    )
    config = cfg.parse(f"java.security.auth.login.config={jaas}\n")
    assert secret_files(config) == [("java.security.auth.login.config", jaas)]
    with caplog.at_level(logging.WARNING, logger="trizab.server"):
        warn_loose_key_files(config)
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 1 and f"java.security.auth.login.config {jaas}" in lines[0] and "0644" in lines[0]
    assert "5511" not in lines[0]
    os.chmod(jaas, 0o600)
    assert loose_key_files(config) == []


def test_a_keytab_open_to_others_gets_its_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    jaas, keytab = tmp_path / "jaas.conf", tmp_path / "zk.keytab"
    _write(
        jaas,
        "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
        f'keyTab="{keytab}" principal="zookeeper/h@R"; }};',
        0o600,
    )
    _write(keytab, "KEYTAB-5512", 0o644)
    config = cfg.parse(f"java.security.auth.login.config={jaas}\n")
    assert secret_files(config) == [("java.security.auth.login.config", jaas), ("keyTab", keytab)]
    with caplog.at_level(logging.WARNING, logger="trizab.server"):
        warn_loose_key_files(config)
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 1 and f"keyTab {keytab}" in lines[0] and "0644" in lines[0], lines
    os.chmod(keytab, 0o600)
    assert loose_key_files(config) == []
