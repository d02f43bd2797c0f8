"""zoo.cfg parsing: ZooKeeper keys, trizab plugin keys, one-line errors, warnings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from trizab import config as cfg

SAMPLE = """
# a typical Apache ZooKeeper config
tickTime = 1000
initLimit=5
syncLimit: 2
dataDir=/var/lib/zk
dataLogDir=/var/lib/zk-log
clientPort=2281
clientPortAddress=0.0.0.0
maxClientCnxns=0
snapCount=5000
autopurge.snapRetainCount=4
autopurge.purgeInterval=1
jute.maxbuffer=0x1fffff
4lw.commands.whitelist=ruok, srvr ,envi
server.1=a.example:2888:3888
server.2=b.example:2888:3888:observer;127.0.0.1:2182
server.3=[::1]:2888:3888:participant;2183
readonlymode.enabled=true
forceSync=no
zookeeper.extendedTypesEnabled=true
DigestAuthenticationProvider.superDigest=super:abc=
storage=sqlite
storage.cache_kib=1024
election=fast
election.finalize_wait_ms=100
admin.enableServer=false
"""


def test_full_sample() -> None:
    c = cfg.parse(SAMPLE, read_myid=False)
    assert (c.tick_time, c.init_limit, c.sync_limit) == (1000, 5, 2)
    assert c.data_dir == Path("/var/lib/zk") and c.data_log_dir == Path("/var/lib/zk-log")
    assert (c.client_port, c.client_port_address, c.max_client_cnxns) == (2281, "0.0.0.0", 0)
    assert (c.snap_count, c.autopurge_snap_retain_count, c.autopurge_purge_interval) == (5000, 4, 1)
    assert c.jute_max_buffer == 0x1FFFFF
    assert c.effective_4lw_whitelist == {"ruok", "srvr", "envi"}
    assert c.servers[1] == cfg.QuorumServer(1, "a.example", 2888, 3888)
    assert c.servers[2] == cfg.QuorumServer(2, "b.example", 2888, 3888, "observer", "127.0.0.1", 2182)
    assert c.servers[3].host == "::1" and c.servers[3].client_port == 2183
    assert c.read_only_mode and not c.force_sync and c.extended_types_enabled
    assert c.super_digest == "super:abc="
    assert (c.storage_name, c.storage_options) == ("sqlite", {"cache_kib": "1024"})
    assert (c.election_name, c.election_options) == ("fast", {"finalize_wait_ms": "100"})


def test_defaults_follow_zookeeper() -> None:
    c = cfg.parse("", read_myid=False)
    assert (c.tick_time, c.client_port, c.jute_max_buffer, c.snap_count) == (2000, 2181, 0xFFFFF, 100_000)
    assert (c.min_session_timeout, c.max_session_timeout) == (4000, 40000)
    assert c.effective_4lw_whitelist == {"srvr"}
    assert cfg.parse("readonlymode.enabled=true").effective_4lw_whitelist == {"srvr", "isro"}
    assert cfg.parse("4lw.commands.whitelist=*").effective_4lw_whitelist == cfg.ALL_4LW
    assert cfg.parse("tickTime=100").min_session_timeout == 200


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("tickTime=abc", "bad value tickTime=abc: expected an integer"),
        ("clientPort=70000", "clientPort=70000: expected an integer <= 65535"),
        ("forceSync=maybe", "forceSync=maybe: expected yes/no"),
        ("server.1=host:notaport", "server.1=host:notaport: expected host:quorumPort"),
        ("peerType=boss", "expected participant or observer"),
        ("jute.maxbuffer=-1", "jute.maxbuffer=-1"),
        ("justakey", "key justakey has no value"),
    ],
)
def test_bad_values_are_one_line(line: str, fragment: str) -> None:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(f"tickTime=2000\n{line}\n", source=Path("zoo.cfg"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("zoo.cfg:2: ")
    assert fragment in message


def test_session_bounds_must_be_ordered() -> None:
    with pytest.raises(
        cfg.ConfigError, match="minSessionTimeout=5000 must not exceed maxSessionTimeout=4000"
    ):
        cfg.parse("minSessionTimeout=5000\nmaxSessionTimeout=4000")


def test_unknown_keys_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trizab.config"):
        c = cfg.parse("tickTime=2000\nnoSuchKey=1\nadmin.httpVersion=11\n")
    assert c.tick_time == 2000
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "noSuchKey" in warnings[0].getMessage()
    assert any("admin.httpVersion" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_myid(tmp_path: Path) -> None:
    (tmp_path / "myid").write_text("2\n")
    text = f"dataDir={tmp_path}\nserver.1=h:1:2\nserver.2=h:3:4\n"
    assert cfg.parse(text).server_id == 2
    (tmp_path / "myid").write_text("7\n")
    with pytest.raises(cfg.ConfigError, match=r"myid=7 has no server\.7= line"):
        cfg.parse(text)
    (tmp_path / "myid").write_text("x\n")
    with pytest.raises(cfg.ConfigError, match="bad server id"):
        cfg.parse(text)


def test_a_myid_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    # ConfigError is the only error a zoo.cfg gives; a myid in another encoding raised
    # UnicodeDecodeError (a traceback at start-up instead of one line).
    text = f"dataDir={tmp_path}\nserver.1=h:1:2\n"
    (tmp_path / "myid").write_bytes(b"\xff\xfe1\n")
    with pytest.raises(cfg.ConfigError, match="myid: bad server id: not UTF-8"):
        cfg.parse(text)
    (tmp_path / "myid").write_text("1\n")
    (tmp_path / "myid").chmod(0)
    try:
        if os.access(tmp_path / "myid", os.R_OK):
            return  # root reads anything: the OSError branch cannot be shown here
        with pytest.raises(cfg.ConfigError, match="cannot read"):
            cfg.parse(text)
    finally:
        (tmp_path / "myid").chmod(0o644)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="cannot read config file"):
        cfg.load(tmp_path / "nope.cfg")


# A security setting trizab does not implement stops start-up: one line naming the key and never
# its value (ssl.keyStore.password is a secret).
REFUSED = [
    "ssl.authProvider=custom",
    "ssl.crl=true",
    "ssl.ocsp=true",
    "ssl.quorum.crl=true",
    "ssl.quorum.ocsp=true",
    "ssl.quorum.context.supplier.class=com.example.Supplier",
    "ssl.context.supplier.class=com.example.Supplier",
    "ssl.sslProvider=OPENSSL",
    "zookeeper.authProvider.2=com.example.CustomProvider",
    "quorum.auth.someFutureOption=1",
    "kerberos.canonicalizeHostNames=true",
    "kerberos.someFutureOption=true",
    "admin.forceHttps=true",
    "admin.portUnification=true",
    "admin.needClientAuth=true",
    "security.auth_to_local=RULE:[1:$1@$0](.*@OTHER)s/@.*//",
    "X509AuthenticationProvider.someOtherOption=1",
    "zookeeper.ensembleAuthName=prod",
    "DigestAuthenticationProvider.enabled=false",
    "DigestAuthenticationProvider.digestAlg=SHA3-256",
]


@pytest.mark.parametrize("line", REFUSED)
def test_security_settings_trizab_lacks_stop_start_up(line: str) -> None:
    key, value = line.split("=", 1)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(f"tickTime=2000\n{line}\n")
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"config:2: {key} ")
    assert "does not implement" in message
    assert value not in message


def test_every_security_key_trizab_lacks_is_in_the_refused_list() -> None:
    """REFUSED covers each key and each prefix of the one list trizab.config refuses from."""
    names = [line.split("=", 1)[0].removeprefix("zookeeper.") for line in REFUSED]
    for key, harmless in cfg._SECURITY_KEYS.items():
        refusing = [line for line, name in zip(REFUSED, names, strict=True) if name == key]
        # Keys whose every value is harmless (a yes/no or a period with nothing to do) cannot be refused.
        if harmless not in (cfg._bool, cfg._any_switch, cfg._any_switch_or_int):
            assert refusing, f"no refused line for {key}"
    for prefix in cfg._SECURITY_PREFIXES:
        assert any(name.startswith(prefix) and name not in cfg._SECURITY_KEYS for name in names), (
            f"no refused line for the prefix {prefix}"
        )


@pytest.mark.parametrize("line", REFUSED)
def test_each_refused_key_stops_trizab_serve_with_one_line_and_status_2(
    line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trizab import cli

    key, value = line.split("=", 1)
    config = tmp_path / "zoo.cfg"
    config.write_text(f"dataDir={tmp_path / 'data'}\nclientPort=0\n{line}\n")
    assert cli.main(["serve", "--config", str(config)]) == cli.EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"trizab: {config}:3: {key} ") and "does not implement" in err, err
    assert value not in err.split(f" {key} ", 1)[1]
    assert not (tmp_path / "data").exists()  # stopped before anything was written


# Values that turn a feature off, or name what trizab implements, ask for nothing: accepted.
ACCEPTED = [
    "secureClientPort=0",
    "client.portUnification=false",
    "sslQuorum=false",
    "sslQuorumReloadCertFiles=false",
    "portUnification=false",
    "enforce.auth.enabled=false",
    "sessionRequireClientSASLAuth=no",
    "quorum.auth.enableSasl=false",
    "quorum.auth.learnerRequireSasl=false",
    "quorum.auth.serverRequireSasl=false",
    # SASL (DIGEST-MD5) is implemented: these configure it (tests/server/test_sasl_config.py).
    "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "zookeeper.superUser=admin",
    "jaasLoginRenew=3600000",
    # GSSAPI for clients (tests/runtime/test_kerberos.py).
    "kerberos.removeHostFromPrincipal=true",
    "zookeeper.kerberos.removeRealmFromPrincipal=false",
    "kerberos.minReLoginTimeMs=60000",
    "kerberos.canonicalizeHostNames=false",
    "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST",
    "security.auth_to_local=DEFAULT",
    "quorum.auth.learner.saslLoginContext=QuorumLearner",
    "java.security.auth.login.config=/etc/zk/jaas.conf",
    "authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "authProvider.ip=org.apache.zookeeper.server.auth.IPAuthenticationProvider",
    "DigestAuthenticationProvider.enabled=true",
    "DigestAuthenticationProvider.digestAlg=SHA1",
    "zookeeper.DigestAuthenticationProvider.superDigest=super:abc=",
    "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
    "quorum.cnxn.threads.size=20",
    # Client TLS is implemented: its keys configure TLS, used once a port speaks it.
    "client.certReload=true",
    "client.portUnification=false",
    "ssl.keyStore.location=/etc/zk/keystore.jks",
    "ssl.keyStore.password=s3cret",
    "ssl.trustStore.type=pkcs12",
    "ssl.clientAuth=want",
    "ssl.authProvider=x509",
    "ssl.hostnameVerification=false",
    "ssl.crl=false",
    "zookeeper.ssl.keyStore.location=/etc/zk/keystore.jks",
    "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    "X509AuthenticationProvider.superUser=CN=admin",
    # So is TLS between members.
    "sslQuorumReloadCertFiles=true",
    "ssl.quorum.trustStore.location=/etc/zk/truststore.jks",
    "ssl.quorum.keyStore.password=s3cret",
    "zookeeper.ssl.quorum.clientAuth=need",
    "ssl.quorum.hostnameVerification=false",
]


@pytest.mark.parametrize("line", ACCEPTED)
def test_security_settings_that_ask_for_nothing_are_accepted(
    line: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="trizab.config"):
        c = cfg.parse(f"tickTime=2000\n{line}\n")
    assert c.tick_time == 2000
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_bad_value_for_a_security_switch_is_a_bad_value() -> None:
    with pytest.raises(cfg.ConfigError, match="bad value sslQuorum=maybe: expected yes/no"):
        cfg.parse("sslQuorum=maybe\n")


def test_limits_keys_with_zookeepers_names_and_defaults() -> None:
    d = cfg.parse("", read_myid=False)
    assert (d.max_client_cnxns, d.max_cnxns, d.global_outstanding_limit) == (60, 0, 1000)
    assert (d.connection_outstanding_limit, d.connection_max_outbound_bytes) == (0, 32 * 1024 * 1024)
    assert (d.connection_max_tokens, d.connection_token_fill_time, d.connection_token_fill_count) == (0, 1, 1)
    assert (d.connection_freeze_time, d.connection_drop_increase, d.connection_drop_decrease) == (
        -1,
        0.02,
        0.002,
    )
    c = cfg.parse(
        "maxCnxns=500\nglobalOutstandingLimit=2000\nconnectionOutstandingLimit=100\n"
        "connectionMaxOutboundBytes=4194304\nconnectionMaxTokens=50\nconnectionTokenFillTime=10\n"
        "connectionTokenFillCount=5\nconnectionFreezeTime=100\nconnectionDropIncrease=0.1\n"
        "connectionDropDecrease=0.01\nconnectionDecreaseRatio=0.5\n",
        read_myid=False,
    )
    assert (c.max_cnxns, c.global_outstanding_limit, c.connection_outstanding_limit) == (500, 2000, 100)
    assert c.connection_max_outbound_bytes == 4 * 1024 * 1024
    assert (c.connection_max_tokens, c.connection_token_fill_time, c.connection_token_fill_count) == (
        50,
        10,
        5,
    )
    assert (c.connection_freeze_time, c.connection_drop_increase) == (100, 0.1)
    assert (c.connection_drop_decrease, c.connection_decrease_ratio) == (0.01, 0.5)
    # The Java system property names work too, as they do in a ZooKeeper zoo.cfg.
    z = cfg.parse(
        "zookeeper.globalOutstandingLimit=7\nzookeeper.maxCnxns=9\nzookeeper.connection_throttle_tokens=3\n"
        "zookeeper.connection_throttle_fill_time=4\nzookeeper.connection_throttle_fill_count=2\n",
        read_myid=False,
    )
    assert (z.global_outstanding_limit, z.max_cnxns, z.connection_max_tokens) == (7, 9, 3)
    assert (z.connection_token_fill_time, z.connection_token_fill_count) == (4, 2)
    # ... and the spelling that works in a ZooKeeper 3.8 zoo.cfg (it prefixes "zookeeper.").
    u = cfg.parse("connection_throttle_tokens=8\nconnection_throttle_fill_count=3\n", read_myid=False)
    assert (u.connection_max_tokens, u.connection_token_fill_count) == (8, 3)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("globalOutstandingLimit=-1", "bad value globalOutstandingLimit=-1: expected an integer >= 0"),
        ("maxCnxns=many", "bad value maxCnxns=many: expected an integer"),
        ("connectionOutstandingLimit=-5", "expected an integer >= 0"),
        ("connectionMaxTokens=-1", "bad value connectionMaxTokens=-1: expected an integer >= 0"),
        ("connectionTokenFillTime=0", "bad value connectionTokenFillTime=0: expected an integer >= 1"),
        ("connectionTokenFillCount=0", "expected an integer >= 1"),
        ("connectionFreezeTime=-2", "expected an integer >= -1"),
        ("connectionDropIncrease=2", "bad value connectionDropIncrease=2: expected a number from 0 to 1"),
        (
            "connectionMaxOutboundBytes=1000",
            "connectionMaxOutboundBytes=1000 must be at least jute.maxbuffer",
        ),
    ],
)
def test_bad_limits_are_one_line(line: str, fragment: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.parse(line, read_myid=False)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# -- client TLS (secureClientPort, client.portUnification, ssl.*) ------------------------------


def test_a_secure_port_without_a_client_port_means_no_plain_listener() -> None:
    c = cfg.parse("secureClientPort=2281\nssl.keyStore.location=/k.pem\n")
    assert c.client_port is None and c.secure_client_port == 2281
    assert c.client_tls.key_store_type == "PEM" and c.client_tls.client_auth == "need"
    assert c.client_tls_enabled and c.x509_enabled
    both = cfg.parse("clientPort=2181\nsecureClientPort=2281\nssl.keyStore.location=/k.p12\n")
    assert both.client_port == 2181 and both.client_tls.key_store_type == "PKCS12"
    # clientPort=0 is ZooKeeper's "not set" too.
    assert (
        cfg.parse("clientPort=0\nsecureClientPort=2281\nssl.keyStore.location=/k.pem\n").client_port is None
    )
    plain = cfg.parse("clientPort=2181\n")
    assert plain.secure_client_port is None and not plain.client_tls_enabled and not plain.x509_enabled
    assert cfg.parse("secureClientPort=0\n").secure_client_port is None


def test_tls_settings_and_their_defaults() -> None:
    c = cfg.parse(
        "secureClientPort=2281\nsecureClientPortAddress=0.0.0.0\n"
        "zookeeper.ssl.keyStore.location=/k.jks\nssl.keyStore.password=hunter2\nssl.keyStore.passwordPath=/pw\n"
        "ssl.trustStore.location=/t\nssl.trustStore.type=jks\nssl.clientAuth=NONE\nssl.protocol=TLSv1.3\n"
        "ssl.enabledProtocols=TLSv1.2, TLSv1.3\nssl.ciphersuites=TLS_AES_128_GCM_SHA256,X\n"
        "client.certReload=true\nX509AuthenticationProvider.superUser=CN=admin,O=x\n"
    )
    t = c.client_tls
    assert c.secure_client_port_address == "0.0.0.0" and c.client_cert_reload
    assert (t.key_store_location, t.key_store_type) == (Path("/k.jks"), "JKS")
    assert t.key_store_password == "hunter2"
    assert t.key_store_password_path == Path("/pw") and t.trust_store_type == "JKS"
    assert (t.client_auth, t.protocol, t.enabled_protocols) == ("none", "TLSv1.3", ("TLSv1.2", "TLSv1.3"))
    assert t.cipher_suites == ("TLS_AES_128_GCM_SHA256", "X")
    assert c.x509_super_user == "CN=admin,O=x"
    assert "hunter2" not in repr(c)  # passwords stay out of logs
    d = cfg.TlsSettings()
    assert (d.client_auth, d.protocol, d.enabled_protocols, d.cipher_suites) == (
        "need",
        "TLSv1.2",
        None,
        None,
    )
    assert cfg.parse(
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
    ).x509_enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secureClientPort=2281\n", "secureClientPort needs ssl.keyStore.location"),
        ("client.portUnification=true\n", "client.portUnification needs ssl.keyStore.location"),
        ("secureClientPortAddress=0.0.0.0\n", "secureClientPortAddress is set but secureClientPort is not"),
        ("ssl.keyStore.location=/etc/zk/server.keystore\n", "cannot tell the type of ssl.keyStore.location"),
        ("ssl.trustStore.location=/t.crt\n", "set ssl.trustStore.type to JKS, PEM or PKCS12"),
        ("ssl.clientAuth=maybe\n", "bad value ssl.clientAuth=maybe: expected none, want or need"),
        ("ssl.keyStore.type=BCFKS\n", "bad value ssl.keyStore.type=BCFKS: expected JKS, PEM or PKCS12"),
        ("ssl.protocol=SSLv3\n", "bad value ssl.protocol=SSLv3"),
        ("ssl.enabledProtocols=TLSv1.2,SSLv3\n", "bad value ssl.enabledProtocols"),
        ("secureClientPort=99999\n", "bad value secureClientPort=99999"),
        ("sslQuorum=true\n", "sslQuorum needs ssl.quorum.keyStore.location"),
        ("portUnification=true\n", "portUnification needs ssl.quorum.keyStore.location"),
        ("ssl.quorum.keyStore.location=/q.key\n", "set ssl.quorum.keyStore.type"),
    ],
)
def test_client_tls_mistakes_stop_start_up_with_one_line(text: str, message: str) -> None:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(text)
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1


# SASL (DIGEST-MD5): the keys of ZooKeeper 3.8, and its start-up checks.
def test_sasl_keys() -> None:
    config = cfg.parse(
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
        "java.security.auth.login.config=/etc/zk/jaas.conf\n"
        "zookeeper.sasl.serverconfig=ZkServer\n"
        "superUser=admin\nzookeeper.superUser.2=ops\n"
        "enforce.auth.enabled=true\nenforce.auth.schemes=sasl, digest\n"
        "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n"
        "quorum.auth.serverRequireSasl=true\nquorum.auth.server.saslLoginContext=QS\n"
    )
    sasl = config.sasl
    assert sasl.auth_provider and sasl.jaas_login_config == Path("/etc/zk/jaas.conf")
    assert sasl.server_section == "ZkServer" and sasl.super_users == ("admin", "ops")
    assert sasl.enforced_schemes == ("sasl", "digest")
    assert sasl.quorum_enable and sasl.quorum_learner_require and sasl.quorum_server_require
    assert sasl.quorum_server_login_context == "QS" and sasl.quorum_learner_login_context == "QuorumLearner"
    # sessionRequireClientSASLAuth=true is enforce.auth with sasl, whatever enforce.auth.* say.
    required = cfg.parse(
        "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
        "sessionRequireClientSASLAuth=true\nenforce.auth.enabled=false\n"
    )
    assert required.sasl.enforced_schemes == ("sasl",)
    assert cfg.parse("enforce.auth.enabled=false\nenforce.auth.schemes=sasl\n").sasl.enforced_schemes == ()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("enforce.auth.enabled=true\n", "enforce.auth.schemes must be configured"),
        ("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n", "'sasl' is not available"),
        ("sessionRequireClientSASLAuth=true\n", "'sasl' is not available"),
        ("enforce.auth.enabled=true\nenforce.auth.schemes=x509\n", "'x509' is not available"),
        ("enforce.auth.enabled=true\nenforce.auth.schemes=kerberos\n", "'kerberos' is not available"),
        (
            "quorum.auth.serverRequireSasl=true\nquorum.auth.learnerRequireSasl=true\n",
            "enableSasl is disabled",
        ),
        ("quorum.auth.learnerRequireSasl=true\n", "enableSasl is disabled"),
        (
            "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
            "learnerRequireSasl is disabled",
        ),
        ("enforce.auth.enabled=maybe\n", "expected yes/no"),
    ],
)
def test_sasl_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(cfg.ConfigError, match=fragment) as info:
        cfg.parse(text)
    assert len(str(info.value).splitlines()) == 1


def test_enforce_auth_with_digest_needs_no_sasl() -> None:
    assert cfg.parse("enforce.auth.enabled=true\nenforce.auth.schemes=digest\n").sasl.enforced_schemes == (
        "digest",
    )


def test_jaas_file_from_jvm_flags() -> None:
    from trizab.cli import jaas_from_jvm_flags

    assert jaas_from_jvm_flags({}) is None
    flags = {"SERVER_JVMFLAGS": "-Xmx1g -Djava.security.auth.login.config=/etc/zk/jaas.conf"}
    assert jaas_from_jvm_flags(flags) == Path("/etc/zk/jaas.conf")
    assert jaas_from_jvm_flags({"JVMFLAGS": "'-Djava.security.auth.login.config=/a b/j.conf'"}) == Path(
        "/a b/j.conf"
    )
    assert jaas_from_jvm_flags({"JVMFLAGS": "-Dunbalanced='x"}) is None


def test_a_zoo_cfg_zookeeper_rewrote_for_reconfig_is_read_with_its_dynamic_file(tmp_path: Path) -> None:
    """ZooKeeper 3.8 with reconfigEnabled=true moves the server lines and the client address out of
    zoo.cfg into zoo.cfg.dynamic.<version> on its first start (exactly these shapes); a trizab
    member started on that zoo.cfg is the same ensemble member on the same client port."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("2\n")
    dynamic = tmp_path / "zoo.cfg.dynamic.100000003"
    dynamic.write_text(
        "server.1=127.0.0.1:60395:47923:participant;127.0.0.1:53527\n"
        "server.2=127.0.0.1:36429:40219:participant;127.0.0.1:53528\n"
        "server.3=127.0.0.1:59417:47343:participant;53529\n"
        "version=100000003\n"
    )
    static = tmp_path / "zoo.cfg"
    static.write_text(
        f"dataDir={data}\nreconfigEnabled=true\ninitLimit=10\ntickTime=1000\ndynamicConfigFile={dynamic}\n"
    )
    config = cfg.load(static)
    assert sorted(config.servers) == [1, 2, 3]
    assert config.server_id == 2
    assert (config.client_port, config.client_port_address) == (53528, "127.0.0.1")
    assert config.servers[3].client_port == 53529
    dynamic.write_text("server.1=127.0.0.1:1:2\nclientPort=5\n")
    with pytest.raises(cfg.ConfigError, match="clientPort does not belong in a dynamic configuration file"):
        cfg.load(static)
    dynamic.unlink()
    with pytest.raises(cfg.ConfigError, match="cannot read dynamicConfigFile"):
        cfg.load(static)
