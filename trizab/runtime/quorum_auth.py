"""SASL between members: ZooKeeper's QuorumAuthPacket exchange, on quorum and election connections.

Theory of operation
-------------------
With ``quorum.auth.enableSasl=true`` ZooKeeper authenticates the member that opens a
connection (the "learner": a follower towards its leader's quorum port, or any member
towards another's election port, right after the connection header) to the member
that accepts it (the "server"), with DIGEST-MD5 (``SaslQuorumAuthLearner``,
``SaslQuorumAuthServer``).  Each step is one ``QuorumAuthPacket`` (``long magic,
int status, buffer token``; zookeeper.jute) written as a bare Jute record, which
:func:`encode_auth_packet` / :func:`parse_auth_packet` do byte for byte::

    learner -> server   magic, IN_PROGRESS, ""            (the mechanism's empty start)
    server  -> learner  magic, IN_PROGRESS, challenge
    learner -> server   magic, IN_PROGRESS, response      (QuorumLearner's username/password)
    server  -> learner  magic, SUCCESS, rspauth           (or ERROR, "" on a wrong password)

The mechanism is :mod:`trizab.server.sasl_digest` with ZooKeeper's quorum names
(service ``zookeeper-quorum``, server name and realm ``zk-quorum-sasl-md5``); the
server's users are the ``QuorumServer`` JAAS section's ``user_<name>`` entries.  When
those sections log in with ``Krb5LoginModule`` it is GSSAPI instead
(:mod:`trizab.server.sasl_gssapi`): the learner authenticates as its ``QuorumLearner``
principal to ``quorum.auth.kerberos.servicePrincipal`` (``_HOST``: the host it dials),
the server accepts as its ``QuorumServer`` principal and lets in only a principal
``name/host@REALM`` whose host is one of the server lines' (ZooKeeper's ``authzHosts``).
The GSSAPI learner's steps run in a thread: the first asks the KDC for a ticket.

ZooKeeper's switches, for its rolling enable: a learner authenticates only with
``quorum.auth.learnerRequireSasl=true``; a server checks whether the first 8 bytes are
the magic (``QuorumAuth.nextPacketIsAuth``) and, if they are not, or the exchange
fails, refuses the connection only with ``quorum.auth.serverRequireSasl=true`` (else it
lets it through).  A refusal, on either side, is one log line naming the peer and never
a password.  trizab's own framing after the exchange starts with a 4-byte length, far
below the magic's first four bytes (0x5F243501), so the two are never confused.

:meth:`QuorumSasl.as_learner` and :meth:`QuorumSasl.as_server` are the whole auth step:
each takes a connected stream and the connection's read buffer (bytes it reads past the
exchange stay there for the framing that follows), and nothing else of the transports.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

import attrs
import trio

from trizab import config as cfg
from trizab.runtime.sasl import SaslLogins, nonce
from trizab.server.sasl_digest import DigestMD5Client, DigestMD5Server, SaslError
from trizab.server.sasl_gssapi import (
    GssapiClient,
    GssapiServer,
    KerberosAcceptor,
    KerberosInitiator,
    quorum_authorizer,
    service_principal_for,
)

__all__ = [
    "ERROR",
    "IN_PROGRESS",
    "MAGIC",
    "SUCCESS",
    "QuorumAuthError",
    "QuorumSasl",
    "encode_auth_packet",
    "parse_auth_packet",
    "quorum_sasl",
]

log = logging.getLogger("trizab.quorum_auth")

# QuorumAuth.QUORUM_AUTH_MAGIC_NUMBER, Java's -0xa0dbcafecafe1234L: the hex literal is already a
# negative long, so the negation is positive (ZooKeeper's comment calls it negative).
MAGIC = 0x5F2435013501EDCC
IN_PROGRESS, SUCCESS, ERROR = 0, 1, -1  # QuorumAuth.Status
PROTOCOL = "zookeeper-quorum"  # QuorumAuth.QUORUM_SERVER_PROTOCOL_NAME
SERVER_NAME = "zk-quorum-sasl-md5"  # QuorumAuth.QUORUM_SERVER_SASL_DIGEST
MAX_ROUNDS = 5  # SaslQuorumAuthServer.MAX_RETRIES
MAX_TOKEN = 64 * 1024
_HEAD = struct.Struct(">qii")  # magic, status, token length (-1: null)
_MAGIC_BYTES = struct.pack(">q", MAGIC)


class QuorumAuthError(Exception):
    """The exchange failed; one line, no secrets."""


def encode_auth_packet(status: int, token: bytes | None) -> bytes:
    """A ``QuorumAuthPacket`` as ``BinaryOutputArchive.writeRecord`` writes it."""
    if token is None:
        return _HEAD.pack(MAGIC, status, -1)
    return _HEAD.pack(MAGIC, status, len(token)) + token


def parse_auth_packet(buf: bytearray) -> tuple[int, bytes | None] | None:
    """Take one packet from the front of ``buf``: (status, token); None if more bytes are needed."""
    if len(buf) < _HEAD.size:
        return None
    magic, status, length = _HEAD.unpack_from(buf)
    if magic != MAGIC:
        raise QuorumAuthError("not a QuorumAuthPacket (bad magic)")
    if length > MAX_TOKEN or length < -1:
        raise QuorumAuthError(f"QuorumAuthPacket token length {length} out of range")
    end = _HEAD.size + max(length, 0)
    if len(buf) < end:
        return None
    token = None if length < 0 else bytes(buf[_HEAD.size : end])
    del buf[:end]
    return status, token


async def _receive(stream: trio.abc.Stream, buf: bytearray) -> tuple[int, bytes | None]:
    while (packet := parse_auth_packet(buf)) is None:
        data = await stream.receive_some(65536)
        if not data:
            raise QuorumAuthError("connection closed during SASL authentication")
        buf += data
    return packet


@attrs.frozen
class QuorumSasl:
    """One member's quorum.auth settings and JAAS logins (see the module docstring)."""

    learner_require: bool
    server_require: bool
    users: dict[str, str] = attrs.field(repr=False)
    login: tuple[str, str] | None = attrs.field(repr=False)
    random_bytes: Callable[[int], bytes] = nonce
    # GSSAPI instead of DIGEST-MD5 (Krb5LoginModule sections), and what it needs.
    acceptor: KerberosAcceptor | None = None
    initiator: KerberosInitiator | None = None
    service_principal: str = "zkquorum/localhost"
    hosts: frozenset[str] = frozenset()  # the server lines' hosts (ZooKeeper's authzHosts)

    async def as_learner(self, stream: trio.abc.Stream, buf: bytearray, what: str, host: str = "") -> None:
        """Authenticate to the member we connected to (at ``host``); QuorumAuthError (logged) if it
        refuses us."""
        if not self.learner_require:
            return
        client: DigestMD5Client | GssapiClient
        if self.initiator is not None:
            client = GssapiClient(self.initiator, service_principal_for(self.service_principal, host))
            me = f"principal {self.initiator.principal} of the QuorumLearner section"
        else:
            assert self.login is not None  # load_sasl requires QuorumLearner with enableSasl
            user, password = self.login
            client = DigestMD5Client(
                user, password, cnonce=self.random_bytes(16), service=PROTOCOL, host=SERVER_NAME
            )
            me = f"user {user!r} of the QuorumLearner section"
        # GSSAPI's first step asks the KDC for a ticket: its steps run in a thread.
        step = trio.to_thread.run_sync if self.initiator is not None else _inline
        try:
            await stream.send_all(encode_auth_packet(IN_PROGRESS, await step(client.initial)))
            while True:
                status, token = await _receive(stream, buf)
                if status == IN_PROGRESS:
                    answer = await step(client.evaluate, token or b"")
                    await stream.send_all(encode_auth_packet(IN_PROGRESS, answer))
                elif status == SUCCESS:
                    if not client.complete:
                        await step(client.evaluate, token or b"")
                    if not client.complete:
                        raise QuorumAuthError("it claimed success before the exchange was complete")
                    return
                else:
                    raise QuorumAuthError(f"it refused our credentials ({me})")
        except (SaslError, QuorumAuthError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.warning("SASL authentication on %s failed: %s", what, exc)
            raise QuorumAuthError(str(exc)) from None

    async def as_server(self, stream: trio.abc.Stream, buf: bytearray, what: str, timeout: float) -> bool:
        """Authenticate the member that connected; False (logged) if the connection must be closed."""
        try:
            with trio.move_on_after(timeout):
                while len(buf) < len(_MAGIC_BYTES):
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    buf += data
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("%s ended before its first bytes: %r", what, exc)
            return False
        if not buf.startswith(_MAGIC_BYTES):
            if self.server_require:
                log.warning(
                    "refusing %s: it did not authenticate and quorum.auth.serverRequireSasl=true", what
                )
                return False
            return True
        server: DigestMD5Server | GssapiServer
        if self.acceptor is not None:
            server = GssapiServer(self.acceptor, quorum_authorizer(self.hosts))
        else:
            server = DigestMD5Server(
                self.users.get, nonce=self.random_bytes(30), service=PROTOCOL, realm=SERVER_NAME
            )
        try:
            with trio.fail_after(timeout):
                _status, token = await _receive(stream, buf)
                challenge: bytes | None = b""
                for _ in range(MAX_ROUNDS + 1):
                    challenge = server.evaluate(token or b"")
                    if server.complete:
                        break
                    await stream.send_all(encode_auth_packet(IN_PROGRESS, challenge))
                    _status, token = await _receive(stream, buf)
                else:
                    raise QuorumAuthError(f"more than {MAX_ROUNDS} rounds")
                await stream.send_all(encode_auth_packet(SUCCESS, challenge))
        except (SaslError, QuorumAuthError, trio.TooSlowError) as exc:
            with trio.move_on_after(1):
                try:
                    await stream.send_all(encode_auth_packet(ERROR, b""))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            if self.server_require:
                log.warning("refusing %s: SASL authentication failed: %s", what, exc)
                return False
            log.warning(
                "SASL authentication of %s failed (%s); keeping the connection, "
                "quorum.auth.serverRequireSasl=false",
                what,
                exc,
            )
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("%s ended during SASL authentication: %r", what, exc)
            return False
        log.info("%s authenticated with SASL as %s", what, server.authorization_id)
        return True


def quorum_sasl(config: cfg.ServerConfig, logins: SaslLogins) -> QuorumSasl | None:
    """The member's QuorumSasl, or None without quorum.auth.enableSasl (ZooKeeper's Null auth)."""
    sasl = config.sasl
    if not sasl.quorum_enable:
        return None
    return QuorumSasl(
        learner_require=sasl.quorum_learner_require,
        server_require=sasl.quorum_server_require,
        users=logins.quorum_users,
        login=logins.quorum_login,
        acceptor=logins.quorum_kerberos,
        initiator=logins.quorum_kerberos_login,
        service_principal=sasl.quorum_kerberos_service_principal,
        hosts=frozenset(s.host for s in config.servers.values()),
    )


async def _inline(fn: Callable[..., bytes], *args: bytes) -> bytes:
    """Call a CPU-only mechanism step where we are (DIGEST-MD5)."""
    return fn(*args)
