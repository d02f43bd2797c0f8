"""What every scenario shares: its scale, its figures, how one server's outcome is printed.

A scenario runs against one server at a time and returns an :class:`Outcome`: named figures
(each says whether lower or higher is better, so the table can give a ratio that always reads
"above 1: trizab is better"), counts of what actually happened (notifications received against
notifications expected, sessions back, errors) and the CPU its client processes used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs

from bench.loadgen import percentile


@attrs.frozen
class Scale:
    """How big each scenario runs (``--scale small`` is what the test runs, under a minute)."""

    fanout_sessions: int
    recursive_watchers: int
    recursive_changes: int  # writes under the recursively watched znode; each notifies every watcher
    storm_sessions: int
    bigdir_children: int
    bigdir_listings: int
    value_bytes: int
    value_loads: tuple[int, ...]
    value_seconds: float
    mixed_sessions: int
    mixed_seconds: float
    mixed_warmup: float


SCALES: dict[str, Scale] = {
    "small": Scale(
        fanout_sessions=200,
        recursive_watchers=20,
        recursive_changes=50,
        storm_sessions=200,
        bigdir_children=2_000,
        bigdir_listings=5,
        value_bytes=1 << 20,
        value_loads=(1,),
        value_seconds=0.6,
        mixed_sessions=50,
        mixed_seconds=1.0,
        mixed_warmup=0.3,
    ),
    "full": Scale(
        fanout_sessions=10_000,
        recursive_watchers=1_000,
        recursive_changes=100,
        storm_sessions=10_000,
        bigdir_children=100_000,
        bigdir_listings=20,
        value_bytes=1 << 20,
        value_loads=(1, 8),
        value_seconds=3.0,
        mixed_sessions=1_000,
        mixed_seconds=5.0,
        mixed_warmup=1.0,
    ),
}


@attrs.frozen
class Figure:
    name: str
    value: float
    unit: str  # "ms", "us", "s", "/s", "MB/s"
    lower_is_better: bool

    def text(self) -> str:
        if self.value != self.value:  # NaN: nothing measured
            return "-"
        if self.unit in ("/s", "MB/s"):
            return f"{self.value:,.0f}{self.unit}" if self.value >= 100 else f"{self.value:.1f}{self.unit}"
        digits = 3 if self.value < 10 else 1
        return f"{self.value:,.{digits}f} {self.unit}"


@attrs.define
class Outcome:
    """One scenario against one server."""

    server: str
    figures: list[Figure] = attrs.Factory(list)
    # What happened, checked by the test: e.g. {"notifications": 200, "notifications expected": 200}.
    counts: dict[str, int] = attrs.Factory(dict)
    client_cpu_s: float = 0.0  # CPU of every client process in the measured phase
    client_wall_s: float = 0.0  # the measured phase's length
    client_processes: int = 1
    # Raw samples for the report's plots (e.g. every notification's arrival, in ms).
    samples: dict[str, list[float]] = attrs.Factory(dict)
    error: str | None = None

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def client_cpu_text(self) -> str:
        if self.client_wall_s <= 0:
            return "-"
        share = 100 * self.client_cpu_s / self.client_wall_s
        return (
            f"{self.client_cpu_s:.2f} s CPU in {self.client_wall_s:.2f} s "
            f"({share:.0f}% of one core, {self.client_processes} process"
            f"{'es' if self.client_processes > 1 else ''})"
        )


def scheduler_times(pids: Sequence[int]) -> tuple[float, float] | None:
    """Seconds ``pids`` (every thread of each) have run on a CPU, and waited runnable for one.

    From Linux's ``/proc/<pid>/task/<tid>/schedstat``; None where it cannot be read. The wait
    is how long the machine's other load kept the server from running: on a shared machine it
    explains a slow figure that the server's own CPU time does not.
    """
    ran = waited = 0
    try:
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        run_ns, wait_ns, _slices = f.read().split()
                except FileNotFoundError:
                    continue  # the thread ended since the listing
                ran += int(run_ns)
                waited += int(wait_ns)
    except (OSError, ValueError):
        return None
    return ran / 1e9, waited / 1e9


def latency_figures(prefix: str, values_s: Sequence[float], unit: str = "ms") -> list[Figure]:
    """p50 / p99 / max of ``values_s`` (seconds) as figures in ``unit``."""
    scale = 1000.0 if unit == "ms" else 1.0
    ordered = sorted(values_s)
    nan = float("nan")
    return [
        Figure(f"{prefix} p50", percentile(ordered, 0.50) * scale if ordered else nan, unit, True),
        Figure(f"{prefix} p99", percentile(ordered, 0.99) * scale if ordered else nan, unit, True),
        Figure(f"{prefix} max", ordered[-1] * scale if ordered else nan, unit, True),
    ]


def ratio(reference: Figure | None, other: Figure | None) -> float | None:
    """How many times better ``other`` is than ``reference`` (above 1: better)."""
    if reference is None or other is None:
        return None
    a, b = reference.value, other.value
    if not (a > 0 and b > 0):
        return None
    return a / b if reference.lower_is_better else b / a


def ratio_verdict(value: float, server: str) -> str:
    """``x0.75: trizab worse``: the ratio, and in words which way it goes (no column to misread)."""
    if value >= 1.005:
        return f"x{value:.2f}: {server} better"
    if value <= 0.995:
        return f"x{value:.2f}: {server} worse"
    return f"x{value:.2f}: same"


def format_outcomes(title: str, outcomes: Mapping[str, Outcome]) -> str:
    """One table: a row per figure, a column per server, and each later server's ratio to the first."""
    names = list(outcomes)
    lines = [f"== {title} =="]
    for name, outcome in outcomes.items():
        if outcome.error:
            lines.append(f"{name}: FAILED: {outcome.error}")
    order: list[str] = []
    for outcome in outcomes.values():
        order += [f.name for f in outcome.figures if f.name not in order]
    width = max([len(n) for n in order] + [6])
    header = f"{'figure':<{width}}" + "".join(f" | {n:>22}" for n in names)
    if len(names) > 1:
        header += "".join(f" | {n + ' vs ' + names[0]:>30}" for n in names[1:])
    lines.append(header)
    base = outcomes[names[0]]
    for figure_name in order:
        row = f"{figure_name:<{width}}"
        for name in names:
            figure = outcomes[name].figure(figure_name)
            row += f" | {figure.text() if figure else '-':>22}"
        for name in names[1:]:
            value = ratio(base.figure(figure_name), outcomes[name].figure(figure_name))
            row += f" | {ratio_verdict(value, name) if value is not None else '-':>30}"
        lines.append(row)
    for name, outcome in outcomes.items():
        counts = ", ".join(f"{k} {v:,}" for k, v in outcome.counts.items())
        lines.append(f"{name}: {counts}")
        lines.append(f"{name}: client {outcome.client_cpu_text()}")
    if len(names) > 1:
        lines.append(
            f"(x: how many times better than {names[0]}, whatever the figure: its time / this one's, "
            "or this one's throughput / its throughput; below 1 the named server is worse)"
        )
    return "\n".join(lines)
