"""Accepting a client connection on a TLS (or unified) port: the handshake and the client's x509 ids.

A unified port (``client.portUnification``) peeks at the first byte: a TLS record
(``TLS_RECORD_HANDSHAKE``) is handshaken, anything else is served as plain text.  The
handshake is bounded by ``HANDSHAKE_TIMEOUT_S``; a failure is one log line.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import trio

from trizab.logflood import limit_floods
from trizab.runtime.tls import HANDSHAKE_TIMEOUT_S, ServerTls, TlsHandshakeError, TlsSession

__all__ = ["TLS_RECORD_HANDSHAKE", "accept_tls", "client_ids"]

log = logging.getLogger("trizab.server")
limit_floods(log)  # a failed handshake repeats for every connection a client opens

TLS_RECORD_HANDSHAKE = 0x16  # the first byte a TLS client sends (ClientHello's record type)


async def accept_tls(
    tls: ServerTls | None, stream: trio.abc.Stream, *, unified: bool, remote: str
) -> tuple[bool, TlsSession | None]:
    """(serve it?, its TLS session): handshaken TLS, or none for a plain client on a unified
    port; not served if the handshake failed or the client went away (logged)."""
    assert tls is not None
    if unified:
        sock = getattr(stream, "socket", None)
        if sock is None:
            return True, None
        try:
            first = await sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return False, None
        if not first:
            return False, None
        if first[0] != TLS_RECORD_HANDSHAKE:
            return True, None
    session = TlsSession(tls.context)
    with trio.move_on_after(HANDSHAKE_TIMEOUT_S):
        try:
            await session.handshake(stream)
            return True, session
        except TlsHandshakeError as exc:
            reason = str(exc)
            hint = " (a plain-text client on the TLS port?)" if reason == "WRONG_VERSION_NUMBER" else ""
            log.warning(
                "TLS handshake with %s failed: %s%s", remote, reason, hint, extra={"peer": _host(remote)}
            )
            return False, None
    log.warning(
        "TLS handshake with %s did not finish in %.0f s; closing",
        remote,
        HANDSHAKE_TIMEOUT_S,
        extra={"peer": _host(remote)},
    )
    return False, None


def client_ids(tls: ServerTls | None, session: TlsSession, remote: str) -> list[Any]:
    """The x509 ids of the verified client certificate (none unless clientAuth asks for one)."""
    if tls is None or not tls.authenticates:
        return []
    ids = tls.ids(session.peer_der())
    if ids:
        log.info("client %s authenticated as x509:%s", remote, ids[-1].id)
    return ids


def _host(remote: str) -> str:
    """``host`` of ``host:port`` (the flood key: one machine's connections are one flood)."""
    return remote.rsplit(":", 1)[0]
