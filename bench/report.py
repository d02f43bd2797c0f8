"""``python -m bench.report``: run the scenarios and the load generator, write a Markdown report.

Theory of operation: the report is ``--repeat`` runs of everything a reader needs to compare
trizab with Apache ZooKeeper 3.8 on this machine: every scenario of ``bench.scenarios`` (each
against both servers, one after the other) and ``bench.loadgen``'s getData/setData at 1, 16 and
256 outstanding, standalone and with 3 members. The figures are kept in ``results.json`` first
(``--from-json`` renders a report again without running anything, and copies the figures
next to it), merged over the runs
(``bench.report_merge``: medians, and each ratio's range), then written as ``README.md`` in
``--out`` with tables, and PNG plots next to it (``bench.report_plots``). The header says the
scale and the number of runs, so a report made at ``--scale small`` (what fits in a minute or
two) is not mistaken for the full one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from bench import loadgen
from bench.limits_rss import raise_fd_limit
from bench.loadgen import parse_server
from bench.report_merge import (
    MergedLoads,
    MergedScenario,
    find_point,
    merge_loads,
    merge_scenario,
    ratio_text,
)
from bench.report_plots import write_plots
from bench.scenarios import SCENARIOS, run_scenario
from bench.scenarios.__main__ import SERVER_WARMUP
from bench.scenarios.common import SCALES
from bench.scenarios.servers import serve

DEFAULT_OUT = Path(__file__).parent / "report"
SAMPLE_POINTS = 500  # points kept of each distribution in results.json
LOADGEN_PAIRS = (("apache", "trizab-txnlog"), ("apache-3", "trizab-3-txnlog"))
# Load generator timing per scale: measured seconds, warm-up per point, untimed load first.
LOADGEN_TIMING = {"small": (0.5, 0.2, 0.5), "full": (2.5, 0.5, 4.0)}


def log(line: str) -> None:
    print(f"[report] {line}", file=sys.stderr, flush=True)


# --- running ---------------------------------------------------------------------------------


def run_loadgen(targets: Sequence[str], scale: str) -> dict[str, Any]:
    """loadgen's getData/setData at 1/16/256 outstanding against each target; a failure is kept."""
    duration, warmup, server_warmup = LOADGEN_TIMING[scale]
    columns: dict[str, Any] = {}
    for target in targets:
        started = time.monotonic()
        try:
            with serve(target) as running:
                results = loadgen.run_all(
                    running.addresses,
                    loads=loadgen.LOADS,
                    ops=loadgen.OPS,
                    pids=running.pids,
                    server_warmup=server_warmup,
                    duration=duration,
                    warmup=warmup,
                )
            columns[target] = [attrs.asdict(res) for res in results]
        except Exception as exc:
            columns[target] = f"failed: {type(exc).__name__}: {exc}"[:400]
        log(f"loadgen on {target}: {time.monotonic() - started:.0f} s")
    return columns


def run_once(scale: str, servers: Sequence[str], client_processes: int) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        outcomes = run_scenario(
            scenario,
            servers,
            SCALES[scale],
            client_processes=client_processes,
            server_warmup=SERVER_WARMUP[scale],
        )
        scenarios[name] = {server: attrs.asdict(o) for server, o in outcomes.items()}
    loads = {" / ".join(pair): run_loadgen(pair, scale) for pair in LOADGEN_PAIRS}
    return {"scenarios": scenarios, "loadgen": loads}


def run_everything(scale: str, servers: Sequence[str], client_processes: int, repeat: int) -> dict[str, Any]:
    header = machine_header(scale)
    header["load average before"] = os.getloadavg()
    started = time.monotonic()
    runs = []
    for i in range(repeat):
        log(f"run {i + 1} of {repeat}")
        runs.append(run_once(scale, servers, client_processes))
    header["load average after"] = os.getloadavg()
    header["run time s"] = round(time.monotonic() - started)
    return {"header": header, "runs": runs}


def machine_header(scale: str) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "scale": scale,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
    }


# --- writing ---------------------------------------------------------------------------------


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def scenario_section(name: str, merged: MergedScenario) -> list[str]:
    outcomes = merged.outcomes
    servers = list(outcomes)
    lines = [f"### {name}", "", SCENARIOS[name].title[0].upper() + SCENARIOS[name].title[1:] + ".", ""]
    for server, outcome in outcomes.items():
        if outcome.error:
            lines += [f"**{server} failed**: {outcome.error}", ""]
    order: list[str] = []
    for outcome in outcomes.values():
        order += [f.name for f in outcome.figures if f.name not in order]
    rows = []
    for figure_name in order:
        row = [figure_name]
        for server in servers:
            figure = outcomes[server].figure(figure_name)
            row.append(figure.text() if figure else "-")
        for server in servers[1:]:
            row.append(ratio_text(merged.ratios.get(figure_name, {}).get(server, [])))
        rows.append(row)
    header = ["figure", *servers, *(f"{s} vs {servers[0]}" for s in servers[1:])]
    lines += markdown_table(rows, header)
    lines.append("")
    first = " (first run)" if merged.runs > 1 else ""
    for server, outcome in outcomes.items():
        counts = ", ".join(f"{k} {v:,}" for k, v in outcome.counts.items())
        lines.append(f"* {server}{first}: {counts}; client {outcome.client_cpu_text()}")
    lines.append("")
    return lines


