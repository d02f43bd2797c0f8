"""ZooKeeper's summaries (``ServerMetrics``' latencies, fsync and snapshot times, ...) as counts.

Theory of operation
-------------------
ZooKeeper records each latency, fsync time or election time into a ``Summary``
(``ServerMetrics.READ_LATENCY.add(ms)``), which its Prometheus provider exports with
quantiles over the last ten minutes, and its default provider prints in ``mntr`` as
``avg_/min_/max_/cnt_/sum_<name>`` (plus ``p50_`` ... ``p999_`` for the detailed ones).

A :class:`Distribution` keeps what is needed for all of that in one list of counts,
so that recording a value costs one list increment and nothing else: the request
path (every reply's latency) does it inline, ``counts[ms] += 1``.  Values below
:data:`EXACT` (milliseconds: 1.024 s) are counted exactly; larger ones, rare, go
through :meth:`Distribution.record_large` into one bucket per power of two, with
their exact sum and maximum kept aside.  Count, sum, min and max are therefore
exact; a quantile is exact below :data:`EXACT` and within a factor of two above.

Quantiles are over a sliding window, as ZooKeeper's (the Prometheus Java client's
``Summary`` with ``maxAgeSeconds`` 600 in 5 age buckets): whoever reads them
passes the time, and the distribution keeps a copy of its counts at most every
``window_s / AGE_BUCKETS`` seconds; the window is the counts now minus the newest
copy at least ``window_s`` old.  Nothing runs in the background and the recording
side never rotates: the window advances when it is read (a scrape), so a
distribution read less often than every ``window_s`` reports over a longer span.

Sans-I/O: no clock, no locks; the runtime's single event-loop thread owns each
distribution, records into it and reads it.
"""

from __future__ import annotations

import collections
import math

from trizab.wire.codes import WRITE_OPCODES

__all__ = [
    "ADVANCED_QUANTILES",
    "BASIC_QUANTILES",
    "EXACT",
    "UPDATE_OPCODES",
    "Distribution",
    "ElectionTimer",
]

EXACT = 1024
_LARGE_BASE = EXACT - EXACT.bit_length()  # counts index of a large value: _LARGE_BASE + bit_length
_SIZE = _LARGE_BASE + 65
AGE_BUCKETS = 5
WINDOW_S = 600.0

# PrometheusMetricsProvider: BASIC summaries export the median, ADVANCED ones 0.5, 0.9, 0.99.
BASIC_QUANTILES: tuple[float, ...] = (0.5,)
ADVANCED_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
# DefaultMetricsProvider's mntr percentiles of an ADVANCED summary (AvgMinMaxPercentileCounter).
_MNTR_PERCENTILES = (("p50_", 0.5), ("p95_", 0.95), ("p99_", 0.99), ("p999_", 0.999))

# Requests whose latency is ZooKeeper's updatelatency (they carry a txn header: PrepRequestProcessor
# turns them into a transaction, an error txn if they fail); every other reply is readlatency.
# They are the write opcodes the core turns into transactions.
UPDATE_OPCODES = frozenset(int(op) for op in WRITE_OPCODES)


