"""``trizab snapshot``: ask a running server to take a snapshot now, through its AdminServer.

ZooKeeper 3.9's command: ``GET http://host:8080/commands/snapshot``.  The server
writes a snapshot and answers with its zxid and size in the ``last_zxid`` and
``snapshot_size`` headers; ``streaming=false`` asks it not to send the snapshot's
bytes too (ZooKeeper streams them by default).  The command needs ``ALL``
permission on ``/``: ``--auth digest:user:password`` is sent as ZooKeeper's
AdminServer expects it (``Authorization: digest user:password``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import attrs

__all__ = ["DEFAULT_ADMIN_ADDRESS", "SnapshotError", "SnapshotTaken", "request_snapshot"]

DEFAULT_ADMIN_ADDRESS = "127.0.0.1:8080"


class SnapshotError(Exception):
    """The snapshot was not taken; ``str()`` is one line."""


@attrs.frozen
class SnapshotTaken:
    zxid: str  # as the server wrote it, 0x...
    size: int | None


def request_snapshot(address: str, *, auth: str | None = None, timeout: float = 60.0) -> SnapshotTaken:
    """Ask the AdminServer at ``host:port`` for a snapshot; what it says it wrote."""
    url = f"http://{address}/commands/snapshot?streaming=false"
    request = urllib.request.Request(url, method="GET")
    if auth is not None:
        scheme, sep, credentials = auth.partition(":")
        if not sep or not credentials:
            raise SnapshotError(f"--auth {auth!r}: expected scheme:credentials, e.g. digest:user:password")
        request.add_header("Authorization", f"{scheme} {credentials}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = response.headers
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_of(exc.read()) or exc.reason
        raise SnapshotError(f"{url}: HTTP {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise SnapshotError(
            f"cannot reach an AdminServer at {address} ({reason}): is admin.enableServer on, "
            "and admin.serverAddress/admin.serverPort this address?"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise SnapshotError(f"{url}: {exc}") from None
    fields: dict[str, object] = {}
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            fields = parsed
    except ValueError:
        pass
    if fields.get("error"):
        raise SnapshotError(f"{url}: {fields['error']}")
    zxid = headers.get("last_zxid") or fields.get("last_zxid") or fields.get("zxid")
    size = headers.get("snapshot_size") or fields.get("snapshot_size")
    if zxid is None:
        raise SnapshotError(f"{url}: the answer names no snapshot (no last_zxid): {body[:200]!r}")
    zxid_text = zxid if isinstance(zxid, str) else f"0x{int(str(zxid)):x}"
    return SnapshotTaken(zxid_text, int(str(size)) if size is not None and str(size).isdigit() else None)


def _error_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return str(error) if error else None
