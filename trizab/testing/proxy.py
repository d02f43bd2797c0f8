"""Small TCP proxies a test controls, to cut members of an ensemble off without root.

Theory of operation
-------------------
A :class:`ProxyNet` runs one trio loop in a background thread of the test process and
owns every proxy in it.  :meth:`ProxyNet.add` opens a listener on a free 127.0.0.1 port
that forwards each connection to one target port; an ensemble under test writes these
ports into its members' ``server.N`` lines, one proxy per (member, peer, port), so every
byte between two members crosses a proxy that knows which link it carries.

:meth:`ProxyNet.cut` turns links off the way a lost route does: their open connections
are closed at once (both members see the connection end, so they react within a tick
instead of waiting for a timeout), and new connections are accepted but held silent:
what is sent is read and dropped, nothing comes back, so a member retrying is not spun
in a loop of refusals.  :meth:`ProxyNet.restore` turns them on again and closes the held
connections, so the members reconnect through a working link.  A connection whose target
refuses is closed, as the direct connection would have been refused.

The synchronous methods are called from the test's thread; they hand the work to the
loop (``trio.from_thread``) and return once it is done, so after :meth:`cut` returns no
byte crosses the cut links.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable
from typing import Any

import attrs
import trio

__all__ = ["Link", "ProxyNet"]

HOST = "127.0.0.1"
_CHUNK = 65536


@attrs.define(eq=False)
class Link:
    """One proxy: ``port`` (where members connect) forwards to ``target`` (the real port)."""

    port: int
    target: int
    listener: trio.SocketListener
    cut: bool = False
    live: set[trio.CancelScope] = attrs.Factory(set)  # forwarded connections
    held: set[trio.CancelScope] = attrs.Factory(set)  # accepted while cut: read and dropped


class ProxyNet:
    """Proxies on 127.0.0.1 run by one trio loop in a daemon thread (see the module docstring)."""

    def __init__(self) -> None:
        started: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.Nursery] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(started,), name="trizab-proxies", daemon=True)
        self._thread.start()
        first = started.get()
        if isinstance(first, BaseException):
            raise first
        self._token, self._nursery = first
        self.links: list[Link] = []

    def _run(self, started: queue.Queue[Any]) -> None:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                started.put((trio.lowlevel.current_trio_token(), nursery))
                await trio.sleep_forever()

        try:
            trio.run(main)
        except BaseException as exc:  # reported to the constructor if it failed to start
            started.put(exc)

    # -- the test's side -----------------------------------------------------------------

    def add(self, target: int) -> Link:
        """A new proxy to ``127.0.0.1:target``; its ``port`` is where to connect."""
        link: Link = trio.from_thread.run(self._open, target, trio_token=self._token)
        self.links.append(link)
        return link

    def cut(self, links: Iterable[Link]) -> None:
        """Close the links' connections and hold new ones silent until :meth:`restore`."""
        trio.from_thread.run_sync(self._set_cut, list(links), True, trio_token=self._token)

    def restore(self, links: Iterable[Link] | None = None) -> None:
        """Forward again (every link when None), closing what was held while cut."""
        chosen = self.links if links is None else list(links)
        trio.from_thread.run_sync(self._set_cut, chosen, False, trio_token=self._token)

    def close(self) -> None:
        """Close every proxy and connection and end the loop's thread."""
        if self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._nursery.cancel_scope.cancel, trio_token=self._token)
            self._thread.join(5.0)

    # -- the loop's side -----------------------------------------------------------------

    async def _open(self, target: int) -> Link:
        listener = (await trio.open_tcp_listeners(0, host=HOST))[0]
        port = listener.socket.getsockname()[1]
        link = Link(port=port, target=target, listener=listener)
        self._nursery.start_soon(self._accept, link)
        return link

    def _set_cut(self, links: list[Link], cut: bool) -> None:
        for link in links:
            link.cut = cut
            for scope in list(link.live if cut else link.held):
                scope.cancel()

    async def _accept(self, link: Link) -> None:
        async with link.listener:
            while True:
                stream = await link.listener.accept()
                self._nursery.start_soon(self._serve, link, stream)

    async def _serve(self, link: Link, stream: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            held = link.cut
            (link.held if held else link.live).add(scope)
            try:
                async with stream:
                    if held:
                        await _drain(stream)
                    else:
                        await _forward(stream, link.target)
            finally:
                (link.held if held else link.live).discard(scope)


async def _drain(stream: trio.SocketStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(_CHUNK):
            pass


async def _forward(stream: trio.SocketStream, target: int) -> None:
    try:
        upstream = await trio.open_tcp_stream(HOST, target)
    except OSError:
        return  # the member is down: the accepted connection closes, as a refusal would
    async with upstream, trio.open_nursery() as nursery:
        nursery.start_soon(_pump, stream, upstream, nursery.cancel_scope)
        nursery.start_soon(_pump, upstream, stream, nursery.cancel_scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, both: trio.CancelScope) -> None:
    """Copy until either side ends, then end both (the members' protocols never half-close)."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await source.receive_some(_CHUNK):
            await sink.send_all(data)
    both.cancel()
