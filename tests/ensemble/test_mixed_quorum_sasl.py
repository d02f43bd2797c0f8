"""SASL DIGEST-MD5 between the members of a mixed ensemble (quorum.auth.*), as real processes.

Every member requires SASL both ways (``quorum.auth.enableSasl``, ``learnerRequireSasl``,
``serverRequireSasl``) and has a JAAS file of its own with the ``QuorumServer`` and
``QuorumLearner`` sections: a ZooKeeper member gets it as ``-Djava.security.auth.login.config``,
a trizab member as the zoo.cfg key of the same name.  The ensemble forms with one leader and
writes replicate; then one follower gets a wrong password and is restarted: the members of
both implementations refuse it, each with a log line per refused connection (never the
password) and not a flood of them, while the two others keep serving writes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.mixed_ensemble import TRIZAB, ZOOKEEPER, MixedEnsemble
from tests.ensemble.test_mixed_apache import (
    client,
    converged,
    lead_with,
    log_text,
    wait_until,
    write_through_each,
)

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "quorum-secret"
WRONG = "not-the-quorum-secret"
JAAS = """
QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_member="%s";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="member"
    password="%s";
};
"""
REQUIRED = (
    "quorum.auth.enableSasl=true",
    "quorum.auth.learnerRequireSasl=true",
    "quorum.auth.serverRequireSasl=true",
)
# What a member logs when it accepts a member's SASL login, and when it refuses one.
ACCEPTED = {
    ZOOKEEPER: "Successfully completed the authentication using SASL",
    TRIZAB: "authenticated with SASL as member",
}
REFUSED = {
    ZOOKEEPER: "Failed to authenticate using SASL",
    TRIZAB: "SASL authentication failed",
}
# Refusal lines a member may log in WINDOW_S while one member with a wrong password keeps
# trying (each election round it retries both other members): about one a second at most.
WINDOW_S = 10.0
MAX_REFUSALS = 25


def write_jaas(path: Path, password: str) -> None:
    path.write_text(JAAS % (SECRET, password))


@pytest.fixture
def sasl_ensemble(tmp_path: Path) -> Iterator[Any]:
    made: list[MixedEnsemble] = []

    def make(*kinds: str) -> tuple[MixedEnsemble, dict[int, Path]]:
        jaas = {sid: tmp_path / f"jaas-{sid}.conf" for sid in range(1, len(kinds) + 1)}
        for path in jaas.values():
            write_jaas(path, SECRET)
        ens = MixedEnsemble(
            list(kinds),  # type: ignore[arg-type]
            tick_time=500,
            init_limit=20,
            sync_limit=10,
            extra_config=REQUIRED,
            member_config={sid: [f"java.security.auth.login.config={p}"] for sid, p in jaas.items()},
            java_properties={sid: [f"-Djava.security.auth.login.config={p}"] for sid, p in jaas.items()},
            workdir=tmp_path / "ens",
            start_timeout=90.0,
        )
        made.append(ens)
        for m in ens.members:
            m.start()
        return ens, jaas

    yield make
    for ens in made:
        ens.stop()


def write_and_read(ens: MixedEnsemble, sids: list[int], tag: str) -> None:
    """A write through each of ``sids``, read back through every one of them."""
    for sid in sids:
        c = client(ens[sid - 1])
        try:
            c.create(f"/t/{tag}-{sid}", b"while one member is refused")
        finally:
            c.stop()
            c.close()
    for sid in sids:
        c = client(ens[sid - 1])
        try:
            c.sync("/")
            for writer in sids:
                assert c.exists(f"/t/{tag}-{writer}") is not None, (sid, writer)
        finally:
            c.stop()
            c.close()


def refusals(ens: MixedEnsemble, sid: int) -> int:
    return log_text(ens[sid - 1]).count(REFUSED[ens.kinds[sid - 1]])


@pytest.mark.parametrize(
    "kinds",
    [(ZOOKEEPER, ZOOKEEPER, TRIZAB), (ZOOKEEPER, TRIZAB, TRIZAB)],
    ids=["2-zookeeper-1-trizab", "1-zookeeper-2-trizab"],
)
def test_quorum_sasl_across_implementations(sasl_ensemble: Any, kinds: tuple[str, ...]) -> None:
    ens, jaas = sasl_ensemble(*kinds)
    lead_with(ens, 3)
    write_through_each(ens, "sasl")
    assert len(converged(ens)) == 4  # /t and one node per member
    for sid, kind in enumerate(kinds, start=1):
        # Every member accepted a SASL login: followers' quorum connections at the leader,
        # election connections at every member.
        assert ACCEPTED[kind] in log_text(ens[sid - 1]), f"member {sid} ({kind}) logged no SASL login"

    # A member whose two neighbours are one of each implementation gets a wrong QuorumLearner
    # password: member 1 (ZooKeeper) in the first ensemble, member 3 (trizab) in the second.
    # Only connections it opens carry its learner credentials, and it opens election
    # connections to both neighbours only if it has the highest id of the three: a trizab
    # member keeps its own connection to every lower-id member (authenticated by that member's
    # QuorumServer section, which is right here), so a lower-id victim stays LOOKING without
    # ever knocking at a higher trizab member, as a ZooKeeper member whose election it cannot
    # win never reaches the leader's quorum port either.
    wrong = 1 if kinds[1] == ZOOKEEPER else 3
    others = [sid for sid in (1, 2, 3) if sid != wrong]
    assert {kinds[sid - 1] for sid in others} == {ZOOKEEPER, TRIZAB}
    victim = ens[wrong - 1]
    victim.stop()
    write_jaas(jaas[wrong], WRONG)
    before = {sid: refusals(ens, sid) for sid in others}
    victim.start()
    wait_until(
        lambda: all(refusals(ens, sid) > before[sid] for sid in others),
        60,
        f"members {others} to refuse member {wrong}",
    )
    counted = {sid: refusals(ens, sid) for sid in others}
    deadline = time.monotonic() + WINDOW_S
    rounds = 0
    while time.monotonic() < deadline:  # the two others keep serving meanwhile
        write_and_read(ens, others, f"w{rounds}")
        rounds += 1
    for sid in others:
        got = refusals(ens, sid) - counted[sid]
        print(f"member {sid} ({ens.kinds[sid - 1]}): {got} refusals of member {wrong} in {WINDOW_S} s")
        kind = ens.kinds[sid - 1]
        assert got <= MAX_REFUSALS, f"member {sid} ({kind}) logged {got} refusals in {WINDOW_S} s"
    assert victim.running, "the member with the wrong password exited"
    modes = ens.modes()
    assert modes[wrong] not in ("leader", "follower"), modes
    assert sorted(mode for sid, mode in modes.items() if sid != wrong) == ["follower", "leader"], modes
    for sid in (1, 2, 3):
        text = log_text(ens[sid - 1])
        assert WRONG not in text and SECRET not in text, f"member {sid} logged a password"
