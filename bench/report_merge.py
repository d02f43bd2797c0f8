"""Several runs of the report's benchmarks into one set of figures: medians, and the ratio's range.

The machine is shared, so one run's ratio can flip; ``python -m bench.report --repeat N`` runs
everything N times. For the tables and plots each figure becomes the median of its N values per
server, and each ratio the median of the N per-run ratios (each from one run, both servers
measured minutes apart) shown with its lowest and highest value.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from bench import loadgen
from bench.scenarios.common import Figure, Outcome, ratio


def outcome_from(data: dict[str, Any]) -> Outcome:
    data = dict(data)
    data["figures"] = [Figure(**f) for f in data["figures"]]
    return Outcome(**data)


def ratio_text(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"x{values[0]:.2f}"
    return f"x{statistics.median(values):.2f} (x{min(values):.2f}-x{max(values):.2f})"


@attrs.frozen
class MergedScenario:
    outcomes: dict[str, Outcome]  # per server: median figures, the first run's counts and samples
    ratios: dict[str, dict[str, list[float]]]  # figure -> later server -> one ratio per run
    runs: int


def merge_scenario(runs: Sequence[dict[str, dict[str, Any]]]) -> MergedScenario:
    """``runs``: per run, server -> outcome (as stored in results.json)."""
    per_run = [{server: outcome_from(o) for server, o in run.items()} for run in runs]
    servers = list(per_run[0])
    merged: dict[str, Outcome] = {}
    for server in servers:
        outcomes = [run[server] for run in per_run if server in run]
        first = outcomes[0]
        names: list[str] = []
        for outcome in outcomes:
            names += [f.name for f in outcome.figures if f.name not in names]
        figures = []
        for name in names:
            found = [f for o in outcomes if (f := o.figure(name)) is not None and f.value == f.value]
            if found:
                template = found[0]
                figures.append(attrs.evolve(template, value=statistics.median(f.value for f in found)))
        errors = [f"run {i + 1}: {o.error}" for i, o in enumerate(outcomes) if o.error]
        merged[server] = attrs.evolve(
            first,
            figures=figures,
            client_cpu_s=statistics.median(o.client_cpu_s for o in outcomes),
            client_wall_s=statistics.median(o.client_wall_s for o in outcomes),
            error="; ".join(errors) or None,
        )
    ratios: dict[str, dict[str, list[float]]] = {}
    for run in per_run:
        base = run.get(servers[0])
        for server in servers[1:]:
            other = run.get(server)
            if base is None or other is None:
                continue
            for figure in other.figures:
                value = ratio(base.figure(figure.name), figure)
                if value is not None:
                    ratios.setdefault(figure.name, {}).setdefault(server, []).append(value)
    return MergedScenario(merged, ratios, len(per_run))


@attrs.frozen
class MergedLoads:
    columns: dict[str, list[dict[str, Any]] | str]  # target -> median points, or why it failed
    ratios: dict[tuple[str, int], list[float]]  # (op, outstanding) -> last target / first, per run


def find_point(value: Any, op: str, load: int) -> dict[str, Any] | None:
    if not isinstance(value, list):
        return None
    return next((p for p in value if p["op"] == op and p["outstanding"] == load), None)


def merge_loads(runs: Sequence[dict[str, Any]]) -> MergedLoads:
    """``runs``: per run, target -> list of loadgen results (dicts) or a failure string."""
    targets = list(runs[0])
    columns: dict[str, list[dict[str, Any]] | str] = {}
    for target in targets:
        points = []
        for op in loadgen.OPS:
            for load in loadgen.LOADS:
                found = [p for run in runs if (p := find_point(run.get(target), op, load)) is not None]
                if not found:
                    continue
                cpus = [p["cpu_us_per_op"] for p in found if p["cpu_us_per_op"] is not None]
                points.append(
                    {
                        "op": op,
                        "outstanding": load,
                        "ops_per_s": statistics.median(p["ops_per_s"] for p in found),
                        "p50_ms": statistics.median(p["p50_ms"] for p in found),
                        "p99_ms": statistics.median(p["p99_ms"] for p in found),
                        "cpu_us_per_op": statistics.median(cpus) if cpus else None,
                    }
                )
        failures = [
            f"run {i + 1}: {run[target]}" for i, run in enumerate(runs) if isinstance(run.get(target), str)
        ]
        columns[target] = points if points else "; ".join(failures)
    ratios: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        for op in loadgen.OPS:
            for load in loadgen.LOADS:
                ref = find_point(run.get(targets[0]), op, load)
                other = find_point(run.get(targets[-1]), op, load)
                if ref and other and ref["ops_per_s"] > 0 and len(targets) > 1:
                    ratios.setdefault((op, load), []).append(other["ops_per_s"] / ref["ops_per_s"])
    return MergedLoads(columns, ratios)
