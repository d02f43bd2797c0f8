"""Shared helpers for storage tests: building transactions and opening engines."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from trizab.plugin import load_plugin
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode


def zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def make_txn(z: int, kind: int = 0, size: int = 8) -> Txn:
    """A transaction with zxid ``z``; ``kind`` picks one of a few body types."""
    header = r.TxnHeader(
        client_id=0x100 + z % 7, cxid=z & 0x7FFFFFFF, zxid=z, time=1_700_000_000_000 + z, type=0
    )
    match kind % 5:
        case 0:
            body: Any = r.SetDataTxn(path=f"/n{z % 13}", data=bytes([z % 251]) * size, version=z % 1000)
            op = OpCode.SET_DATA
        case 1:
            acl = [r.ACL(perms=31, id=r.Id(scheme="world", id="anyone"))]
            body = r.CreateTxn(
                path=f"/c{z}", data=b"x" * size, acl=acl, ephemeral=bool(z & 1), parent_c_version=z % 50
            )
            op = OpCode.CREATE
        case 2:
            body = r.DeleteTxn(path=f"/c{z - 1}")
            op = OpCode.DELETE
        case 3:
            body = r.CreateSessionTxn(time_out=30_000)
            op = OpCode.CREATE_SESSION
        case _:
            body = r.ErrorTxn(err=-101)
            op = OpCode.ERROR
    return Txn(
        header=r.TxnHeader(header.client_id, header.cxid, header.zxid, header.time, int(op)), body=body
    )


def make_txns(zxids: list[int] | range, size: int = 8) -> list[Txn]:
    return [make_txn(z, kind=i, size=size) for i, z in enumerate(zxids)]


def storage_plugin_names() -> list[str]:
    """Every storage plugin installed, found the way trizab finds them."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group="trizab.storage")})


def new_storage(name: str, base: Path, **options: str) -> Any:
    return load_plugin(
        "trizab.storage",
        name,
        options,
        data_dir=base / "data",
        data_log_dir=base / "log",
        force_sync=True,
    )
