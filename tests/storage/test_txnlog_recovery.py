"""Crash recovery of ``storage=txnlog``: torn tails, flipped bits, damaged snapshots.

The expected outcome is computed from the record layout (16-byte file header,
then 12 + len(txn) + 1 bytes per record), not from the engine's own reader:
recovery must return exactly the records that lie wholly and intact before the
damage, and must never return a damaged one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import make_txns, new_storage

from trizab.txn import Txn

HEADER = 16


def build_log(base: Path, txns: list[Txn], batches: int = 3) -> tuple[Path, bytes, list[int]]:
    """Write ``txns`` in a few syncs; return the segment, its used bytes and each record's end."""
    s = new_storage("txnlog", base)
    s.open()
    step = -(-len(txns) // batches)
    for k in range(0, len(txns), step):
        s.append(txns[k : k + step])
        s.sync()
    s.close()
    (segment,) = sorted((base / "log" / "version-2").glob("log.*"))
    ends, pos = [], HEADER
    for t in txns:
        pos += 12 + len(t.encode()) + 1
        ends.append(pos)
    data = segment.read_bytes()
    assert data[pos:].strip(b"\0") == b""  # only preallocated zeros follow the records
    return segment, data[:pos], ends


def recover(base: Path) -> list[Txn]:
    s = new_storage("txnlog", base)
    try:
        return s.open().txns
    finally:
        s.close()


def intact_prefix(txns: list[Txn], ends: list[int], damaged_at: int) -> list[Txn]:
    """Records that end at or before byte ``damaged_at`` (the first damaged byte)."""
    return [t for t, e in zip(txns, ends, strict=True) if e <= damaged_at]


@pytest.fixture
def log_setup(tmp_path: Path) -> tuple[Path, Path, bytes, list[int], list[Txn]]:
    txns = make_txns(range(1, 13), size=5)
    segment, used, ends = build_log(tmp_path, txns)
    return tmp_path, segment, used, ends, txns


def test_cut_at_every_offset_of_the_last_records(log_setup, caplog: pytest.LogCaptureFixture) -> None:
    base, segment, used, ends, txns = log_setup
    start = ends[-4]  # the last three records, byte by byte
    for cut in range(start, len(used) + 1):
        segment.write_bytes(used[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            got = recover(base)
        expected = intact_prefix(txns, ends, cut)
        assert got == expected, cut
        good_end = ends[len(expected) - 1]
        # Zero bytes (the high half of a checksum) look exactly like preallocation.
        dropped = len(used[good_end:cut].rstrip(b"\0"))
        if dropped:
            (line,) = [m for m in caplog.messages if "dropping" in m]
            assert f"at offset {good_end}" in line
            assert f"dropping {dropped} bytes" in line
        else:
            assert not [m for m in caplog.messages if "dropping" in m]
        # The torn tail is gone from disk: recovery is idempotent and appends continue cleanly.
        assert segment.read_bytes()[good_end:].strip(b"\0") == b""


def test_torn_write_inside_preallocated_space(log_setup) -> None:
    # A crash mid-write leaves a prefix of the batch followed by preallocated zeros.
    base, segment, used, ends, txns = log_setup
    size = 1 << 16
    for cut in range(ends[-4], len(used) + 1, 3):
        segment.write_bytes(used[:cut] + b"\0" * (size - cut))
        assert recover(base) == intact_prefix(txns, ends, cut), cut


def test_recovery_truncates_so_new_appends_are_clean(log_setup) -> None:
    base, segment, used, ends, txns = log_setup
    for cut in range(ends[-3] + 1, ends[-2], 5):
        segment.write_bytes(used[:cut])
        s = new_storage("txnlog", base)
        rec = s.open()
        assert rec.txns == txns[:-2]
        fresh = make_txns(range(rec.last_zxid + 1, rec.last_zxid + 4), size=40)
        s.append(fresh)
        s.sync()
        s.close()
        assert recover(base) == txns[:-2] + fresh
        # Restore for the next iteration (the new segment was created after recovery).
        for p in (base / "log" / "version-2").glob("log.*"):
            if p != segment:
                p.unlink()


def test_flip_every_bit_of_the_last_records(log_setup) -> None:
    base, segment, used, ends, txns = log_setup
    tail = b"\0" * 64
    original = used + tail
    start = ends[-4]
    for pos in range(start, len(original)):
        for bit in (0, 3, 7):
            damaged = bytearray(original)
            damaged[pos] ^= 1 << bit
            segment.write_bytes(bytes(damaged))
            got = recover(base)
            # The damaged record (the one whose span holds pos) and everything after it go;
            # a flip in the zero padding after the last record costs nothing.
            assert got == intact_prefix(txns, ends, pos), (pos, bit)


def test_damage_in_an_earlier_segment_discards_later_segments(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    first, second = make_txns(range(1, 11)), make_txns(range(11, 21))
    s.append(first)
    s.sync()
    s.save_snapshot(3, b"snap")  # rolls the log: `second` goes to a new segment
    s.append(second)
    s.sync()
    s.close()
    logdir = tmp_path / "log" / "version-2"
    seg1, seg2 = sorted(logdir.glob("log.*"), key=lambda p: int(p.name[4:], 16))
    data = bytearray(seg1.read_bytes())
    ends, pos = [], HEADER
    for t in first:
        pos += 12 + len(t.encode()) + 1
        ends.append(pos)
    data[ends[6] + 14] ^= 0x10  # inside record 8's body
    seg1.write_bytes(bytes(data))
    rec = recover(tmp_path)
    assert rec == first[3:7]  # after snapshot 3, up to the damage; nothing from seg2
    assert not seg2.exists()
    assert (logdir / (seg2.name + ".corrupt")).exists()


def test_corrupt_newest_snapshot_falls_back_to_older(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    txns = make_txns(range(1, 31))
    s.append(txns[:10])
    s.sync()
    s.save_snapshot(10, b"older" * 100)
    s.append(txns[10:20])
    s.sync()
    s.save_snapshot(20, b"newer" * 100)
    s.append(txns[20:])
    s.sync()
    s.close()
    snapdir = tmp_path / "data" / "version-2"
    newest = snapdir / "snapshot.14"
    for damage in ("flip", "cut", "empty"):
        raw = bytearray(newest.read_bytes()) if damage != "empty" else bytearray()
        backup = newest.read_bytes()
        if damage == "flip":
            raw[len(raw) // 2] ^= 1
        elif damage == "cut":
            raw = raw[: len(raw) - 3]
        newest.write_bytes(bytes(raw))
        s = new_storage("txnlog", tmp_path)
        rec = s.open()
        s.close()
        assert rec.snapshot == b"older" * 100, damage
        assert rec.snapshot_zxid == 10
        assert rec.txns == txns[10:]
        newest.write_bytes(backup)


def test_leftover_temporary_snapshot_is_ignored(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    s.append(make_txns(range(1, 6)))
    s.sync()
    s.close()
    (tmp_path / "data" / "version-2" / "snapshot.5.tmp").write_bytes(b"half a snapsh")
    rec = recover(tmp_path)
    assert [t.zxid for t in rec] == [1, 2, 3, 4, 5]


def test_random_garbage_after_a_prefix(tmp_path: Path) -> None:
    txns = make_txns(range(1, 13), size=5)
    segment, used, ends = build_log(tmp_path, txns, batches=2)

    @settings(derandomize=True, max_examples=200, deadline=None)
    @given(
        keep=st.integers(min_value=0, max_value=12),
        garbage=st.binary(min_size=1, max_size=80),
        gap=st.integers(min_value=0, max_value=40),
    )
    def check(keep: int, garbage: bytes, gap: int) -> None:
        good_end = ends[keep - 1] if keep else HEADER
        segment.write_bytes(used[:good_end] + garbage + b"\0" * gap + garbage)
        # A valid-looking record inside random garbage is vanishingly unlikely (it needs
        # a matching Adler-32, length, end marker and a decodable txn with a higher zxid).
        assert recover(tmp_path) == txns[:keep]
        # After recovery the file holds nothing beyond the intact prefix.
        assert segment.read_bytes()[good_end:].strip(b"\0") == b""

    check()


def test_recovery_log_line_names_file_and_bytes(log_setup, caplog: pytest.LogCaptureFixture) -> None:
    base, segment, used, ends, _ = log_setup
    segment.write_bytes(used[: ends[-1] - 2])
    with caplog.at_level(logging.WARNING):
        recover(base)
    (line,) = caplog.messages
    assert re.search(
        rf"{re.escape(str(segment))}: torn record at offset {ends[-2]}; .*dropping \d+ bytes", line
    )


@pytest.mark.parametrize("stray_at", [None, 0, (1 << 20) - 1, 1 << 20, (3 << 20) + 5])
def test_segment_copied_without_holes(
    log_setup, caplog: pytest.LogCaptureFixture, stray_at: int | None
) -> None:
    # A copy (cp, a backup) writes the preallocated zeros out as data: a stray byte anywhere in
    # them, chunk boundaries included, is a torn batch and must be cut off, however far out.
    base, segment, used, _ends, txns = log_setup
    tail = bytearray(4 << 20)
    if stray_at is not None:
        tail[stray_at] = 0x42
    segment.write_bytes(used + bytes(tail))
    with caplog.at_level(logging.WARNING):
        assert recover(base) == txns
    if stray_at is None:
        assert not caplog.messages
        assert len(segment.read_bytes()) == len(used) + len(tail)
    else:
        assert f"dropping {stray_at + 1} bytes" in caplog.messages[0]
        assert segment.read_bytes()[len(used) :].strip(b"\0") == b""


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=64),
    zeros=st.sampled_from([0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 3]),
    start=st.integers(min_value=0, max_value=80),
)
def test_nonzero_end_agrees_with_rstrip(data: bytes, zeros: int, start: int) -> None:
    from trizab.plugins.storage.txnlog import _nonzero_end

    buf = data + bytes(zeros) + data[:3]
    start = min(start, len(buf))
    assert _nonzero_end(buf, start) == start + len(buf[start:].rstrip(b"\0"))
