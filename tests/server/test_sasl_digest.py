"""DIGEST-MD5 (trizab.server.sasl_digest) against pure-sasl, RFC 2831's example, and bad inputs."""

from __future__ import annotations

import base64

import pytest
from puresasl.client import SASLClient

from trizab.server.jaas import JaasError, digest_login, digest_users, parse_jaas
from trizab.server.sasl_digest import (
    DigestMD5Client,
    DigestMD5Server,
    SaslCompleteError,
    SaslError,
    parse_directives,
)

USERS = {"bob": "secret", "super": "adminsecret"}
NONCE = bytes(range(30))


def server(users: dict[str, str] = USERS, nonce: bytes = NONCE) -> DigestMD5Server:
    return DigestMD5Server(users.get, nonce=nonce)


def puresasl_exchange(srv: DigestMD5Server, user: str, password: str) -> SASLClient:
    """kazoo's loop (KazooClient's sasl_options) against ``srv``, in memory."""
    cli = SASLClient(
        host="zk-sasl-md5", service="zookeeper", mechanism="DIGEST-MD5", username=user, password=password
    )
    challenge = None
    while not cli.complete:
        response = cli.process(challenge)
        if cli.complete and not response:
            break
        challenge = srv.evaluate(response or b"")
    return cli


def test_pure_sasl_client_authenticates_and_checks_rspauth() -> None:
    srv = server()
    cli = puresasl_exchange(srv, "bob", "secret")
    assert cli.complete and srv.complete
    assert srv.authorization_id == "bob"


def test_challenge_is_what_the_jdk_server_sends() -> None:
    # Apache ZooKeeper 3.8 (JDK DigestMD5Server), captured: realm, a 40-character nonce, charset, algorithm.
    challenge = server().evaluate(b"")
    assert challenge == (
        b'realm="zk-sasl-md5",nonce="' + base64.b64encode(NONCE) + b'",charset=utf-8,algorithm=md5-sess'
    )
    assert len(base64.b64encode(NONCE)) == 40


def test_our_client_and_server_agree() -> None:
    srv = server()
    cli = DigestMD5Client("bob", "secret", cnonce=b"c" * 16)
    token = srv.evaluate(cli.initial())
    token = srv.evaluate(cli.evaluate(token))
    assert srv.complete and not cli.complete
    assert cli.evaluate(token) == b""
    assert cli.complete


def test_rfc2831_example_response_value() -> None:
    # RFC 2831 section 4: chris / secret on elwood.innosoft.com, imap service.
    from trizab.server import sasl_digest

    example = {
        "username": "chris",
        "realm": "elwood.innosoft.com",
        "password": "secret",
        "nonce": "OA6MG9tEQGm2hh",
        "cnonce": "OA6MHXh6VqTrRk",
        "nc": "00000001",
        "qop": "auth",
        "digest_uri": "imap/elwood.innosoft.com",
        "authzid": None,
        "utf8": True,
    }
    value = sasl_digest._response_value(**example, for_rspauth=False)
    assert value == "d388dad90d4bbd760a152321f2143af7"
    rspauth = sasl_digest._response_value(**example, for_rspauth=True)
    assert rspauth == "ea40f60335c427b5527b84dbabcdfffd"


def test_wrong_password_fails_without_leaking_it() -> None:
    with pytest.raises(SaslError) as info:
        puresasl_exchange(server(), "bob", "not-the-password")
    assert "not-the-password" not in str(info.value) and "secret" not in str(info.value)
    assert "wrong password" in str(info.value)


def test_unknown_user_fails() -> None:
    with pytest.raises(SaslError, match="no such user"):
        puresasl_exchange(server(), "mallory", "secret")


def _response(srv: DigestMD5Server, password: str = "secret") -> bytes:
    cli = DigestMD5Client("bob", password, cnonce=b"c" * 16)
    return cli.evaluate(srv.evaluate(b""))


@pytest.mark.parametrize(
    ("field", "new"),
    [
        (b'username="bob"', b'username="super"'),
        (b'realm="zk-sasl-md5"', b'realm="elsewhere"'),
        (b'digest-uri="zookeeper/zk-sasl-md5"', b'digest-uri="zookeeper/other"'),
        (b"nc=00000001", b"nc=00000002"),
        (b"qop=auth", b"qop=auth-int"),
    ],
)
def test_tampered_response_fails(field: bytes, new: bytes) -> None:
    srv = server()
    token = _response(srv)
    assert field in token
    with pytest.raises(SaslError):
        srv.evaluate(token.replace(field, new))
    assert not srv.complete and srv.authorization_id is None


