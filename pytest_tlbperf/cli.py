"""`tlbperf`: the command line.

  tlbperf simulate   run the built-in workloads on the profiles where their
                     question matters, over several seeds, and print metrics
                     and violations (the main job until `pytest --tlbperf`)
  tlbperf calibrate  haswell-4c's madvise(DONTNEED) table next to seed 002's
  tlbperf matrix     every policy on the cells where the seeds make a claim
  tlbperf list       profiles, policies, workloads and metrics
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from . import api, calibration, evidence, metrics, policies, profiles, workloads
from .errors import TlbperfError

# where each workload's question is asked (DESIGN §3.8 / the seeds)
HOME_PROFILES = {
    "madvise_dontneed": ["haswell-4c"],
    "munmap_storm": ["skylake-2s"],
    "kernel_build": ["zen1-epyc", "skylake-2s"],
    "idle_server": ["skylake-2s", "laptop-8c"],
    "context_switch": ["skylake-2s"],
    "exit_storm": ["skylake-2s"],
    "vm_overcommit": ["kvm-guest-16"],
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


def cmd_simulate(args) -> int:
    for prof in args.profile or []:
        profiles.get(prof)                 # fail before any work on a bad name
    cells = list(_cells(args))
    rows, dump, failed = [], [], False
    for i, (name, prof) in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] {name} on {prof}, {args.seeds} seeds, policy {args.policy}",
              file=sys.stderr, flush=True)
        results = [api.run(workloads.BUILDERS[name](), prof, args.policy, seed=s,
                           engine=args.engine) for s in range(args.seeds)]
        dump += [r.to_dict() for r in results]
        med = {m: statistics.median(r.metrics[m] for r in results) for m, _ in COLUMNS}
        kinds = sorted({v.kind for r in results for v in r.violations})
        failed |= bool(kinds)
        rows.append([name, prof] + [f"{med[m]:.0f}" for m, _ in COLUMNS] +
                    [", ".join(kinds) or "-"])
        for r in results:
            for v in r.violations[: args.traces]:
                print(f"{name}@{prof} seed {r.seed}: {v.format()}")
    header = ["workload", "profile"] + [label for _, label in COLUMNS] + ["violations"]
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    print(f"policy {args.policy}, median over {args.seeds} seeds, engine {args.engine}")
    for row in [header] + rows:
        print("  ".join(str(cell).rjust(w) if 1 < i < len(row) - 1 else str(cell).ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model_version": api.MODEL_VERSION, "results": dump}, fh, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if failed and args.fail_on_violation else 0


def cmd_calibrate(args) -> int:
    table = calibration.measure(seeds=args.seeds, iterations=args.iterations,
                                engine=args.engine)
    print(calibration.render(table, args.seeds))
    return 0 if all(ok for *_, ok in calibration.checks(table)) else 1


def cmd_matrix(args) -> int:
    names = args.policy or None
    for name in names or []:
        policies.resolve(name)              # a bad name fails before any work
    print(evidence.table(seeds=args.seeds, engine=args.engine, names=names,
                         progress=lambda msg: print(msg, file=sys.stderr, flush=True)))
    return 0


def cmd_list(args) -> int:
    print("profiles:  " + ", ".join(profiles.names()))
    print("policies:  " + ", ".join(policies.names()))
    print("workloads: " + ", ".join(workloads.BUILDERS))
    print("metrics:")
    for m in metrics.METRICS.values():
        print(f"  {m.name:22s} {m.unit:8s} {m.better} is better  {m.description}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tlbperf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="run built-in workloads and print metrics")
    s.add_argument("--workload", action="append",
                   help="workload to run (repeatable; default: all built-in)")
    s.add_argument("--profile", action="append",
                   help="profile name or .toml path (repeatable; default: each workload's "
                        "home profiles)")
    s.add_argument("--policy", default="mainline",
                   help="policy name, module:Class or file.py[:Class] (default: mainline)")
    s.add_argument("--seeds", type=int, default=5, help="seeds per cell (default: 5)")
    s.add_argument("--engine", default="auto", choices=api.ENGINES)
    s.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    s.add_argument("--traces", type=int, default=1,
                   help="violations printed with their trace per run (default: 1)")
    s.add_argument("--fail-on-violation", action="store_true",
                   help="exit 1 when any run reports a violation")
    s.set_defaults(func=cmd_simulate)
    cal = sub.add_parser("calibrate", help="print haswell-4c's madvise table next to seed 002's")
    cal.add_argument("--seeds", type=int, default=20, help="seeds per cell (default: 20)")
    cal.add_argument("--iterations", type=int, default=200,
                     help="madvise+touch iterations per thread (default: 200)")
    cal.add_argument("--engine", default="auto", choices=api.ENGINES)
    cal.set_defaults(func=cmd_calibrate)
    mat = sub.add_parser("matrix", help="what the model says about each patch (Markdown)")
    mat.add_argument("--seeds", type=int, default=evidence.SEEDS,
                     help=f"seeds per cell (default: {evidence.SEEDS})")
    mat.add_argument("--policy", action="append",
                     help="policy to include (repeatable; default: every registered one)")
    mat.add_argument("--engine", default="auto", choices=api.ENGINES)
    mat.set_defaults(func=cmd_matrix)
    lst = sub.add_parser("list", help="list profiles, policies, workloads and metrics")
    lst.set_defaults(func=cmd_list)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "seeds", 1) < 1:
        parser().error("--seeds must be at least 1")
    try:
        return args.func(args)
    except TlbperfError as exc:
        print(f"tlbperf: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
