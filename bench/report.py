"""``python -m bench.report``: run the scenarios and the load generator, write a Markdown report.

Theory of operation: the report is one run of everything a reader needs to compare trizab with
Apache ZooKeeper 3.8 on this machine: every scenario of ``bench.scenarios`` (each against both
servers, one after the other) and ``bench.loadgen``'s getData/setData at 1, 16 and 256
outstanding, standalone and with 3 members. The figures are kept in ``results.json`` first
(``--from-json`` renders a report again without running anything), then written as
``README.md`` in ``--out`` with tables, and PNG plots next to it (matplotlib, the ``bench``
extra): throughput against latency for the load generator, every scenario figure as a ratio to
ZooKeeper's, and the distributions behind the scenarios (notification arrivals, sessions back
after a fail-over, mixed-load latencies). The header says the scale, so a report made at
``--scale small`` (what fits in a minute or two) is not mistaken for the full one.
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
from bench.scenarios import SCENARIOS, run_scenario
from bench.scenarios.__main__ import SERVER_WARMUP
from bench.scenarios.common import SCALES, Figure, Outcome, ratio
from bench.scenarios.servers import serve

DEFAULT_OUT = Path(__file__).parent / "report"
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


def run_everything(scale: str, servers: Sequence[str], client_processes: int) -> dict[str, Any]:
    header = machine_header(scale)
    header["load average before"] = os.getloadavg()
    started = time.monotonic()
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
    header["load average after"] = os.getloadavg()
    header["run time s"] = round(time.monotonic() - started)
    return {"header": header, "scenarios": scenarios, "loadgen": loads}


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


def outcome_from(data: dict[str, Any]) -> Outcome:
    data = dict(data)
    data["figures"] = [Figure(**f) for f in data["figures"]]
    return Outcome(**data)


# --- writing ---------------------------------------------------------------------------------


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def scenario_section(name: str, outcomes: dict[str, Outcome]) -> list[str]:
    servers = list(outcomes)
    lines = [f"### {name}", "", SCENARIOS[name].title[0].upper() + SCENARIOS[name].title[1:] + ".", ""]
    for server, outcome in outcomes.items():
        if outcome.error:
            lines += [f"**{server} failed**: {outcome.error}", ""]
    order: list[str] = []
    for outcome in outcomes.values():
        order += [f.name for f in outcome.figures if f.name not in order]
    base = outcomes[servers[0]]
    rows = []
    for figure_name in order:
        row = [figure_name]
        for server in servers:
            figure = outcomes[server].figure(figure_name)
            row.append(figure.text() if figure else "-")
        for server in servers[1:]:
            value = ratio(base.figure(figure_name), outcomes[server].figure(figure_name))
            row.append(f"x{value:.2f}" if value is not None else "-")
        rows.append(row)
    header = ["figure", *servers, *(f"{s} vs {servers[0]}" for s in servers[1:])]
    lines += markdown_table(rows, header)
    lines.append("")
    for server, outcome in outcomes.items():
        counts = ", ".join(f"{k} {v:,}" for k, v in outcome.counts.items())
        lines.append(f"* {server}: {counts}; client {outcome.client_cpu_text()}")
    lines.append("")
    return lines


def loadgen_section(title: str, columns: dict[str, Any]) -> list[str]:
    targets = list(columns)
    lines = [f"### {title}", ""]
    for target, value in columns.items():
        if isinstance(value, str):
            lines += [f"**{target}** {value}", ""]
    rows = []
    for op in loadgen.OPS:
        for load in loadgen.LOADS:
            row = [op, str(load)]
            found = [_find(columns[t], op, load) for t in targets]
            for res in found:
                row.append(
                    "-"
                    if res is None
                    else f"{res['ops_per_s']:,.0f}/s, {res['p50_ms']:.2f} / {res['p99_ms']:.2f} ms"
                    + (f", {res['cpu_us_per_op']:.0f} µs" if res["cpu_us_per_op"] is not None else "")
                )
            ref, other = found[0], found[-1]
            row.append(
                f"x{other['ops_per_s'] / ref['ops_per_s']:.2f}"
                if ref and other and ref["ops_per_s"] and len(found) > 1
                else "-"
            )
            rows.append(row)
    header = ["op", "outstanding", *targets, f"{targets[-1]} vs {targets[0]}"]
    lines += markdown_table(rows, header, right_from=1)
    lines += ["", "(ops/s, p50 / p99 latency, server CPU per operation summed over the members)", ""]
    return lines


def _find(value: Any, op: str, load: int) -> dict[str, Any] | None:
    if not isinstance(value, list):
        return None
    return next((r for r in value if r["op"] == op and r["outstanding"] == load), None)


def write_report(data: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    header = data["header"]
    scenarios = {
        name: {server: outcome_from(o) for server, o in per.items()}
        for name, per in data["scenarios"].items()
    }
    plots = write_plots(scenarios, data["loadgen"], out)
    lines = [
        "# trizab against Apache ZooKeeper 3.8",
        "",
        f"**Scale: {header['scale']}** (`python -m bench.report --scale {header['scale']}`); "
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
        "Every ratio compares figures from the same run; a machine shared with other work makes them "
        "noisy, so repeat a run before believing a difference under 15%. A ratio above 1 means trizab "
        "is better (its throughput / ZooKeeper's, or ZooKeeper's time / its time).",
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
    for name, outcomes in scenarios.items():
        lines += scenario_section(name, outcomes)
    lines += ["## Load generator: getData and setData", ""]
    for title, columns in data["loadgen"].items():
        lines += loadgen_section(title, columns)
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def write_plots(scenarios: dict[str, dict[str, Outcome]], loads: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    paths = []
    # 1. Throughput against latency, one panel per (servers, op).
    panels = [(title, op) for title in loads for op in loadgen.OPS]
    fig, axes = plt.subplots(len(loads), len(loadgen.OPS), figsize=(11, 4.2 * len(loads)), squeeze=False)
    for ax, (title, op) in zip(axes.flat, panels, strict=True):
        for target, value in loads[title].items():
            points = [p for p in (_find(value, op, n) for n in loadgen.LOADS) if p is not None]
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
    paths.append(_save(fig, out / "throughput_latency.png"))
    plt.close(fig)

    # 2. Every scenario figure as trizab's ratio to ZooKeeper's.
    labels, values = [], []
    for name, outcomes in scenarios.items():
        servers = list(outcomes)
        if len(servers) < 2:
            continue
        base, other = outcomes[servers[0]], outcomes[servers[-1]]
        for figure in other.figures:
            value = ratio(base.figure(figure.name), figure)
            if value is not None:
                labels.append(f"{name}: {figure.name}")
                values.append(value)
    if values:
        fig, ax = plt.subplots(figsize=(9, 0.28 * len(values) + 1.5))
        colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
        ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("times better than Apache ZooKeeper 3.8 (log scale; right of 1: trizab better)")
        ax.set_title("Scenarios: trizab relative to ZooKeeper, same run")
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, out / "scenario_ratios.png"))
        plt.close(fig)

    # 3. The distributions behind the scenarios.
    series = [
        (name, key, outcomes)
        for name, outcomes in scenarios.items()
        for key in sorted({k for o in outcomes.values() for k in o.samples})
    ]
    if series:
        fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), squeeze=False)
        for ax, (name, key, outcomes) in zip(axes.flat, series, strict=True):
            for server, outcome in outcomes.items():
                values_ = sorted(outcome.samples.get(key, []))
                if values_:
                    ax.plot(values_, [(i + 1) / len(values_) for i in range(len(values_))], label=server)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel(key, fontsize=8)
            ax.set_ylabel("fraction")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle("Distributions (cumulative)")
        fig.tight_layout()
        paths.append(_save(fig, out / "distributions.png"))
        plt.close(fig)
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of README.md and the plots")
    parser.add_argument(
        "--servers", default="apache,trizab-txnlog", help="the scenarios' servers, as bench.scenarios"
    )
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--from-json", type=Path, help="render this results.json again; run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        scale = SCALES[args.scale]
        raise_fd_limit(max(scale.fanout_sessions, scale.storm_sessions) + 1000)  # per process
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
        data = run_everything(args.scale, servers, args.client_processes)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(data, indent=1))
    path = write_report(data, args.out)
    print(path.read_text())
    failures = [
        f"{name} on {server}"
        for name, per in data["scenarios"].items()
        for server, outcome in per.items()
        if outcome.get("error")
    ]
    if failures:
        log("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
