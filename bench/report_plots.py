"""The report's plots (matplotlib, the ``bench`` extra), written as PNG files next to it.

* ``throughput_latency.png``: the load generator's points, ops/s against p50 and p99 latency,
  one panel per (servers, op), each point labelled with its requests outstanding;
* ``scenario_ratios.png``: every scenario figure as trizab's ratio to ZooKeeper's (median over
  the runs, the bar's whiskers the lowest and highest run), log scale, 1 = the same;
* ``distributions.png``: the samples behind the scenarios (notification arrivals, sessions back
  after the fail-over, mixed-load latencies), cumulative, from the first run.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.report_merge import MergedLoads, MergedScenario, find_point


def write_plots(scenarios: dict[str, MergedScenario], loads: dict[str, MergedLoads], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [_throughput_latency(plt, loads, out / "throughput_latency.png")]
    ratios = _scenario_ratios(plt, scenarios, out / "scenario_ratios.png")
    if ratios is not None:
        paths.append(ratios)
    distributions = _distributions(plt, scenarios, out / "distributions.png")
    if distributions is not None:
        paths.append(distributions)
    return paths


def _throughput_latency(plt: Any, loads: dict[str, MergedLoads], path: Path) -> Path:
    from matplotlib.ticker import FuncFormatter

    panels = [(title, op) for title in loads for op in loadgen.OPS]
    fig, axes = plt.subplots(len(loads), len(loadgen.OPS), figsize=(11, 4.2 * len(loads)), squeeze=False)
    for ax, (title, op) in zip(axes.flat, panels, strict=True):
        for target, value in loads[title].columns.items():
            points = [p for p in (find_point(value, op, n) for n in loadgen.LOADS) if p is not None]
            if not points:
                continue
            xs = [p["ops_per_s"] for p in points]
            line = ax.plot(xs, [p["p50_ms"] for p in points], marker="o", label=f"{target} p50")[0]
            ax.plot(
                xs,
                [p["p99_ms"] for p in points],
                marker="x",
                linestyle="--",
                color=line.get_color(),
                label=f"{target} p99",
            )
            for p in points:
                ax.annotate(
                    str(p["outstanding"]),
                    (p["ops_per_s"], p["p50_ms"]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
        ax.set_title(f"{op}: {title}", fontsize=10)
        ax.set_xlabel("operations / s")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 1000:g}k" if v else "0"))
        ax.set_ylabel("latency, ms")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Throughput against latency at 1, 16 and 256 requests outstanding (labels)")
    fig.tight_layout()
    return _save(plt, fig, path)


def _scenario_ratios(plt: Any, scenarios: dict[str, MergedScenario], path: Path) -> Path | None:
    labels: list[str] = []
    medians: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for name, merged in scenarios.items():
        servers = list(merged.outcomes)
        if len(servers) < 2:
            continue
        for figure in merged.outcomes[servers[-1]].figures:
            values = merged.ratios.get(figure.name, {}).get(servers[-1], [])
            if not values:
                continue
            values = sorted(values)
            mid = statistics.median(values)
            labels.append(f"{name}: {figure.name}")
            medians.append(mid)
            lows.append(mid - values[0])
            highs.append(values[-1] - mid)
    if not medians:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(medians) + 1.5))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in medians]
    ax.barh(range(len(medians)), medians, color=colors, xerr=[lows, highs], error_kw={"elinewidth": 0.8})
    ax.set_yticks(range(len(medians)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("times better than Apache ZooKeeper 3.8 (log scale; right of 1: trizab better)")
    ax.set_title("Scenarios: trizab relative to ZooKeeper\n(median of the runs; whiskers: lowest, highest)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, path)


def _distributions(plt: Any, scenarios: dict[str, MergedScenario], path: Path) -> Path | None:
    series = [
        (name, key, merged)
        for name, merged in scenarios.items()
        for key in sorted({k for o in merged.outcomes.values() for k in o.samples})
    ]
    if not series:
        return None
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), squeeze=False)
    for ax, (name, key, merged) in zip(axes.flat, series, strict=True):
        for server, outcome in merged.outcomes.items():
            values = sorted(outcome.samples.get(key, []))
            if values:
                ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=server)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(key, fontsize=8)
        ax.set_ylabel("fraction")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Distributions (cumulative, first run)")
    fig.tight_layout()
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