class Distribution:
    """One summary's counts (see the module docstring)."""

    __slots__ = (
        "_mark_counts",
        "_mark_large_max",
        "_mark_large_sum",
        "_ring",
        "counts",
        "detailed",
        "large_max",
        "large_sum",
        "name",
        "window_s",
    )

    def __init__(self, name: str, *, detailed: bool = False, window_s: float = WINDOW_S) -> None:
        self.name = name
        # ZooKeeper's DetailLevel.ADVANCED: more quantiles (and mntr's p50_..p999_ keys).
        self.detailed = detailed
        self.window_s = window_s
        # counts[v] for 0 <= v < EXACT; counts[_LARGE_BASE + v.bit_length()] for larger v.
        self.counts = [0] * _SIZE
        self.large_sum = 0
        self.large_max = 0
        # (time, copy of counts), oldest first: the window's start (see quantiles).
        self._ring: collections.deque[tuple[float, list[int]]] = collections.deque()
        # A reader's reset point (ServerStats' srst): the counts then, and the large values since.
        self._mark_counts: list[int] | None = None
        self._mark_large_sum = 0
        self._mark_large_max = 0

    @property
    def quantile_levels(self) -> tuple[float, ...]:
        return ADVANCED_QUANTILES if self.detailed else BASIC_QUANTILES

    def record(self, value: int) -> None:
        """Count ``value`` (negative values count as 0, as a clock step back would give)."""
        if value < EXACT:
            self.counts[value if value > 0 else 0] += 1
        else:
            self.record_large(value)

    def record_large(self, value: int) -> None:
        """The slow path of :meth:`record`, for callers that count small values inline."""
        self.counts[_LARGE_BASE + value.bit_length()] += 1
        self.large_sum += value
        if value > self.large_max:
            self.large_max = value
        if value > self._mark_large_max:
            self._mark_large_max = value

    # -- reading ------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def total(self) -> int:
        counts = self.counts
        return sum(v * counts[v] for v in range(EXACT) if counts[v]) + self.large_sum

    @property
    def min(self) -> int:
        counts = self.counts
        for i, n in enumerate(counts):
            if n:
                return i if i < EXACT else 1 << (i - _LARGE_BASE - 1)
        return 0

    @property
    def max(self) -> int:
        if self.large_max:
            return self.large_max
        counts = self.counts
        for v in range(EXACT - 1, -1, -1):
            if counts[v]:
                return v
        return 0

    def move_mark(self) -> None:
        """Start :meth:`since_mark` afresh (the counts themselves are never reset)."""
        self._mark_counts = list(self.counts)
        self._mark_large_sum = self.large_sum
        self._mark_large_max = 0

    def since_mark(self) -> tuple[int, int, int | None, int]:
        """(count, sum, min or None, max) of the values recorded since :meth:`move_mark` (or ever)."""
        mark = self._mark_counts
        counts = self.counts if mark is None else [a - b for a, b in zip(self.counts, mark, strict=True)]
        total = sum(v * counts[v] for v in range(EXACT) if counts[v]) + self.large_sum - self._mark_large_sum
        smallest: int | None = None
        largest = 0
        for i, n in enumerate(counts):
            if n:
                value = i if i < EXACT else 1 << (i - _LARGE_BASE - 1)
                smallest = value if smallest is None else smallest
                largest = i if i < EXACT else self._mark_large_max
        return sum(counts), total, smallest, largest

    def quantiles(self, now: float, levels: tuple[float, ...] | None = None) -> list[tuple[float, float]]:
        """(level, value) over the last ``window_s`` seconds as of ``now``; NaN when empty."""
        window = self._window(now)
        n = sum(window)
        out: list[tuple[float, float]] = []
        for q in levels if levels is not None else self.quantile_levels:
            out.append((q, self._value_at(window, q * n) if n else math.nan))
        return out

    def mntr_rows(self, now: float) -> list[tuple[str, int | float]]:
        """DefaultMetricsProvider's mntr keys of this summary (AvgMinMax[Percentile]Counter.values())."""
        count, total = self.count, self.total
        avg = round(total / count, 4) if count else 0.0
        rows: list[tuple[str, int | float]] = [
            (f"avg_{self.name}", avg),
            (f"min_{self.name}", self.min),
            (f"max_{self.name}", self.max),
            (f"cnt_{self.name}", count),
            (f"sum_{self.name}", total),
        ]
        if self.detailed:
            levels = tuple(q for _, q in _MNTR_PERCENTILES)
            for (prefix, _), (_, value) in zip(_MNTR_PERCENTILES, self.quantiles(now, levels), strict=True):
                rows.append((f"{prefix}{self.name}", 0 if math.isnan(value) else round(value)))
        return rows

    def _window(self, now: float) -> list[int]:
        ring = self._ring
        if not ring:
            ring.append((now, [0] * _SIZE))  # first read: everything so far is in the window
        elif now - ring[-1][0] >= self.window_s / AGE_BUCKETS:
            ring.append((now, list(self.counts)))
        # Start from the newest copy at least window_s old (or the oldest there is): the
        # window spans window_s to window_s plus one age bucket, as the Java client's does.
        while len(ring) > 1 and now - ring[1][0] >= self.window_s:
            ring.popleft()
        start = ring[0][1]
        return [a - b for a, b in zip(self.counts, start, strict=True)]

    def _value_at(self, window: list[int], rank: float) -> float:
        seen = 0
        for i, n in enumerate(window):
            if not n:
                continue
            seen += n
            if seen >= rank:
                if i < EXACT:
                    return float(i)
                upper = (1 << (i - _LARGE_BASE)) - 1
                return float(min(upper, self.large_max))
        return float(self.max)


class ElectionTimer:
    """ZooKeeper's ``election_time``: ms from entering LOOKING until the member leads or follows.

    ZooKeeper records it once the election ended (``Leader.lead``, ``Follower.followLeader``),
    before the new leader's synchronisation, as this does on the role change.
    """

    __slots__ = ("_since", "election_time")

    def __init__(self) -> None:
        self.election_time = Distribution("election_time")
        self._since: float | None = None  # when LOOKING began; None while not LOOKING

    def looking(self, is_looking: bool, now: float) -> None:
        """The member's role is (or is not) LOOKING as of ``now`` (seconds)."""
        if is_looking:
            if self._since is None:
                self._since = now
        elif self._since is not None:
            self.election_time.record(round((now - self._since) * 1000))
            self._since = None
