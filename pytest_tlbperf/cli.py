"""`tlbperf`: the command line.

  tlbperf simulate   run the built-in workloads on the profiles where their
                     question matters, over several seeds, and print metrics
                     and violations (the main job until `pytest --tlbperf`)
  tlbperf calibrate  the calibration tables, model beside published: seed 002
                     (haswell-4c), tlb_flush1 (skylake-2s), tlb_flush2 (milan-36c)
  tlbperf matrix     every policy on the cells where the seeds make a claim
  tlbperf list       profiles, policies, workloads, metrics and saved runs
  tlbperf report     a saved run's regression report, as HTML or 80-column text
  tlbperf compare    two saved runs (e.g. two commits, `main X`, `HEAD~1 X`),
                     cell by cell, paired by seed where the programs match
  tlbperf history    the saved runs in git order, with change points
  tlbperf export     a saved run as pytest-benchmark or pyperf JSON
  tlbperf validate   measure the detector's error rates, power and coverage
  tlbperf host       run a workload on the running kernel; its identity
  tlbperf profile    this machine as a profile (--from-host), or a built-in
  tlbperf check-model  the host against the model of this machine
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from pathlib import Path

from . import api, evidence, metrics, policies, profiles, workloads
from .errors import TlbperfError
from .host import commands as host_commands
from .reports import calibration
from .storage import Storage, StorageError, comparability
from .userio import check_output, printable, printable_lines

MAX_SEEDS = 10_000          # seeds per cell: a bound on a typo's cost, far beyond any use

# where each workload's question is asked (DESIGN §3.8 / the seeds)
HOME_PROFILES = {
    "madvise_dontneed": ["haswell-4c"],
    "munmap_storm": ["skylake-2s"],
    "kernel_build": ["zen1-epyc", "skylake-2s"],
    "idle_server": ["skylake-2s", "laptop-8c"],
    "context_switch": ["skylake-2s"],
    "exit_storm": ["skylake-2s"],
    "vm_overcommit": ["kvm-guest-16"],
    "tlb_flush1": ["skylake-2s"],
    "tlb_flush2": ["milan-36c"],
    "tlb_flush3": ["skylake-2s"],
    "context_switch1": ["skylake-2s"],
    "hackbench": ["milan-36c"],
    "page_reclaim": ["milan-36c", "genoa-2s"],
}
COLUMNS = [("flush_latency_ns_p50", "flush p50 ns"), ("flush_latency_ns_p99", "flush p99 ns"),
           ("ipis", "IPIs"), ("ipis_to_idle", "to idle"), ("ipis_to_lazy", "to lazy"),
           ("cr3_writes", "CR3"), ("atomic_contention_ns", "contention ns")]


def _cells(args):
    names = args.workload or list(HOME_PROFILES)
    for name in names:
        if name not in workloads.BUILDERS:
            raise TlbperfError(f"unknown workload {name!r}; workloads are "
                               f"{', '.join(workloads.BUILDERS)}")
        for prof in args.profile or HOME_PROFILES[name]:
            yield name, prof


def _check_outputs(*outputs) -> None:
    """(option, path) pairs: each path writable before any work is done, so
    a typo does not throw the results away at the end."""
    for what, path in outputs:
        problem = path and check_output(path, what)
        if problem:
            raise TlbperfError(problem)


def _write(path, content: str) -> None:
    """Write an output; a failure (disk full, a path that changed since it
    was checked) is an error naming the file."""
    try:
        Path(path).write_text(content, encoding="utf-8")
    except OSError as exc:
        raise TlbperfError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_policies(names, profile_names, engine) -> None:
    """Each policy imports, constructs and configures on the profiles the
    command runs, and can run on `engine`: one error before any work."""
    chosen = [profiles.get(p) for p in profile_names]
    for name in names:
        policy = policies.resolve(name)
        for prof in chosen:
            policy.knobs(prof)
        if engine == "native":
            api._pick_engine(engine, policy)


def cmd_simulate(args) -> int:
    _check_outputs(("--json", args.json))
    names = args.policy or ["mainline"]
    cells = list(_cells(args))
    _check_policies(names, sorted({prof for _, prof in cells}), args.engine)
    rows, dump, failed = [], [], False
    progress = _Progress(first=False)      # each cell says it starts; long ones say more
    for policy in names:
        for i, (name, prof) in enumerate(cells, 1):
            print(f"[{i}/{len(cells)}] {name} on {prof}, {args.seeds} seeds, policy "
                  f"{policy}", file=sys.stderr, flush=True)
            results = []
            for s in range(args.seeds):
                results.append(api.run(workloads.BUILDERS[name](), prof, policy, seed=s,
                                       engine=args.engine))
                progress(f"  seed {s + 1}/{args.seeds}")
            dump += [r.to_dict() for r in results]
            med = {m: statistics.median(r.metrics[m] for r in results) for m, _ in COLUMNS}
            kinds = sorted({v.kind for r in results for v in r.violations})
            failed |= bool(kinds)
            rows.append(([policy] if len(names) > 1 else []) + [name, prof] +
                        [f"{med[m]:.0f}" for m, _ in COLUMNS] + [", ".join(kinds) or "-"])
            for r in results:
                for v in r.violations[: args.traces]:
                    print(printable_lines(f"{name}@{prof} seed {r.seed}: {v.format()}"))
    header = (["policy"] if len(names) > 1 else []) + ["workload", "profile"] + \
        [label for _, label in COLUMNS] + ["violations"]
    first = len(header) - len(COLUMNS) - 1       # the numeric columns, right-aligned
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    print(printable(f"policy {', '.join(names)}, median over {args.seeds} seeds, engine "
                    f"{args.engine}"))
    for row in [header] + rows:
        print(printable("  ".join(
            str(cell).rjust(w) if first <= i < len(row) - 1 else str(cell).ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths)))))
    if args.json:
        _write(args.json, json.dumps({"model_version": api.MODEL_VERSION, "results": dump},
                                     indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if failed and args.fail_on_violation else 0


CALIBRATION_TABLES = ("seed002", "tlb_flush1", "tlb_flush2")


class _Progress:
    """Progress lines on stderr: the first message, then one every `every`
    seconds (or every one, with `always`), so long loops -- many seeds, the
    validation trials -- are not silent."""

    def __init__(self, every: float = 5.0, always: bool = False, first: bool = True):
        self.every, self.always = every, always
        self.started = time.monotonic()
        self.last = None if first else self.started

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if self.always or self.last is None or now - self.last >= self.every:
            self.last = now
            print(f"{message} ({now - self.started:.0f} s)", file=sys.stderr, flush=True)


def cmd_calibrate(args) -> int:
    ok = True
    chosen = args.table or list(CALIBRATION_TABLES)
    for i, name in enumerate(chosen):
        print(f"[{i + 1}/{len(chosen)}] measuring the {name} table ...", file=sys.stderr,
              flush=True)
        if name == "seed002":
            seeds = args.seeds or 20
            table = calibration.measure(seeds=seeds, iterations=args.iterations,
                                        engine=args.engine)
            text, checks = calibration.render(table, seeds), calibration.checks(table)
        elif name == "tlb_flush1":
            seeds = args.seeds or 3
            table = calibration.measure_tlb_flush1(seeds=seeds, engine=args.engine)
            text = calibration.render_tlb_flush1(table, seeds)
            checks = calibration.checks_tlb_flush1(table)
        else:
            seeds = args.seeds or 3
            table = calibration.measure_tlb_flush2(seeds=seeds, engine=args.engine)
            text = calibration.render_tlb_flush2(table, seeds)
            checks = calibration.checks_tlb_flush2(table)
        if i:
            print()
        print(text, flush=True)
        ok = ok and all(c[-1] for c in checks)
    return 0 if ok else 1


def cmd_matrix(args) -> int:
    names = args.policy or None
    _check_policies(names or [], profiles.names(), args.engine)   # before any work
    print(printable_lines(evidence.table(
        seeds=args.seeds, engine=args.engine, names=names,
        progress=lambda msg: print(printable(msg), file=sys.stderr, flush=True))))
    return 0


def cmd_list(args) -> int:
    print("profiles:  " + ", ".join(profiles.names()))
    print("policies:  " + ", ".join(policies.names()))
    print("workloads: " + ", ".join(workloads.BUILDERS))
    print("metrics:")
    for m in metrics.METRICS.values():
        print(f"  {m.name:22s} {m.unit:8s} {m.better} is better  [{'/'.join(m.backends)}] "
              f"{m.description}")
    storage = Storage(args.storage)
    errors = []
    runs = storage.runs(on_error=errors.append)
    print(f"saved runs in {storage.path}:" + ("" if runs or errors else " none"))
    for run in runs:
        cells = run["cells"]
        seeds = sorted({len(c["seeds"]) for c in cells})
        print(printable(f"  {run['id']}  {run.get('name') or '-':16s} {run['commit']:24s} "
                        f"{run.get('created', ''):24s} {len(cells)} cells, "
                        f"{'/'.join(map(str, seeds)) or 0} seeds  {run.get('file', '')}"))
    for err in errors:
        print(printable(f"  unreadable: {err}"))
    return 0


def load_run(ref, storage_dir):
    """A saved run by file path, or by id, name, file name or commit prefix
    in the storage folder (`Storage.find`). Unreadable files are named in
    the error."""
    path = Path(ref)
    if path.suffix == ".json" or path.exists():
        if path.exists() or "/" in ref:
            return Storage(path.parent).load_file(path)
    skipped = []
    try:
        return Storage(storage_dir).find(ref, on_error=skipped.append)
    except StorageError as exc:
        raise StorageError(str(exc) + "".join(f"\n  skipped: {e}" for e in skipped
                                              if e is not exc)) from None


def _thresholds(args):
    from .reports.thresholds import Thresholds
    if not args.threshold:
        return None
    try:
        return Thresholds.parse(args.threshold)
    except ValueError as exc:
        raise TlbperfError(f"--threshold: {exc}") from None


def _warn_comparability(run, refs) -> None:
    for ref in refs:
        for warning in comparability(run, ref):
            print(printable(f"tlbperf: warning: {warning}"), file=sys.stderr)


def _print_text(content: str) -> None:
    """Report text to stdout, every line escaped (saved ids and names are
    strings a user chose)."""
    sys.stdout.write("".join(printable(line) + "\n" for line in content.splitlines()))


def cmd_report(args) -> int:
    from .reports import html, text
    from .reports.report import Report
    _check_outputs(("-o", args.output))
    run, *refs = [load_run(ref, args.storage) for ref in args.runs]
    _warn_comparability(run, refs)
    report = Report(run, refs, thresholds=_thresholds(args))
    out = args.output
    host_lines = "".join(f"{line}\n" for line in host_commands.report_lines(run, refs))
    if out is None:
        _print_text(text.render(report) + host_lines)
    else:
        kind = "text" if Path(out).suffix in (".txt", ".text") else "html"
        content = text.render(report) + host_lines if kind == "text" else html.render(report)
        _write(out, content)
        print(f"wrote {out} ({kind}): {report.headline()}", file=sys.stderr)
    return 1 if args.fail_on_regression and report.regressions() else 0


def cmd_compare(args) -> int:
    from .reports import text, verdicts
    from .reports.report import Report
    old, new = load_run(args.old, args.storage), load_run(args.new, args.storage)
    _warn_comparability(new, [old])
    findings = verdicts.judge(verdicts.unpaired_findings(new, old), _thresholds(args),
                              family=verdicts.reference_family(new))
    report = Report(new, [old], findings=findings, thresholds=_thresholds(args))
    if not findings:
        print(printable(f"tlbperf: {verdicts.run_label(new)} and {verdicts.run_label(old)} "
                        f"have no cell (test, profile, policy) with a metric in common"))
        for line in host_commands.compare_lines(new, old):
            print(printable(line))
        return 0
    _print_text(text.render(report, violations=True, command=False))
    for line in host_commands.compare_lines(new, old):
        print(printable(line))
    return 1 if args.fail_on_regression and report.regressions() else 0


def cmd_history(args) -> int:
    from .reports import history
    storage = Storage(args.storage)
    errors = []
    runs = storage.runs(on_error=errors.append)
    for err in errors:
        print(f"tlbperf: skipped unreadable saved run: {err}", file=sys.stderr)
    if not runs:
        raise TlbperfError(f"no saved runs in {storage.path}")
    from .reports.thresholds import DEFAULT_THRESHOLD
    th = _thresholds(args)
    hist = history.History(runs, metric=args.metric, policy=args.policy,
                           threshold=th.default if th else DEFAULT_THRESHOLD)
    if args.output:
        Path(args.output).write_text(history.render_html(hist), encoding="utf-8")
        print(f"wrote {args.output}: {len(hist.changes())} change points", file=sys.stderr)
    else:
        sys.stdout.write(history.render_text(hist))
    return 0


def cmd_export(args) -> int:
    from .reports import export
    _check_outputs(("-o", args.output))
    run = load_run(args.run, args.storage)
    content = export.FORMATS[args.format](run)
    _write(args.output, content)
    print(f"wrote {args.output} ({args.format})", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    from .reports import validation
    _check_outputs(("--json", args.json))
    quiet = args.quiet
    figures = validation.measure(engine=args.engine, progress=None if quiet else (
        lambda msg: print(f"tlbperf validate: {msg}", file=sys.stderr, flush=True)))
    for line in validation.table(figures):
        print(line)
    if args.json:
        _write(args.json, json.dumps(figures, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if figures != validation.PUBLISHED:
        print("\nthese figures differ from the ones reports print (reports/validation.py "
              "PUBLISHED); update them with --json", file=sys.stderr)
        return 1
    return 0


def _count(lo: int, hi: int):
    """An argparse type: an integer from lo to hi, named in the error."""
    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer from {lo} to {hi}, got "
                                             f"{value}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlbperf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="run built-in workloads and print metrics")
    s.add_argument("--workload", action="append",
                   help="workload to run (repeatable; default: all built-in)")
    s.add_argument("--profile", action="append",
                   help="profile name or .toml path (repeatable; default: each workload's "
                        "home profiles)")
    s.add_argument("--policy", action="append",
                   help="policy name, module:Class or file.py[:Class]; repeatable: each "
                        "runs every cell (default: mainline)")
    s.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=5,
                   help="seeds per cell (default: 5)")
    s.add_argument("--engine", default="auto", choices=api.ENGINES)
    s.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    s.add_argument("--traces", type=_count(0, 64), default=1,
                   help="violations printed with their trace per run (default: 1)")
    s.add_argument("--fail-on-violation", action="store_true",
                   help="exit 1 when any run reports a violation")
    s.set_defaults(func=cmd_simulate)
    cal = sub.add_parser("calibrate", help="print the calibration tables, model beside "
                         "published: seed 002 (haswell-4c), tlb_flush1 (skylake-2s), "
                         "tlb_flush2 (milan-36c)")
    cal.add_argument("--table", action="append", choices=CALIBRATION_TABLES,
                     help="only this table (repeatable; default: all three)")
    cal.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=None,
                     help="seeds per cell (default: 20 for seed002, 3 for tlb_flush1, "
                          "3 for tlb_flush2)")
    cal.add_argument("--iterations", type=_count(1, 100_000), default=200,
                     help="madvise+touch iterations per thread (default: 200)")
    cal.add_argument("--engine", default="auto", choices=api.ENGINES)
    cal.set_defaults(func=cmd_calibrate)
    mat = sub.add_parser("matrix", help="what the model says about each patch (Markdown)")
    mat.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=evidence.SEEDS,
                     help=f"seeds per cell (default: {evidence.SEEDS})")
    mat.add_argument("--policy", action="append",
                     help="policy to include (repeatable; default: every registered one)")
    mat.add_argument("--engine", default="auto", choices=api.ENGINES)
    mat.set_defaults(func=cmd_matrix)
    lst = sub.add_parser("list", help="list profiles, policies, workloads, metrics and "
                                      "saved runs")
    lst.add_argument("--storage", default=".tlbperf", metavar="DIR",
                     help="folder of saved runs (default: .tlbperf)")
    lst.set_defaults(func=cmd_list)

    def run_args(sp):
        sp.add_argument("--storage", default=".tlbperf", metavar="DIR",
                        help="folder of saved runs (default: .tlbperf); a RUN can also be "
                             "a path to a run's .json file")
        sp.add_argument("--threshold", action="append", metavar="[METRIC=]PERCENT",
                        help="practical threshold in percent (default: the run's own, or 2); "
                             "repeatable")
        sp.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when a comparison is a significant regression")

    rep = sub.add_parser("report", help="regression report of a saved run (HTML or text)",
                         description="Report on RUN: each candidate policy against its "
                                     "baseline, paired by seed; every further RUN is a "
                                     "saved run RUN is compared with, unpaired.")
    rep.add_argument("runs", nargs="+", metavar="RUN",
                     help="saved run: id, name, file name, commit prefix, 'latest' or path")
    rep.add_argument("-o", "--output", metavar="FILE",
                     help="write HTML (or text, when FILE ends in .txt); default: text on "
                          "stdout")
    run_args(rep)
    rep.set_defaults(func=cmd_report)
    cmp_ = sub.add_parser("compare", help="compare two saved runs cell by cell (paired by "
                                          "seed where the programs match)")
    cmp_.add_argument("old", metavar="A", help="the reference run: id, name, commit prefix, "
                                               "or a git name (main: its merge-base with "
                                               "HEAD; HEAD~1; a tag)")
    cmp_.add_argument("new", metavar="B", help="the run judged against it")
    run_args(cmp_)
    cmp_.set_defaults(func=cmd_compare)
    his = sub.add_parser("history", help="saved runs in git order with change points "
                                         "(needs the [history] extra: Apache Otava)")
    his.add_argument("--metric", help="only this metric")
    his.add_argument("--policy", help="only this policy")
    his.add_argument("-o", "--output", metavar="FILE.html",
                     help="write a self-contained HTML page with a trend plot per metric; "
                          "default: text on stdout")
    his.add_argument("--storage", default=".tlbperf", metavar="DIR",
                     help="folder of saved runs (default: .tlbperf)")
    his.add_argument("--threshold", action="append", metavar="PERCENT",
                     help="smallest relative change flagged (default: 2)")
    his.set_defaults(func=cmd_history)
    exp = sub.add_parser("export", help="a saved run as pytest-benchmark or pyperf JSON")
    exp.add_argument("run", metavar="RUN", help="saved run (as for report)")
    exp.add_argument("--format", required=True, choices=("pytest-benchmark", "pyperf"))
    exp.add_argument("-o", "--output", required=True, metavar="FILE")
    exp.add_argument("--storage", default=".tlbperf", metavar="DIR")
    exp.set_defaults(func=cmd_export)
    val = sub.add_parser("validate", help="measure the detector's false-positive rate (A/A), "
                                          "power (injected regressions) and interval "
                                          "coverage; about 2 minutes")
    val.add_argument("--engine", default=None, choices=api.ENGINES,
                     help="engine (default: native when built, else python; the figures "
                          "are the same)")
    val.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    val.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    val.set_defaults(func=cmd_validate)
    host_commands.add_parsers(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except TlbperfError as exc:
        print(printable_lines(f"tlbperf: error: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tlbperf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
