"""`python -m compat`: run the compat suites against trizab (and Apache ZooKeeper) and print one report.

Theory of operation: each column is one pytest subprocess, so a crash or hang in one target cannot
take the runner down and every run starts from a clean interpreter (kazoo's harness keeps a global
cluster).

- kazoo column "trizab": `pytest -p compat.plugin --pyargs kazoo.tests` with
  `TRIZAB_COMPAT_TARGET=trizab`; the plugin swaps kazoo's cluster for trizab's
  (`trizab.testing.kazoo_harness`, the adapter that ships in the package).
- kazoo column "apache": the same command with `TRIZAB_COMPAT_TARGET=apache`, so kazoo's
  UNMODIFIED harness starts Apache ZooKeeper 3.8 from the Debian jars (ZOOKEEPER_VERSION,
  ZOOKEEPER_CLASSPATH, ZOOKEEPER_CLUSTER_SIZE set for it).
- The differential tester and the Java-client transcripts (issue 6) compare against Apache ZooKeeper
  inside; each module exposes `run(target_trizab=...)`. The trizab column runs it with trizab as the
  server under test; the Apache column (with --apache) runs it with a second Apache ZooKeeper, which
  checks that the suite itself is deterministic. A suite that is missing is reported as
  "not present", never as a pass.

`CI` is removed from the children's environment so kazoo's suite takes the same paths locally and
in CI (with CI set, it skips the `envi` version probe and runs a CI-only build check). The exit
status is non-zero when a trizab test fails that is not listed in expected_failures.txt, or when a
suite fails.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs

from compat.plugin import ZOOKEEPER_MEMBERS_ENV
from testkit import apache_zk
from testkit.kazoo_zookeeper import parse_server_ids

COMPAT_DIR = Path(__file__).resolve().parent
REPO_ROOT = COMPAT_DIR.parent
EXPECTED_FAILURES = COMPAT_DIR / "expected_failures.txt"
OUTCOMES = ("passed", "failed", "skipped", "error")
# Issue 6 suites, one report row each: (row name, module exposing
# `run(target_trizab: bool, ...) -> SuiteResult` with `.summary()`, `.ok`, `.details`).
# Their pytest forms are tests/differential/test_diff_{sequences,fourlw}.py and
# tests/differential/test_diff_javaclient.py (there is no tests/javaclient), which holds the TLS
# transcript too.
EXTRA_SUITES: tuple[tuple[str, str], ...] = (
    ("differential tester (handshake, 4lw, op sequences)", "compat.differential"),
    ("Java client transcripts (ZooKeeperMain)", "compat.javaclient"),
    ("Java client transcripts over TLS (ZooKeeperMain, Netty)", "compat.javaclient.tls"),
    ("Java client transcripts with SASL DIGEST-MD5 (ZooKeeperMain)", "compat.javaclient.sasl"),
)


@attrs.frozen
class ColumnResult:
    target: str
    outcomes: tuple[dict[str, object], ...]
    seconds: float
    returncode: int

    def per_file(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for entry in self.outcomes:
            table.setdefault(str(entry["file"]), Counter())[str(entry["outcome"])] += 1
        return table

    def totals(self) -> Counter[str]:
        return Counter(str(e["outcome"]) for e in self.outcomes)

    def by_test(self) -> dict[str, str]:
        return {f"{e['file']}::{e['test']}": str(e["outcome"]) for e in self.outcomes}


def load_expected_failures(
    path: Path = EXPECTED_FAILURES,
    size: int | None = None,
    zookeeper_members: frozenset[int] | None = None,
) -> dict[str, str]:
    """`file::Class::test | reason [| sizes=1,2] [| mixed=1,2/3]` lines -> {test: reason}.

    Blank lines and # comments are ignored. An entry with `sizes=` applies only to clusters of those
    sizes (e.g. tests that need a second server are expected to fail only with one server); given no
    `size`, every entry applies. An entry with `mixed=` applies only to mixed ensembles whose
    ZooKeeper members are one of the `/`-separated sets of server ids (`mixed=any`: every mixed
    ensemble), never to trizab alone; `zookeeper_members` is the run's set (None or empty: trizab
    only).
    """
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    usage = "expected 'test | reason [| sizes=N,M] [| mixed=N,M/K]'"
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 2 or not fields[1]:
            raise ValueError(f"{path.name}: every entry needs '| reason': {raw!r}")
        scopes: dict[str, str] = {}
        for field in fields[2:]:
            key, sep, value = field.partition("=")
            if not sep or key not in ("sizes", "mixed") or key in scopes or not value:
                raise ValueError(f"{path.name}: {usage}: {raw!r}")
            scopes[key] = value
        try:
            sizes = {int(n) for n in scopes["sizes"].split(",")} if "sizes" in scopes else None
            mixed = _mixed_scope(scopes["mixed"]) if "mixed" in scopes else None
        except ValueError:
            raise ValueError(f"{path.name}: {usage}: {raw!r}") from None
        if sizes is not None and size is not None and size not in sizes:
            continue
        if mixed is not None and not (zookeeper_members and (mixed == "any" or zookeeper_members in mixed)):
            continue
        expected[fields[0]] = fields[1]
    return expected


def _mixed_scope(value: str) -> str | set[frozenset[int]]:
    """`any`, or `1,2/3` -> {{1, 2}, {3}}."""
    if value == "any":
        return value
    return {frozenset(int(n) for n in variant.split(",")) for variant in value.split("/")}


def child_env(
    target: str, size: int, storage: str, results: Path, zookeeper_members: str = ""
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # The apache column must keep kazoo's own harness whatever the caller's setting.
        if k
        not in (
            "CI",
            "ZOOKEEPER_JAAS_AUTH",
            "ZOOKEEPER_LOCAL_SESSION_RO",
            "TRIZAB_KAZOO_HARNESS",
            ZOOKEEPER_MEMBERS_ENV,
        )
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["TRIZAB_COMPAT_TARGET"] = target
    env["TRIZAB_COMPAT_RESULTS"] = str(results)
    env["ZOOKEEPER_CLUSTER_SIZE"] = str(size)
    if target == "apache":
        env.setdefault("ZOOKEEPER_VERSION", "3.8.0")
        env.setdefault("ZOOKEEPER_CLASSPATH", apache_zk.classpath())
        # Away from the default 20000 so that a concurrent run of kazoo's own harness cannot collide.
        env.setdefault("ZOOKEEPER_PORT_OFFSET", "23000")
    else:
        env["TRIZAB_STORAGE"] = storage
        env.pop("ZOOKEEPER_VERSION", None)
        if zookeeper_members:
            env[ZOOKEEPER_MEMBERS_ENV] = zookeeper_members
    return env


def run_kazoo(
    target: str,
    *,
    size: int,
    storage: str,
    workdir: Path,
    timeout: int,
    select: str | None,
    verbose: bool,
    reuse: bool = False,
    zookeeper_members: str = "",
) -> ColumnResult:
    results = workdir / f"kazoo-{target}.json"
    if reuse and results.exists():
        return ColumnResult(target, tuple(json.loads(results.read_text())), -1.0, 0)
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        os.devnull,  # not the project's pytest settings (trio_mode, testpaths)
        "--rootdir",
        str(workdir),
        "-p",
        "no:cacheprovider",
        "-p",
        "compat.plugin",
        f"--timeout={timeout}",
        "-q" if not verbose else "-v",
        "-rN",
        "--pyargs",
        "kazoo.tests",
    ]
    if select:
        args += ["-k", select]
    log_path = workdir / f"kazoo-{target}.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.run(
            args,
            env=child_env(target, size, storage, results, zookeeper_members if target == "trizab" else ""),
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    seconds = time.monotonic() - started
    outcomes: tuple[dict[str, object], ...] = ()
    if results.exists():
        outcomes = tuple(json.loads(results.read_text()))
    else:
        print(
            f"[compat] {target}: no results (pytest exit {proc.returncode}); see {log_path}", file=sys.stderr
        )
    return ColumnResult(target, outcomes, seconds, proc.returncode)


@attrs.frozen
class SuiteCell:
    """One issue-6 suite against one target, as the report shows it."""

    summary: str
    ok: bool
    details: str = ""


def run_extra_suite(module_name: str, *, target_trizab: bool, examples: int | None) -> SuiteCell:
    """Call `<module>.run(target_trizab=...)`; a missing module or function is "not present".

    The suites compare against Apache ZooKeeper inside: with target_trizab the "actual" server is
    trizab; without it a second Apache ZooKeeper (which checks the suite itself is deterministic).
    """
    try:
        module = importlib.import_module(module_name)
        run = module.run
    except (ImportError, AttributeError) as exc:
        return SuiteCell("not present", ok=False, details=repr(exc))
    kwargs: dict[str, object] = {"target_trizab": target_trizab}
    if examples is not None and "examples" in inspect.signature(run).parameters:
        kwargs["examples"] = examples
    try:
        result = run(**kwargs)
    except Exception as exc:  # a crash is a failure of the suite, reported, not raised
        first_line = (str(exc).splitlines() or [""])[0][:80]
        return SuiteCell(
            f"crashed: {type(exc).__name__}: {first_line}", ok=False, details=traceback.format_exc()
        )
    return SuiteCell(result.summary(), ok=bool(result.ok), details=str(result.details))


def cell(counts: Counter[str] | None) -> str:
    if counts is None:
        return "not run"
    return " / ".join(str(counts[k]) for k in OUTCOMES)


def render_table(columns: Sequence[ColumnResult | None], names: Sequence[str], markdown: bool) -> str:
    per_file = [c.per_file() if c else {} for c in columns]
    files = sorted({f for table in per_file for f in table})
    header = ["test file", *(f"{n} (pass / fail / skip / error)" for n in names)]
    rows = [
        [f, *(cell(t.get(f, Counter())) if c else "not run" for c, t in zip(columns, per_file, strict=True))]
        for f in files
    ]
    rows.append(
        ["**total**" if markdown else "TOTAL", *(cell(c.totals()) if c else "not run" for c in columns)]
    )
    return format_rows(header, rows, markdown)


def format_rows(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    )


def differences(
    trizab: ColumnResult, apache: ColumnResult | None, expected: dict[str, str]
) -> list[list[str]]:
    """Every trizab test that failed or errored: its Apache outcome and whether it is expected."""
    ref = apache.by_test() if apache else {}
    rows = []
    for test, outcome in sorted(trizab.by_test().items()):
        if outcome in ("failed", "error"):
            reason = expected.get(test, "UNEXPECTED")
            rows.append([test, outcome, ref.get(test, "not run"), reason])
    return rows


def mixed_label(zookeeper_ids: frozenset[int], size: int) -> str:
    """`mixed: ZooKeeper 1,2 + trizab 3` for a mixed ensemble; "" for trizab alone."""
    if not zookeeper_ids:
        return ""
    trizab_ids = [i for i in range(1, size + 1) if i not in zookeeper_ids]
    return (
        f"mixed: ZooKeeper {','.join(map(str, sorted(zookeeper_ids)))}"
        f" + trizab {','.join(map(str, trizab_ids))}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size", type=int, default=1, help="servers per cluster (1 now; 3 with the ensemble)"
    )
    parser.add_argument("--storage", default="txnlog", help="trizab storage plugin (durable like ZooKeeper)")
    parser.add_argument(
        "--apache", action="store_true", help="also run kazoo's suite against Apache ZooKeeper 3.8"
    )
    parser.add_argument("--apache-only", action="store_true", help="only the Apache ZooKeeper column")
    parser.add_argument(
        "--no-extra", action="store_true", help="skip the differential and Java-client suites"
    )
    parser.add_argument("--examples", type=int, help="operation sequences for the differential tester")
    parser.add_argument("-k", dest="select", help="pytest -k expression for kazoo's suite")
    parser.add_argument("--timeout", type=int, default=120, help="per-test timeout in seconds")
    parser.add_argument(
        "--markdown", action="store_true", help="print tables as Markdown (for compat/README.md)"
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and JSON results here")
    parser.add_argument(
        "--reuse", action="store_true", help="render results already in --workdir, run nothing new"
    )
    parser.add_argument(
        "--zookeeper-members",
        metavar="IDS",
        help="mixed ensembles: these server ids (e.g. 1,2) run Apache ZooKeeper 3.8, the others trizab",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    zookeeper_ids: frozenset[int] = frozenset()
    if args.zookeeper_members is not None:
        if args.apache_only:
            parser.error("--zookeeper-members needs the trizab column (not with --apache-only)")
        try:
            zookeeper_ids = parse_server_ids(args.zookeeper_members, args.size)
        except ValueError as exc:
            parser.error(f"--zookeeper-members: {exc}")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trizab-compat-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_apache = args.apache or args.apache_only
    if run_apache or zookeeper_ids:
        apache_zk.require_available()
    kw = dict(
        size=args.size,
        storage=args.storage,
        workdir=workdir,
        timeout=args.timeout,
        select=args.select,
        reuse=args.reuse,
    )
    trizab = (
        None
        if args.apache_only
        else run_kazoo(
            "trizab",
            verbose=args.verbose,
            zookeeper_members=",".join(map(str, sorted(zookeeper_ids))),
            **kw,
        )
    )
    apache = run_kazoo("apache", verbose=args.verbose, **kw) if run_apache else None
    extras: list[tuple[str, SuiteCell | None, SuiteCell | None]] = []
    for name, module in [] if args.no_extra else EXTRA_SUITES:
        print(f"[compat] running {name} ...", file=sys.stderr, flush=True)
        tri = (
            None if args.apache_only else run_extra_suite(module, target_trizab=True, examples=args.examples)
        )
        ref = run_extra_suite(module, target_trizab=False, examples=args.examples) if run_apache else None
        extras.append((name, tri, ref))

    mixed = mixed_label(zookeeper_ids, args.size)
    names = [
        f"{mixed} ({args.storage})"
        if mixed
        else f"trizab ({args.size} server{'s' if args.size > 1 else ''}, {args.storage})",
        f"Apache ZooKeeper 3.8 ({args.size})",
    ]
    if mixed:
        print(f"\n{mixed}")
    print(f"\nkazoo 2.11 test suite, per file (logs in {workdir})\n")
    print(render_table([trizab, apache], names, args.markdown))

    expected = load_expected_failures(size=args.size, zookeeper_members=zookeeper_ids)
    unexpected = 0
    if trizab is not None:
        diff = differences(trizab, apache, expected)
        unexpected = sum(1 for row in diff if row[3] == "UNEXPECTED")
        if diff:
            print("\ntrizab failures (test, trizab, Apache ZooKeeper, reason)\n")
            print(format_rows(["test", "trizab", "apache", "reason"], diff, args.markdown))

    summary_rows = [
        [
            "kazoo test suite",
            cell(trizab.totals()) if trizab else "not run",
            cell(apache.totals()) if apache else "not run",
        ]
    ]
    summary_rows += [
        [name, tri.summary if tri else "not run", f"{ref.summary} (vs itself)" if ref else "not run"]
        for name, tri, ref in extras
    ]
    print("\nOne report (pass / fail / skip / error)\n")
    print(format_rows(["suite", "trizab", "Apache ZooKeeper 3.8"], summary_rows, args.markdown))
    for name, tri, ref in extras:
        for label, cell_ in (("trizab", tri), ("Apache ZooKeeper vs itself", ref)):
            if cell_ is not None and not cell_.ok:
                print(f"\n{name}, {label}:\n{cell_.details[:4000]}")
    for column in (trizab, apache):
        if column is not None:
            took = "reused earlier results" if column.seconds < 0 else f"{column.seconds:.0f} s"
            print(f"\n{column.target}: {took}, pytest exit {column.returncode}")
    if trizab is not None:
        print(f"unexpected trizab failures: {unexpected}")
    failed = (trizab is not None and (unexpected > 0 or not trizab.outcomes)) or any(
        c is not None and not c.ok for _, tri, ref in extras for c in (tri, ref)
    )
    if apache is not None and not apache.outcomes:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