def loadgen_section(title: str, merged: MergedLoads) -> list[str]:
    columns = merged.columns
    targets = list(columns)
    lines = [f"### {title}", ""]
    for target, value in columns.items():
        if isinstance(value, str):
            lines += [f"**{target}** failed: {value}", ""]
    rows = []
    for op in loadgen.OPS:
        for load in loadgen.LOADS:
            row = [op, str(load)]
            for target in targets:
                res = find_point(columns[target], op, load)
                row.append(
                    "-"
                    if res is None
                    else f"{res['ops_per_s']:,.0f}/s, {res['p50_ms']:.2f} / {res['p99_ms']:.2f} ms"
                    + (f", {res['cpu_us_per_op']:.0f} µs" if res["cpu_us_per_op"] is not None else "")
                )
            row.append(ratio_text(merged.ratios.get((op, load), [])))
            rows.append(row)
    header = ["op", "outstanding", *targets, f"{targets[-1]} vs {targets[0]}"]
    lines += markdown_table(rows, header, right_from=1)
    lines += ["", "(ops/s, p50 / p99 latency, server CPU per operation summed over the members)", ""]
    return lines


def compact_samples(data: dict[str, Any], points: int = SAMPLE_POINTS) -> dict[str, Any]:
    """``data`` with every sample list cut to ``points`` evenly spaced order statistics: the same
    cumulative distribution for the plots, and a results.json of kilobytes, not megabytes."""
    for run in runs_of(data):
        for per_server in run["scenarios"].values():
            for outcome in per_server.values():
                for key, values in outcome["samples"].items():
                    ordered = sorted(values)
                    if len(ordered) > points:
                        step = (len(ordered) - 1) / (points - 1)
                        ordered = [ordered[round(i * step)] for i in range(points)]
                    outcome["samples"][key] = [round(v, 4) for v in ordered]
    return data


def runs_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a results.json (one written before --repeat existed holds one run at its top)."""
    return data["runs"] if "runs" in data else [{"scenarios": data["scenarios"], "loadgen": data["loadgen"]}]


def write_report(data: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    header = data["header"]
    runs = runs_of(data)
    scenarios = {
        name: merge_scenario([run["scenarios"][name] for run in runs]) for name in runs[0]["scenarios"]
    }
    loads = {title: merge_loads([run["loadgen"][title] for run in runs]) for title in runs[0]["loadgen"]}
    plots = write_plots(scenarios, loads, out)
    repeat = len(runs)
    lines = [
        "# trizab against Apache ZooKeeper 3.8",
        "",
        f"**Scale: {header['scale']}, {repeat} run{'s' if repeat > 1 else ''}** "
        f"(`python -m bench.report --scale {header['scale']} --repeat {repeat}`); "
        + (
            "the small scale runs every scenario with a few hundred sessions and short windows: "
            "it shows the shape of the comparison, not the figures of the full scale "
            "(10,000 sessions, 100,000 children, 1,000 sessions of mixed load)."
            if header["scale"] == "small"
            else "every scenario at the sizes of the performance issue."
        ),
        "",
        f"Run {header['date']} at commit `{header['commit']}`, trizab on {header['python']}, "
        f"{header['cpus']} CPUs shared by the servers and the client processes "
        f"(load average {header['load average before'][0]:.1f} before, "
        f"{header['load average after'][0]:.1f} after; {header['run time s']} s in all). "
        "A ratio above 1 means trizab is better (its throughput / ZooKeeper's, or ZooKeeper's time / its "
        "time); each ratio compares figures from the same run. "
        + (
            f"Figures are the median of the {repeat} runs; a ratio is the median of the {repeat} per-run "
            "ratios, with the lowest and highest in brackets: a machine shared with other work makes "
            "single runs noisy, and a ratio whose range straddles 1 is not a difference."
            if repeat > 1
            else "One run on a machine shared with other work is noisy: repeat (`--repeat 3`) before "
            "believing a difference under 15%."
        ),
        "",
        "Servers: Apache ZooKeeper 3.8 (Debian package, forceSync on, zkEnv.sh's default heap `-Xmx1000m`, "
        "but `-Xmx4g` for large values, where 1000m dies of OutOfMemoryError) and trizab with its "
        "durable `txnlog` engine, each started fresh per scenario with the same untimed warm-up; "
        "clients are raw-protocol sessions in forked processes (see `bench/README.md`, "
        '"Scenarios"), and each scenario says how much CPU they used.',
        "",
    ]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    lines += ["## Scenarios", ""]
    for name, merged in scenarios.items():
        lines += scenario_section(name, merged)
    lines += ["## Load generator: getData and setData", ""]
    for title, merged_loads in loads.items():
        lines += loadgen_section(title, merged_loads)
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of README.md and the plots")
    parser.add_argument(
        "--servers", default="apache,trizab-txnlog", help="the scenarios' servers, as bench.scenarios"
    )
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of everything; the report gives medians")
    parser.add_argument("--from-json", type=Path, help="render this results.json again; run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        data = compact_samples(json.loads(args.from_json.read_text()))
        target = args.out / "results.json"
        if not target.exists() or not target.samefile(args.from_json):
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, indent=1))  # the report's figures travel with it
    else:
        scale = SCALES[args.scale]
        raise_fd_limit(max(scale.fanout_sessions, scale.storm_sessions) + 1000)  # per process
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        for name in servers:
            try:
                parse_server(name)
            except ValueError as exc:
                parser.error(f"{exc}; servers are apache, apache-N, trizab-<storage>, trizab-N-<storage>")
        data = run_everything(args.scale, servers, args.client_processes, max(1, args.repeat))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(compact_samples(data), indent=1))
    path = write_report(data, args.out)
    print(path.read_text())
    failures = [
        f"{name} on {server} (run {i + 1})"
        for i, run in enumerate(runs_of(data))
        for name, per in run["scenarios"].items()
        for server, outcome in per.items()
        if outcome.get("error")
    ]
    if failures:
        log("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
