"""The server core's authentication: addauth, SASL, and enforce.auth.

Theory of operation
-------------------
A connection authenticates as any number of ids (``CoreConnection.ids``, kept in the
order ZooKeeper iterates them): the x509 ids of its verified certificate (given to
:meth:`~trizab.server.session_handling.SessionHandling.connect`), then what its auth
packets add (``ZooKeeperServer``'s auth handling and the ``AuthenticationProvider``
of the scheme, :mod:`trizab.tree.acl`) and what a completed SASL exchange adds
(``ZooKeeperServer.processSasl`` with the DIGEST-MD5 or GSSAPI server of
:mod:`trizab.server.sasl_digest` / :mod:`trizab.server.sasl_gssapi`).  A failed
authentication is answered AuthFailed and the connection is closed; the session
lives on until it expires, as in ZooKeeper.

With enforce.auth (``AuthenticationHelper``), :meth:`Authentication.enforce_auth`
stands before every other request of a connection until it has one of the
enforced schemes.  Nothing here touches the tree or logs a transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from trizab.server.api import ConnId, Reply
from trizab.server.pending import CoreConnection
from trizab.server.sasl_digest import DigestMD5Server, SaslCompleteError, SaslError
from trizab.server.sasl_gssapi import GssapiServer
from trizab.tree import acl as acls
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode
from trizab.wire.jute import JuteError
from trizab.wire.requests import decode_request

if TYPE_CHECKING:
    from trizab.server.core import CoreConfig

# The server core's one logger, whichever of its parts logs (log configurations name it).
log = logging.getLogger("trizab.server.core")

_MAX_SASL_ROUNDS = 3  # null-token SASL replies per connection before AuthFailed (see _sasl_without_server)
_AUTH = int(OpCode.AUTH)
_SASL = int(OpCode.SASL)


class Authentication:
    """Part of :class:`~trizab.server.core.ServerCore`: auth and SASL (see the module docstring).

    Reads ``config`` (the schemes, SASL users or Kerberos acceptor, super users, which
    schemes are enforced); writes the connection's ``ids``, ``auth_enforced``,
    ``sasl_server`` and ``sasl_rounds``, and appends replies to ``_outputs``.  It answers
    in order through :meth:`~trizab.server.writes.Writes._fixed` and closes connections
    with :meth:`~trizab.server.session_handling.SessionHandling._drop_conn`.
    """

    config: CoreConfig
    _outputs: list[tuple[ConnId, Any]]  # what ready() hands the driver: (connection, reply or event)

    def enforce_auth(self, conn: CoreConnection, xid: int, opcode: int) -> bool:
        """``AuthenticationHelper.enforceAuthentication``: whether ``conn`` may make this request.

        With enforce.auth on, a request other than auth and sasl from a connection that has
        none of the enforced schemes is answered SessionClosedRequireSaslAuth (whatever the
        schemes) and the connection is closed; its session lives on until it expires.
        """
        if opcode == _AUTH or opcode == _SASL:
            return True
        schemes = self.config.enforce_auth_schemes
        if any(i.scheme in schemes for i in conn.ids):
            conn.auth_enforced = True
            return True
        log.error(
            "client %s has authentication scheme(s) %s, none of the expected %s; closing its connection",
            conn.client_addr,
            sorted({i.scheme for i in conn.ids}),
            sorted(schemes),
        )
        self._outputs.append(
            (conn.conn_id, Reply(r.ReplyHeader(xid, 0, Err.SESSION_CLOSED_REQUIRE_SASL_AUTH)))
        )
        self._drop_conn(conn)
        return False

    def _sasl(self, conn: CoreConnection, xid: int, payload: bytes | memoryview) -> None:
        """``ZooKeeperServer.processSasl``: one step of the client's DIGEST-MD5 or GSSAPI exchange.

        A completed exchange adds ``sasl:<user>`` to the connection's ids (and ``super`` for
        a ``zookeeper.superUser``).  A failed one (unknown user, wrong password, tampered
        response) is answered AuthFailed, or SessionClosedRequireSaslAuth when SASL is
        enforced, and the connection is closed.  A token after completion closes the
        connection without a reply (the JDK's server throws IllegalStateException there).
        """
        # A body that does not decode, or a null token, closes the connection without a reply,
        # with or without a SASL server.
        try:
            req = decode_request(OpCode.SASL, payload)
        except JuteError:
            req = None
        if req is None or req.token is None:
            self._drop_conn(conn)
            return
        users = self.config.sasl_users
        kerberos = self.config.sasl_kerberos
        if users is None and kerberos is None:
            self._sasl_without_server(conn, xid)
            return
        server = conn.sasl_server
        if server is None and kerberos is not None:
            # SecurityUtils.createSaslServer: a Kerberos login subject means GSSAPI.
            server = conn.sasl_server = GssapiServer(kerberos)
        elif server is None:
            assert users is not None and self.config.sasl_nonce is not None  # checked in __init__
            server = conn.sasl_server = DigestMD5Server(users.get, nonce=self.config.sasl_nonce(30))
        try:
            token = server.evaluate(bytes(req.token))
        except SaslCompleteError:
            self._drop_conn(conn)
            return
        except SaslError as exc:
            required = "sasl" in self.config.enforce_auth_schemes
            log.warning(
                "client %s failed to SASL authenticate (%s); closing its connection%s",
                conn.client_addr,
                exc,
                " (SASL authentication is required)" if required else "",
            )
            err = Err.SESSION_CLOSED_REQUIRE_SASL_AUTH if required else Err.AUTH_FAILED
            self._outputs.append((conn.conn_id, Reply(r.ReplyHeader(xid, 0, err), r.SetSASLResponse(None))))
            self._drop_conn(conn)
            return
        if server.complete:
            user = server.authorization_id
            new = [r.Id("sasl", user)]
            if user in self.config.sasl_super_users:
                new.append(acls.SUPER)
            log.info(
                "session 0x%x: SASL authenticated as sasl:%s%s",
                conn.session_id,
                user,
                " (super user)" if len(new) > 1 else "",
            )
            conn.ids = acls.java_set_order([*conn.ids, *(i for i in new if i not in conn.ids)])
        self._fixed(conn, Reply(r.ReplyHeader(xid, 0, 0), r.SetSASLResponse(token)))

    def _sasl_without_server(self, conn: CoreConnection, xid: int) -> None:
        """``ZooKeeperServer.processSasl`` on a server without a SASL server, for a token that
        decoded (``_sasl`` closed the connection otherwise).

        ZooKeeper then hits a NullPointerException on the missing SASL server, logs it and
        answers OK with a null token; a body that does not decode, or a null token, makes it
        close the connection without a reply.  A client that keeps trying (kazoo loops for
        ever on null tokens) gets AuthFailed and a close after a few rounds instead.
        """
        conn.sasl_rounds += 1
        if conn.sasl_rounds > _MAX_SASL_ROUNDS:
            self._outputs.append((conn.conn_id, Reply(r.ReplyHeader(xid, 0, Err.AUTH_FAILED))))
            self._drop_conn(conn)
            return
        self._fixed(conn, Reply(r.ReplyHeader(xid, 0, 0), r.SetSASLResponse(None)))

    def _auth(self, conn: CoreConnection, xid: int, payload: bytes | memoryview) -> None:
        try:
            pkt = decode_request(OpCode.AUTH, payload)
        except JuteError:
            self._drop_conn(conn)
            return
        if pkt.scheme == "x509" and self.config.x509_enabled:
            # X509AuthenticationProvider.handleAuthentication: the connection's certificate again.
            ids = conn.cert_ids or None
        else:
            ids = acls.authenticate(pkt.scheme, pkt.auth, conn.client_ip, self.config.super_digest)
        if ids is None:
            log.warning("authentication failed for scheme %r (no provider, or no certificate)", pkt.scheme)
            self._outputs.append((conn.conn_id, Reply(r.ReplyHeader(xid, 0, Err.AUTH_FAILED))))
            self._drop_conn(conn)
            return
        for i in ids:
            if i not in conn.ids:
                conn.ids.append(i)
        # Kept in the order ZooKeeper iterates them (whoAmI, the auth ACL scheme).
        conn.ids = acls.java_set_order(conn.ids)
        self._outputs.append((conn.conn_id, Reply(r.ReplyHeader(xid, 0, 0))))
