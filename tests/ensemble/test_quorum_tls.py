"""TLS between ensemble members (sslQuorum, ssl.quorum.*, portUnification), on real processes.

Certificates are made here (trustme): the members' certificate names 127.0.0.1, as
``ssl.quorum.hostnameVerification`` (on by default, as in ZooKeeper) requires.  Each test runs
a 3-member ensemble on 127.0.0.1 and stops it (by pid) when it ends.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme
from kazoo.client import KazooClient

from testkit.trizab_ensemble import TrizabEnsemble, TrizabMember

pytestmark = pytest.mark.slow

WAIT = 60.0


def stores(directory: Path, ca: trustme.CA, *, trust: trustme.CA | None = None) -> list[str]:
    """ssl.quorum.* lines: a PEM key store for 127.0.0.1 issued by ``ca``, trusting ``trust`` (or ``ca``)."""
    directory.mkdir(parents=True, exist_ok=True)
    ks, ts = directory / "quorum-keystore.pem", directory / "quorum-truststore.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(ks))
    (trust or ca).cert_pem.write_to_path(str(ts))
    return [f"ssl.quorum.keyStore.location={ks}", f"ssl.quorum.trustStore.location={ts}"]


def set_lines(member: TrizabMember, lines: list[str]) -> None:
    """Replace or add ``key=value`` lines in the member's zoo.cfg (for its next start)."""
    keys = {line.split("=", 1)[0] for line in lines}
    kept = [ln for ln in member.config.read_text().splitlines() if ln.split("=", 1)[0] not in keys]
    member.config.write_text("\n".join([*kept, *lines]) + "\n")


def wait_modes(members: list[TrizabMember], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(m.mode() in ("leader", "follower") for m in members):
            return
        time.sleep(0.2)
    raise AssertionError(f"modes: {[m.mode() for m in members]}\n" + "".join(m.tail() for m in members))


@contextmanager
def client(member: TrizabMember) -> Iterator[KazooClient]:
    zk = KazooClient(hosts=member.address, timeout=10)
    zk.start(timeout=WAIT)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def replicated(members: list[TrizabMember], path: str, value: bytes) -> None:
    """Write through the first member, read it back through every one (after a sync)."""
    with client(members[0]) as zk:
        zk.create(path, value)
    for m in members:
        with client(m) as zk:
            zk.sync(path)
            assert zk.get(path)[0] == value


def speaks_tls(port: int, ca: trustme.CA) -> bool:
    """Whether ``port`` completes a TLS handshake with a certificate from ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ca.configure_trust(ctx)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw):
                return True
        except (ssl.SSLError, OSError):
            return False


def test_an_ensemble_over_tls_and_a_member_without_a_valid_certificate_cannot_join(tmp_path: Path) -> None:
    ca = trustme.CA()
    tls = ["sslQuorum=true", "sslQuorumReloadCertFiles=true", *stores(tmp_path / "certs", ca)]
    with TrizabEnsemble(
        3, tick_time=200, storage="memory", extra_config=tls, workdir=tmp_path / "ens"
    ) as ens:
        members = list(ens.members)
        wait_modes(members)
        replicated(members, "/over-tls", b"quorum TLS")
        assert speaks_tls(members[0].quorum_port, ca) and speaks_tls(members[0].election_port, ca)
        # Member 3 comes back with a certificate from a CA the others do not trust.
        third = members[2]
        third.stop()
        stranger = trustme.CA()
        bad = stores(tmp_path / "bad", stranger, trust=ca)
        set_lines(third, bad)

        def refusals() -> int:  # handshakes refused, by it or by the others
            return sum(m.log_path.read_text(errors="replace").count("TLS handshake") for m in members)

        before = refusals()
        third.start()
        deadline = time.monotonic() + 30
        while refusals() < before + 3:  # a few attempts, each refused
            assert time.monotonic() < deadline, third.tail()
            time.sleep(0.1)
        assert third.mode() not in ("leader", "follower"), third.tail()
        # The other two still serve, and a write reaches them.
        replicated(members[:2], "/without-3", b"two of three")
        # Its key store replaced by one from the trusted CA, it joins without a restart.
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(tmp_path / "bad" / "quorum-keystore.pem")
        )
        wait_modes(members)
        replicated(members, "/with-3-again", b"reloaded")


def test_a_rolling_switch_to_quorum_tls_with_port_unification(tmp_path: Path) -> None:
    """ZooKeeper's documented procedure: portUnification on, then sslQuorum on, then portUnification
    off, one member restart at a time, the ensemble serving throughout."""
    ca = trustme.CA()
    certs = stores(tmp_path / "certs", ca)
    with TrizabEnsemble(3, tick_time=200, storage="memory", workdir=tmp_path / "ens") as ens:
        members = list(ens.members)
        wait_modes(members)
        step = 0
        for lines in (
            ["portUnification=true", "sslQuorum=false", *certs],
            ["portUnification=true", "sslQuorum=true", *certs],
            ["portUnification=false", "sslQuorum=true", *certs],
        ):
            for m in members:
                m.stop()
                set_lines(m, lines)
                m.start()
                wait_modes(members)
                step += 1
                replicated(members, f"/rolling-{step}", str(lines).encode())
        for m in members:
            assert speaks_tls(m.quorum_port, ca), m.tail()
