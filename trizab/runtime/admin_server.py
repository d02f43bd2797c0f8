"""ZooKeeper's AdminServer: ``GET <admin.commandURL>/<command>`` answered with JSON, over HTTP.

Theory of operation
-------------------
One task serves HTTP (:func:`trizab.runtime.http_server.serve_http`, GET and HEAD only) on
``admin.serverAddress:admin.serverPort`` (127.0.0.1:8080 unless configured).  A request
for a command does not read the server's state itself: it posts an :class:`AdminQuery` to
the core task's inbox, and the core task (the one owner of the server core, as for the
four-letter words) gathers an :class:`~trizab.frontend.admin_commands.AdminView` and runs
the command, so what a command reports is consistent and nothing else touches the core.
The JSON shapes are :mod:`trizab.frontend.admin_commands`'s.

``snapshot`` (ZooKeeper 3.9's ``SnapshotCommand``) asks the snapshotter for a snapshot that
starts after the request and waits for it to be written; at most one per
``admin.snapshot.intervalInMS`` (429 otherwise), none when ``admin.snapshot.enabled`` is
false (503).  The snapshot's zxid and size come back in ZooKeeper's ``last_zxid`` and
``snapshot_size`` headers and in the JSON.  ZooKeeper streams the snapshot's bytes by
default and guards the command with authentication; trizab's AdminServer has no
authentication, so it never sends the data: only ``streaming=false`` is served.

A port that cannot be bound is logged as one line and the server goes on without an
AdminServer (a member of a ZooKeeper ensemble does the same; a standalone ZooKeeper
exits with status 4 instead, see README).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import attrs
import trio

from trizab import config as cfg
from trizab.frontend import admin_commands as commands
from trizab.runtime.admin import Admin
from trizab.runtime.disk import StartupError
from trizab.runtime.http_server import HttpResponse, serve_http
from trizab.runtime.snapshots import SnapshotAbandoned, Snapshotter

__all__ = ["AdminQuery", "AdminServer", "answer_query", "initial_configuration"]

log = logging.getLogger("trizab.admin")

QUERY_TIMEOUT_S = 10.0  # the core task answers in microseconds; this bounds a wedged server
SNAPSHOT_TIMEOUT_S = 300.0


@attrs.frozen(slots=True)
class AdminQuery:
    """Run ``fn`` in the core task and send its result (or its exception) to ``reply``."""

    fn: Callable[[], Any]
    reply: trio.MemorySendChannel[tuple[bool, Any]]


def answer_query(query: AdminQuery) -> None:
    """The core task's handler for :class:`AdminQuery` (never raises into the core task)."""
    try:
        result: tuple[bool, Any] = (True, query.fn())
    except Exception as exc:
        log.exception("internal error answering an AdminServer command")
        result = (False, exc)
    try:
        query.reply.send_nowait(result)
    except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the asker gave up (timed out); nothing to do


def initial_configuration(config: cfg.ServerConfig) -> str | None:
    """``initial_configuration``: the zoo.cfg text a standalone server started from.

    Unlike ZooKeeper, the values of keys naming a password are shown as ``****``.
    """
    if config.source is None:
        return None
    try:
        text = config.source.read_text()
    except OSError:
        return None
    lines = []
    for line in text.splitlines(keepends=True):
        key, sep, _value = line.partition("=")
        if sep and "password" in key.lower() and not key.lower().endswith("path"):
            line = f"{key}=****\n"
        lines.append(line)
    return "".join(lines)


