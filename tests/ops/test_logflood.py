"""FloodFilter with records made by hand: their created time is the clock."""

from __future__ import annotations

import logging

import pytest

from trizab.logflood import FloodFilter


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> tuple[logging.Logger, FloodFilter, Captured, FakeClock]:
    clock = FakeClock()
    logger = logging.getLogger("test.flood")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Captured()
    logger.handlers[:] = [handler]
    flood = FloodFilter(interval=10.0, burst=5, clock=clock)
    logger.filters[:] = [flood]
    return logger, flood, handler, clock


def log_at(logger: logging.Logger, at: float, msg: str, *args: object, peer: str | None = None) -> None:
    """Log as the logging module does, with the record's created time set to ``at``."""
    extra = {"peer": peer} if peer is not None else {}
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 0, msg, args, None, extra=extra)
    record.created = at
    logger.handle(record)


def test_a_flood_gives_a_burst_then_one_summary_per_interval(setup) -> None:  # type: ignore[no-untyped-def]
    logger, flood, out, clock = setup
    # 5,334 refusals in 20 s, as the Apache ZooKeeper member caused: 266.7 a second.
    t0 = clock.now
    for i in range(5334):
        log_at(
            logger, t0 + i * 20 / 5334, "rejecting quorum connection: %s", f"truncated #{i}", peer="10.0.0.7"
        )
    clock.now = t0 + 30
    flood.flush()
    lines = out.lines
    assert lines[:5] == [f"rejecting quorum connection: truncated #{i}" for i in range(5)]
    summaries = [r for r in out.records if getattr(r, "flood_summary", False)]
    # Windows [0,10), [10,20) and the few records at 20 s: one summary each, nothing else.
    assert len(lines) == 5 + len(summaries) and 2 <= len(summaries) <= 3
    assert sum(r.suppressed for r in summaries) == 5334 - 5
    first = summaries[0]
    assert first.getMessage().startswith("rejecting quorum connection: truncated #")
    assert first.getMessage().endswith(f"({first.suppressed:,} more in the last 10 s)")
    assert first.peer == "10.0.0.7"


def test_a_quiet_window_ends_the_flood(setup) -> None:  # type: ignore[no-untyped-def]
    logger, flood, out, clock = setup
    for i in range(8):
        log_at(logger, 1000 + i * 0.01, "bad frame from %s", "x")
    clock.now = 1010.5
    assert flood.flush() == 1  # 3 held back
    clock.now = 1021
    assert flood.flush() == 0  # nothing held back in [1010.5, 1020.5): the flood is over
    # Later lines are logged again, a burst of them.
    for i in range(5):
        log_at(logger, 1100 + i, "bad frame from %s", "y")
    assert out.lines[-5:] == ["bad frame from y"] * 5
    assert len(out.lines) == 5 + 1 + 5


def test_peers_and_templates_are_separate_floods(setup) -> None:  # type: ignore[no-untyped-def]
    logger, _flood, out, _clock = setup
    for i in range(20):
        log_at(logger, 1000 + i * 0.01, "refused %s", i, peer="a")
        log_at(logger, 1000 + i * 0.01, "refused %s", i, peer="b")
        log_at(logger, 1000 + i * 0.01, "other %s", i, peer="a")
    assert len(out.lines) == 15
    assert sum(line.startswith("other") for line in out.lines) == 5


def test_a_line_that_is_not_repeated_is_never_held_back(setup) -> None:  # type: ignore[no-untyped-def]
    logger, flood, out, clock = setup
    for i in range(30):  # five every ten seconds: never more than the burst in a window
        log_at(logger, 1000 + i * 2.0, "slow peer %d", i)
    clock.now = 1100
    flood.flush()
    assert out.lines == [f"slow peer {i}" for i in range(30)]


def test_an_ongoing_flood_is_summed_up_by_the_next_line_too(setup) -> None:  # type: ignore[no-untyped-def]
    logger, _flood, out, _clock = setup
    for i in range(100):
        log_at(logger, 1000 + i * 0.05, "x %d", i)  # 100 lines in 5 s
    log_at(logger, 1012, "x %d", 100)  # the next window: the summary comes out, this one is held
    assert len(out.lines) == 6
    assert out.records[-1].suppressed == 95


def test_the_runtime_filter_limits_only_lines_that_name_a_peer() -> None:
    flood = FloodFilter(interval=10.0, burst=5, peers_only=True)
    logger = logging.getLogger("test.flood.peers")

    def record(msg: str, **extra: object) -> logging.LogRecord:
        rec = logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, (), None, extra=extra)
        rec.created = 1000.0
        return rec

    assert all(flood.filter(record("trizab standalone serving")) for _ in range(100))
    assert sum(flood.filter(record("refused", peer="10.0.0.1")) for _ in range(100)) == 5


def test_reset_forgets_a_flood(setup) -> None:  # type: ignore[no-untyped-def]
    logger, flood, out, _clock = setup
    for i in range(10):
        log_at(logger, 1000 + i * 0.01, "x %d", i)
    flood.reset()
    for i in range(10):
        log_at(logger, 1001 + i * 0.01, "x %d", i)
    assert len(out.lines) == 10


def test_quiet_keys_are_forgotten(setup) -> None:  # type: ignore[no-untyped-def]
    logger, flood, _out, clock = setup
    for i in range(100):
        log_at(logger, 1000.0, "refused", peer=f"10.0.{i}.1")
    for _ in range(8):
        log_at(logger, 1000.0, "refused", peer="10.9.9.9")  # a flood: held lines, summed up
    clock.now = 1010.0
    assert flood.flush() == 1
    assert len(flood._windows) == 1  # only the flood still going on is remembered
    clock.now = 1020.0
    assert flood.flush() == 0 and not flood._windows
