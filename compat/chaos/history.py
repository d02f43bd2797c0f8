"""The record a fault-injection run leaves behind, and its JSON-lines file format.

Theory of operation
-------------------
A run has *processes*: each is one kazoo client pinned to one ensemble member, holding one session
at a time (a new one after its session expired).  Every request a process makes becomes an
:class:`Op`, written down twice in effect: at invocation (``call``, the session it held) and at
completion (``ret``, the outcome and what the server answered).  Times are ``time.monotonic()``
seconds of the harness's single clock, so the ops of all processes can be ordered in real time,
which is what linearizability is about.

The outcome of an op is one of three:

* ``"ok"``: the server answered with success; the op took effect between ``call`` and ``ret``.
* ``"fail"``: the server answered with a definite error (``BadVersionError``, ``NoNodeError``,
  ``NodeExistsError``); the op had no effect, and for a cas that says something about the state.
* ``"unknown"``: no answer (timeout, connection loss, session expiry while in flight).  The op may
  have taken effect at any time after its call, or never; ``ret`` is then ``None``.

Beside the ops the harness records :class:`SessionEvent` s (what each client saw of its session),
one :class:`ClientEnd` per process (its session when the run stopped), and a :class:`FinalState`:
what every member holds once all faults are healed and the ensemble has settled.  The checkers in
:mod:`compat.chaos.checkers` judge these four together.

File format
-----------
One JSON object per line, so a harness can append records as they happen and a run killed halfway
still leaves a readable prefix (an unterminated last line is ignored on reading).  The first line is
a header ``{"type": "header", "format": "trizab-chaos-history", "version": 1}``; then each line has
``"type"`` ``"op"``, ``"session"``, ``"end"`` or ``"final"`` (at most one) and the fields of the
record.  Byte strings (znode data) are stored as JSON strings decoded as latin-1: each byte 0-255
maps to the code point of the same number, so the round trip is exact and ASCII data stays readable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

import attrs

__all__ = [
    "EVENT_KINDS",
    "KINDS",
    "OUTCOMES",
    "ClientEnd",
    "FinalState",
    "History",
    "HistoryWriter",
    "MemberState",
    "Op",
    "SessionEvent",
    "read_history",
    "write_history",
]

FORMAT = "trizab-chaos-history"
FORMAT_VERSION = 1

KINDS = frozenset({"write", "cas", "read", "seq_create", "ephemeral"})
OUTCOMES = frozenset({"ok", "fail", "unknown"})
# "ephemeral_gone": an observer saw a session's ephemeral node deleted while its client had not
# closed the session, which is evidence the ensemble expired it even if the client never heard.
EVENT_KINDS = frozenset({"established", "expired", "closed", "ephemeral_gone"})


@attrs.frozen
class Op:
    """One client request, from invocation to (maybe) completion."""

    index: int  # unique id, in order of invocation
    process: int  # client number: one kazoo client, one session at a time
    member: int  # server id the client is pinned to
    session: int | None  # session id held at invocation (None: none yet)
    # "write" (blind setData), "cas" (setData with expected version), "read" (sync, then getData),
    # "seq_create" (create sequential under key), "ephemeral" (create the session's ephemeral node)
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    key: str  # znode path; for seq_create the path prefix the server appends the number to
    value: bytes | None  # data written (write, cas)
    expected_version: int | None  # cas only
    call: float  # monotonic seconds at invocation
    ret: float | None  # monotonic seconds at completion; None when the outcome is unknown
    outcome: str = attrs.field(validator=attrs.validators.in_(OUTCOMES))
    error: str | None = None  # exception class name when not ok
    version: int | None = None  # ok write/cas: the node's new Stat.version; ok read: the version read
    read_value: bytes | None = None  # ok read: the data read
    mzxid: int | None = None  # ok write/cas/read: Stat.mzxid
    path: str | None = None  # ok seq_create / ephemeral: the path created
    client_zxid: int | None = None  # the client's last seen zxid right after completion, if known

    def describe(self) -> str:
        """A one-line account for checker reports, e.g. ``#12 p3 s0x1f cas /r/0 'x' if v4 -> ok v5``."""
        sid = "-" if self.session is None else f"{self.session:#x}"
        parts = [f"#{self.index} p{self.process}@{self.member} s{sid} {self.kind} {self.key}"]
        if self.value is not None:
            parts.append(repr(_short(self.value)))
        if self.expected_version is not None:
            parts.append(f"if v{self.expected_version}")
        result = self.outcome if self.error is None else f"{self.outcome} {self.error}"
        if self.read_value is not None:
            result += f" {_short(self.read_value)!r}"
        if self.version is not None:
            result += f" v{self.version}"
        if self.path is not None:
            result += f" {self.path}"
        ret = "?" if self.ret is None else f"{self.ret:.3f}"
        parts.append(f"-> {result} [{self.call:.3f}, {ret}]")
        return " ".join(parts)


@attrs.frozen
class SessionEvent:
    """What a client (or an observer, for ``ephemeral_gone``) saw of a session, and when."""

    process: int
    session: int
    kind: str = attrs.field(validator=attrs.validators.in_(EVENT_KINDS))
    time: float


