"""GSSAPI's naming of clients, without a KDC: SaslServerCallbackHandler over KerberosName (DEFAULT rule)."""

from __future__ import annotations

import pytest

from trizab.server.jaas import JaasError, KerberosLogin, is_kerberos, kerberos_login, parse_jaas
from trizab.server.sasl_digest import SaslError
from trizab.server.sasl_gssapi import KerberosNaming, authorized_id, quorum_authorizer, service_principal_for


@pytest.mark.parametrize(
    ("principal", "naming", "expected"),
    [
        ("u@R", KerberosNaming("R"), "u@R"),
        ("u/h@R", KerberosNaming("R"), "u/h@R"),
        ("u/h@R", KerberosNaming("R", remove_host=True), "u@R"),
        ("u/h@R", KerberosNaming("R", remove_realm=True), "u/h"),
        ("u/h@R", KerberosNaming("R", True, True), "u"),
        ("u@R", KerberosNaming("R", True, True), "u"),
        # Another realm: no auth_to_local rule applies; the principal stays whole.
        ("u/h@OTHER", KerberosNaming("R", True, True), "u/h@OTHER"),
        ("simple", KerberosNaming("R", True, True), "simple"),
    ],
)
def test_authorized_id(principal: str, naming: KerberosNaming, expected: str) -> None:
    assert authorized_id(principal, naming) == expected


def test_malformed_principal_is_refused() -> None:
    with pytest.raises(SaslError):
        authorized_id("a/b/c@R", KerberosNaming("R"))


KRB5 = "com.sun.security.auth.module.Krb5LoginModule"


def test_kerberos_section_gives_the_service_principal_and_keytab() -> None:
    text = (
        f'Server {{ {KRB5} required useKeyTab=true keyTab="/etc/zk.keytab" storeKey=true '
        'useTicketCache=false principal="zookeeper/host1@R"; };'
    )
    section = parse_jaas(text)["Server"]
    assert is_kerberos(section)
    assert kerberos_login(section) == KerberosLogin("zookeeper/host1@R", "/etc/zk.keytab")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ('keyTab="/k" principal="zookeeper/h@R"', "needs useKeyTab=true"),
        ('useKeyTab=true principal="zookeeper/h@R"', "needs keyTab"),
        ('useKeyTab=true keyTab="/k"', "needs principal"),
        ('useKeyTab=true keyTab="/k" principal="zookeeper/h@R" useTicketCache=true', "useTicketCache"),
        ('useKeyTab=true keyTab="/k" principal="zookeeper@R"', "service/host@REALM"),
    ],
)
def test_unusable_kerberos_section_is_refused(options: str, fragment: str) -> None:
    section = parse_jaas(f"Server {{ {KRB5} required {options}; }};")["Server"]
    with pytest.raises(JaasError, match=fragment):
        kerberos_login(section)


def test_a_section_mixing_login_modules_is_refused() -> None:
    text = (
        f'Server {{ {KRB5} required useKeyTab=true keyTab="/k" principal="zookeeper/h@R"; '
        'org.apache.zookeeper.server.auth.DigestLoginModule required user_a="b"; };'
    )
    with pytest.raises(JaasError, match="only"):
        kerberos_login(parse_jaas(text)["Server"])


@pytest.mark.parametrize(
    ("configured", "host", "expected"),
    [
        ("zkquorum/_HOST", "ZK1.Example.COM", "zkquorum/zk1.example.com"),
        ("zkquorum/_HOST@R", "10.0.0.1", "zkquorum/10.0.0.1@R"),
        ("zkquorum/localhost", "10.0.0.1", "zkquorum/localhost"),
        ("zkquorum", "h", "zkquorum"),
    ],
)
def test_service_principal_for(configured: str, host: str, expected: str) -> None:
    # SecurityUtils.getServerPrincipal: only a host component of exactly _HOST is replaced.
    assert service_principal_for(configured, host) == expected


def test_quorum_authorizer_lets_in_hosts_of_the_server_lines_only() -> None:
    authorize = quorum_authorizer(frozenset({"zk1", "zk2"}))
    assert authorize("learner/zk2@R") == "learner/zk2@R"
    for principal in ("learner/zk3@R", "learner@R", "learner/zk1", "a/zk1/b@R"):
        with pytest.raises(SaslError, match="not authorized"):
            authorize(principal)
