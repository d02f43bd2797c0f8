"""GSSAPI (Kerberos) between ensemble members (quorum.auth.* with Krb5LoginModule sections), on
real processes, against an MIT KDC started here.

Each test runs a 3-member ensemble on 127.0.0.1 and stops it (and the KDC) by pid when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.kdc import MitKdc
from testkit.trizab_ensemble import TrizabEnsemble, TrizabMember
from tests.ensemble.test_quorum_tls import replicated, set_lines, wait_modes

pytestmark = [pytest.mark.slow, pytest.mark.kerberos]

KRB5 = "com.sun.security.auth.module.Krb5LoginModule"
REQUIRED = [
    "quorum.auth.enableSasl=true",
    "quorum.auth.learnerRequireSasl=true",
    "quorum.auth.serverRequireSasl=true",
    # ZooKeeper's form: _HOST becomes the host of the member a learner connects to (127.0.0.1).
    "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST",
]


@pytest.fixture
def kdc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc") as kdc:
        for key, value in kdc.env.items():
            monkeypatch.setenv(key, value)  # the members' processes inherit the realm's configuration
        yield kdc


def jaas(path: Path, keytab: Path, learner: str, realm: str) -> str:
    path.write_text(
        f'QuorumServer {{ {KRB5} required useKeyTab=true keyTab="{keytab}" storeKey=true\n'
        f'    useTicketCache=false principal="zkquorum/127.0.0.1@{realm}"; }};\n'
        f'QuorumLearner {{ {KRB5} required useKeyTab=true keyTab="{keytab}" storeKey=true\n'
        f'    useTicketCache=false principal="{learner}@{realm}"; }};\n'
    )
    path.chmod(0o600)
    return f"java.security.auth.login.config={path}"


def logs(members: list[TrizabMember]) -> str:
    return "".join(m.log_path.read_text(errors="replace") for m in members)


def test_a_kerberos_ensemble_serves_and_a_foreign_host_stays_out(kdc: MitKdc, tmp_path: Path) -> None:
    keytab = tmp_path / "members.keytab"
    kdc.add_principal("zkquorum/127.0.0.1", keytab)
    kdc.add_principal("learner/127.0.0.1", keytab)
    kdc.add_principal("learner/elsewhere.example", keytab)
    good = jaas(tmp_path / "jaas.conf", keytab, "learner/127.0.0.1", kdc.realm)
    with TrizabEnsemble(
        3, tick_time=200, storage="memory", extra_config=[*REQUIRED, good], workdir=tmp_path / "ens"
    ) as ens:
        members = list(ens.members)
        wait_modes(members)
        replicated(members, "/over-kerberos", b"quorum GSSAPI")
        assert f"authenticated with SASL as learner/127.0.0.1@{kdc.realm}" in logs(members)
        # A member whose principal's host is not one of the server lines: refused (authzHosts).
        third = members[2]
        third.stop()
        foreign = jaas(tmp_path / "foreign.conf", keytab, "learner/elsewhere.example", kdc.realm)
        set_lines(third, [foreign])
        before = logs(members).count("is not authorized to connect")
        third.start()
        deadline = time.monotonic() + 30
        while logs(members).count("is not authorized to connect") < before + 2:
            assert time.monotonic() < deadline, third.tail()
            time.sleep(0.1)
        assert third.mode() not in ("leader", "follower"), third.tail()
        replicated(members[:2], "/without-3", b"two of three")
        # Its own principal again: it joins.
        third.stop()
        set_lines(third, [good])
        third.start()
        wait_modes(members)
        replicated(members, "/with-3-again", b"back")


@pytest.mark.apache
def test_apache_zookeeper_forms_an_ensemble_with_the_same_configuration(kdc: MitKdc, tmp_path: Path) -> None:
    """The control for the test above: ZooKeeper 3.8 takes the same keys, JAAS file and keytab,
    and forms its ensemble over GSSAPI."""
    from testkit.apache_zk import ApacheEnsemble

    keytab = tmp_path / "members.keytab"
    kdc.add_principal("zkquorum/127.0.0.1", keytab)
    kdc.add_principal("learner/127.0.0.1", keytab)
    good = jaas(tmp_path / "jaas.conf", keytab, "learner/127.0.0.1", kdc.realm).split("=", 1)[1]
    properties = [f"-Djava.security.auth.login.config={good}", f"-Djava.security.krb5.conf={kdc.krb5_conf}"]
    with ApacheEnsemble(3, extra_config=REQUIRED, java_properties=properties, workdir=tmp_path / "zk") as ens:
        deadline = time.monotonic() + 60
        while not all(_serves(m.four_letter_word) for m in ens.members):
            assert time.monotonic() < deadline, [m.tail() for m in ens.members]
            time.sleep(0.2)
        logs = "".join(m.log_path.read_text(errors="replace") for m in ens.members)
        assert f"authorizationID=learner/127.0.0.1@{kdc.realm}" in logs


def _serves(four_letter_word: Callable[[str], str]) -> bool:
    try:
        text = four_letter_word("srvr")
    except OSError:
        return False
    return "Mode: leader" in text or "Mode: follower" in text