@attrs.frozen
class MemberState:
    """One member's view once the run is over, read from that member alone."""

    last_zxid: int | None
    registers: dict[str, tuple[bytes, int, int] | None]  # key -> (data, version, mzxid); None: absent
    seq_children: list[str]  # full paths of the sequential nodes present
    ephemerals: dict[str, int]  # full path -> ephemeralOwner session id


@attrs.frozen
class FinalState:
    """Every member's view after all faults were healed and the ensemble settled."""

    members: dict[int, MemberState]  # by server id


@attrs.frozen
class ClientEnd:
    """A process's session when the run stopped."""

    process: int
    session: int | None
    connected: bool
    ephemeral_path: str | None  # the session's ephemeral node, if the client created one


@attrs.frozen
class History:
    """Everything :func:`read_history` finds in a file."""

    ops: tuple[Op, ...]
    events: tuple[SessionEvent, ...]
    final: FinalState | None
    ends: tuple[ClientEnd, ...]


# ---------------------------------------------------------------------------
# encoding


def _short(data: bytes, limit: int = 24) -> bytes:
    return data if len(data) <= limit else data[:limit] + b"..."


def _enc(data: bytes | None) -> str | None:
    return None if data is None else data.decode("latin-1")


def _dec(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


def _record(record: Op | SessionEvent | ClientEnd | FinalState) -> dict[str, Any]:
    if isinstance(record, Op):
        d = attrs.asdict(record)
        d["value"] = _enc(record.value)
        d["read_value"] = _enc(record.read_value)
        return {"type": "op", **d}
    if isinstance(record, SessionEvent):
        return {"type": "session", **attrs.asdict(record)}
    if isinstance(record, ClientEnd):
        return {"type": "end", **attrs.asdict(record)}
    if isinstance(record, FinalState):
        members = {
            str(sid): {
                "last_zxid": m.last_zxid,
                "registers": {
                    key: None if reg is None else [_enc(reg[0]), reg[1], reg[2]]
                    for key, reg in m.registers.items()
                },
                "seq_children": list(m.seq_children),
                "ephemerals": dict(m.ephemerals),
            }
            for sid, m in record.members.items()
        }
        return {"type": "final", "members": members}
    raise TypeError(f"not a history record: {record!r}")


def _member(d: Mapping[str, Any]) -> MemberState:
    return MemberState(
        last_zxid=d["last_zxid"],
        registers={
            key: None if reg is None else (str(reg[0]).encode("latin-1"), int(reg[1]), int(reg[2]))
            for key, reg in d["registers"].items()
        },
        seq_children=list(d["seq_children"]),
        ephemerals={path: int(owner) for path, owner in d["ephemerals"].items()},
    )


def _parse(d: dict[str, Any]) -> Op | SessionEvent | ClientEnd | FinalState:
    kind = d.pop("type")
    if kind == "op":
        d["value"] = _dec(d["value"])
        d["read_value"] = _dec(d["read_value"])
        return Op(**d)
    if kind == "session":
        return SessionEvent(**d)
    if kind == "end":
        return ClientEnd(**d)
    if kind == "final":
        return FinalState(members={int(sid): _member(m) for sid, m in d["members"].items()})
    raise ValueError(f"unknown record type {kind!r}")


# ---------------------------------------------------------------------------
# files


class HistoryWriter:
    """Appends records to a history file as they happen, one flushed line each.

    Flushing every line costs little at the rates a chaos run produces and means that whatever the
    harness recorded survives the harness itself being killed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file: TextIO = Path(path).open("w", encoding="utf-8")
        self._line({"type": "header", "format": FORMAT, "version": FORMAT_VERSION})

    def write(self, record: Op | SessionEvent | ClientEnd | FinalState) -> None:
        self._line(_record(record))

    def _line(self, obj: dict[str, Any]) -> None:
        # ensure_ascii keeps the file plain ASCII whatever bytes the znodes held.
        self._file.write(json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_history(
    path: str | os.PathLike[str],
    ops: Iterable[Op],
    final: FinalState | None,
    events: Iterable[SessionEvent] = (),
    ends: Iterable[ClientEnd] = (),
) -> None:
    """Write a whole history at once (ops, then session events, client ends and the final state)."""
    with HistoryWriter(path) as w:
        for record in (*ops, *events, *ends):
            w.write(record)
        if final is not None:
            w.write(final)


def read_history(path: str | os.PathLike[str]) -> History:
    """Read a file written by :class:`HistoryWriter` or :func:`write_history`.

    Ops come back sorted by ``index`` whatever order they were appended in (a harness typically
    writes an op when it completes, so out of invocation order).
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    # The last element is "" for a complete file; anything else is a line cut short by a crash.
    lines.pop()
    header = json.loads(lines[0]) if lines else {}
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {header.get('version')}, expected {FORMAT_VERSION}")
    ops: list[Op] = []
    events: list[SessionEvent] = []
    ends: list[ClientEnd] = []
    final: FinalState | None = None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = _parse(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: bad record: {exc}") from exc
        if isinstance(record, Op):
            ops.append(record)
        elif isinstance(record, SessionEvent):
            events.append(record)
        elif isinstance(record, ClientEnd):
            ends.append(record)
        else:
            if final is not None:
                raise ValueError(f"{path}:{number}: a second final state")
            final = record
    ops.sort(key=lambda op: op.index)
    return History(ops=tuple(ops), events=tuple(events), final=final, ends=tuple(ends))