def test_tampered_digest_fails() -> None:
    srv = server()
    token = _response(srv)
    head, digest = token.rsplit(b"response=", 1)
    flipped = (b"0" if digest[:1] != b"0" else b"1") + digest[1:]
    with pytest.raises(SaslError, match="mismatched response"):
        srv.evaluate(head + b"response=" + flipped)


def test_replayed_response_is_refused() -> None:
    # The same response again on the same exchange (nonce count 1 used twice) ...
    srv = server()
    token = _response(srv)
    srv.evaluate(token)
    with pytest.raises(SaslCompleteError):
        srv.evaluate(token)
    # ... and on a new exchange, whose nonce differs.
    other = server(nonce=bytes(30))
    other.evaluate(b"")
    with pytest.raises(SaslError, match="mismatched nonce"):
        other.evaluate(token)


def test_one_response_per_exchange() -> None:
    srv = server()
    wrong = _response(srv, password="guess")
    with pytest.raises(SaslError):
        srv.evaluate(wrong)
    # A second try with the right password on the same nonce is refused too.
    right = DigestMD5Client("bob", "secret", cnonce=b"c" * 16).evaluate(server().evaluate(b""))
    with pytest.raises(SaslError):
        srv.evaluate(right)


def test_initial_response_is_refused() -> None:
    with pytest.raises(SaslError, match="initial response"):
        server().evaluate(b'username="bob"')


def test_client_refuses_a_server_that_does_not_know_the_password() -> None:
    impostor = DigestMD5Server({"bob": "other"}.get, nonce=NONCE)
    cli = DigestMD5Client("bob", "secret", cnonce=b"c" * 16)
    response = cli.evaluate(impostor.evaluate(b""))
    # The impostor's users say another password: it refuses, and cannot compute rspauth.
    with pytest.raises(SaslError):
        impostor.evaluate(response)
    with pytest.raises(SaslError, match="rspauth"):
        cli.evaluate(b"rspauth=00000000000000000000000000000000")


@pytest.mark.parametrize(
    "token",
    [b"=x", b'a="unterminated', b"a=1,a=2", b"\xff\xfe", b"x" * 5000, b"noequals"],
)
def test_malformed_tokens(token: bytes) -> None:
    with pytest.raises(SaslError):
        parse_directives(token)


def test_directives_quoting() -> None:
    assert parse_directives(b'a="x\\"y,z", b=2 ,c="" ') == {"a": 'x"y,z', "b": "2", "c": ""}


JAAS = """
// kazoo's harness writes this
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
/* members */
QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_test="test"; };
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required username="test" password=test;
};
"""


def test_jaas_sections() -> None:
    sections = parse_jaas(JAAS)
    assert digest_users(sections["Server"]) == {"super": "super_secret", "jaasuser": "jaas_password"}
    assert digest_users(sections["QuorumServer"]) == {"test": "test"}
    assert digest_login(sections["QuorumLearner"]) == ("test", "test")
    assert "super_secret" not in repr(sections)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Server { x required a=1; ", "end of file"),
        ("Server { x maybe a=1; };", "control flag"),
        ('Server { x required a="1; };', "unterminated"),
        ("Server { x required a=; };", "no value"),
        ("Server { }; Server { };", "twice"),
    ],
)
def test_jaas_errors(text: str, fragment: str) -> None:
    with pytest.raises(JaasError, match=fragment):
        parse_jaas(text)


def test_jaas_errors_do_not_echo_values() -> None:
    with pytest.raises(JaasError) as info:
        parse_jaas("Server { m required user_bob=my secret words; };")
    assert "secret" not in str(info.value) and "words" not in str(info.value)
    with pytest.raises(JaasError) as info:
        parse_jaas('Server { m required user_bob=sec"ret-part"; };')
    assert "ret-part" not in str(info.value)


def test_kerberos_module_is_no_digest_section() -> None:
    sections = parse_jaas('Server { com.sun.security.auth.module.Krb5LoginModule required keyTab="/k"; };')
    with pytest.raises(JaasError, match="Krb5LoginModule is not supported here"):
        digest_users(sections["Server"])