class AdminServer:
    """The AdminServer of one trizab server (see the module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        admin: Admin,
        snapshots: Snapshotter,
        *,
        member: Callable[[], commands.MemberView | None] = lambda: None,
        initial_configuration: str | None = None,
    ) -> None:
        self.config = config
        self.admin = admin
        self.snapshots = snapshots
        self.member = member
        self.initial_configuration = initial_configuration
        self.post: Callable[[Any], Any] | None = None  # the core task's post, set by serve()
        self.port: int | None = None  # the bound port once serving (None: not serving)
        self._last_snapshot_at: float | None = None

    async def serve(
        self,
        post: Callable[[Any], Any],
        *,
        task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; ``post`` puts an event on the core task's inbox (which must
        route :class:`AdminQuery` to :func:`answer_query`).  Reports the bound port, or None."""
        config = self.config
        if not config.admin_enable_server:
            task_status.started(None)
            return
        self.post = post
        try:
            await serve_http(
                config.admin_server_address,
                config.admin_server_port,
                self.handle,
                name="AdminServer",
                idle_timeout=config.admin_idle_timeout_ms / 1000.0,
                task_status=task_status,
            )
        except StartupError as exc:
            log.warning("%s; going on without the AdminServer (admin.enableServer=false turns it off)", exc)
            task_status.started(None)

    # -- requests ---------------------------------------------------------------------

    async def handle(self, path: str, query: str) -> HttpResponse:
        base = self.config.admin_command_url
        path = unquote(path)
        if path in (base, base + "/") or (base == "/" and path == "/"):
            links = commands.command_links(base.rstrip("/"))
            return HttpResponse(200, links.encode(), content_type="text/html; charset=utf-8")
        prefix = base.rstrip("/") + "/"
        if not path.startswith(prefix):
            return HttpResponse(404, b"not found\n", content_type="text/plain; charset=utf-8")
        name = path[len(prefix) :]
        # As ZooKeeper's servlet: each parameter's first value.
        kwargs: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            kwargs.setdefault(key, value)
        if name in commands.SNAPSHOT_NAMES:
            return await self._snapshot(name, kwargs)
        data = await self.in_core_task(lambda: commands.run(name, self.view, kwargs))
        return HttpResponse(200, commands.to_json(data))

    async def in_core_task(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the core task and return its result (re-raising its exception)."""
        assert self.post is not None
        send, recv = trio.open_memory_channel[tuple[bool, Any]](1)
        with trio.fail_after(QUERY_TIMEOUT_S):
            await self.post(AdminQuery(fn, send))
            ok, result = await recv.receive()
        if not ok:
            raise result
        return result

    def view(self) -> commands.AdminView:
        """Everything the commands show; called in the core task."""
        admin = self.admin
        status = admin.status()
        last = self.snapshots.last_saved
        seconds = -1
        if last is not None:
            age_ms = (trio.current_time() - last[2]) * 1000.0
            seconds = int((admin.clock.now_ms() - age_ms) // 1000)
        return commands.AdminView(
            snapshot=admin.snapshot(status),
            serving=status.serving,
            member=self.member(),
            initial_configuration=self.initial_configuration,
            last_snapshot_zxid=last[0] if last is not None else None,
            last_snapshot_seconds=seconds,
        )

    async def _snapshot(self, name: str, kwargs: dict[str, str]) -> HttpResponse:
        config = self.config
        if not config.admin_snapshot_enabled:
            return self._json(503, commands.response("snapshot"))
        serving = await self.in_core_task(lambda: self.admin.status().serving)
        if not serving:
            return self._json(200, commands.response(name, error=commands.NOT_SERVING))
        if kwargs.get("streaming", "true").lower() != "false":
            error = (
                "streaming a snapshot is not supported (the AdminServer has no authentication); "
                "ask with streaming=false to take one"
            )
            return self._json(400, commands.response("snapshot", error=error))
        now = trio.current_time()
        interval = config.admin_snapshot_interval_ms / 1000.0
        if self._last_snapshot_at is not None and now - self._last_snapshot_at < interval:
            return self._json(429, commands.response("snapshot"))
        self._last_snapshot_at = now
        try:
            with trio.fail_after(SNAPSHOT_TIMEOUT_S):
                zxid, size = await self.snapshots.snapshot_now()
        except (SnapshotAbandoned, trio.TooSlowError) as exc:
            log.warning("snapshot command: %s", exc or "timed out")
            return self._json(500, commands.response("snapshot", error=str(exc) or "timed out"))
        last_zxid = f"0x{zxid:x}"
        data = {"last_zxid": last_zxid, "snapshot_size": size}
        headers = (("last_zxid", last_zxid), ("snapshot_size", str(size)))
        return HttpResponse(200, commands.to_json(commands.response("snapshot", data)), headers=headers)

    @staticmethod
    def _json(status: int, data: dict[str, Any]) -> HttpResponse:
        return HttpResponse(status, commands.to_json(data))
