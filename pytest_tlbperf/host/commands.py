"""The command line of the host backend, registered by pytest_tlbperf.cli:

  tlbperf host run W     run one workload with a host form on this kernel
                         and print every window
  tlbperf host identity  the running kernel's identity, as a host run
                         records it
  tlbperf profile --from-host [-o FILE]
                         this machine as a profile (measured, sysfs, or
                         a stated default for each value)
  tlbperf profile NAME   print a built-in profile
  tlbperf check-model    each host-capable workload on the host and on
                         the model of this machine, with their ratio

Bad input (an offline CPU, more threads than CPUs, a window of 0, an
output that cannot be written) is refused before anything is measured;
Ctrl-C stops a run within a second and exits 130.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path

from ..errors import HostError, TlbperfError
from ..metrics import METRICS


def writable(path, option) -> Path:
    """Refuse an output that cannot be written, before any measuring."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise HostError(f"{option} {path}: is a directory")
    if not parent.is_dir():
        raise HostError(f"{option} {path}: cannot write: {parent} is not a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise HostError(f"{option} {path}: cannot write: permission denied")
    try:
        # what the final write does (a temporary file in the same folder),
        # tried now: os.access() says yes to root on a read-only mount
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise HostError(f"{option} {path}: cannot write in {parent}: {exc.strerror}") \
            from None
    os.close(fd)
    os.unlink(probe)
    return path


def write_atomically(path, text, option):
    """Write `text` to `path` through a temporary file in the same folder,
    so a failure leaves no half-written file; if writing fails anyway, the
    text goes to stdout so the measurement is not lost."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                   prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        sys.stdout.write(text)
        raise HostError(f"{option} {path}: cannot write: {exc.strerror}; the result is "
                        f"printed above instead") from None


def interruptible(func):
    @functools.wraps(func)
    def wrapper(args):
        try:
            return func(args)
        except KeyboardInterrupt:
            print("tlbperf: interrupted", file=sys.stderr)
            return 130
    return wrapper


def _config(args):
    from . import HostConfig
    return HostConfig(cpus=args.cpus, window_ms=args.window_ms, warmup_ms=args.warmup_ms,
                      file_mb=getattr(args, "file_mb", 16), perf=not getattr(args, "no_perf",
                                                                              False))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.1f}"


def window_table(run) -> list:
    """A row per window, then the medians."""
    names = [m for m in METRICS if any(m in s["metrics"] for s in run.samples)]
    head = ["window"] + names + ["CPU share", "steal %"]
    rows = []
    for s in run.samples:
        w = s.get("window") or {}
        share = w.get("cpu_share")
        rows.append([str(s["seed"])] + [_fmt(s["metrics"].get(m)) for m in names] +
                    [f"{share:.0%}" if share is not None else "-",
                     _fmt(w.get("steal_pct"))])
    rows.append(["median"] + [_fmt(run.median(m)) for m in names] + ["", ""])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head] + rows]


@interruptible
def cmd_host_run(args) -> int:
    from . import _bounded, forms, identity, machine_identity, run
    f = forms.form(args.workload)
    n = args.pairs if f.size == "pairs" else args.threads
    _bounded("windows", args.windows, "--windows")
    if args.json:
        writable(args.json, "--json")
    config = _config(args)
    ident = machine_identity()
    result = run(args.workload, {f.size: n}, windows=args.windows, config=config)
    print(f"host: {identity.summary(ident)}")
    print(f"{args.workload} {f.size}={n} on {result.placement()}: warm-up "
          f"{config.warmup_ms} ms, {args.windows} windows of {config.window_ms} ms")
    for line in window_table(result):
        print(line)
    print("counters:")
    for metric, source in sorted(result.counters.items()):
        print(f"  {metric}: {source}")
    if args.json:
        data = {"identity": ident, "settings": config.to_dict(), "workload": args.workload,
                "params": {f.size: n}, "cpus": result.cpus, "partners": result.partners,
                "counters": result.counters, "samples": result.samples}
        write_atomically(args.json, json.dumps(data, indent=1, sort_keys=True) + "\n",
                         "--json")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_host_identity(args) -> int:
    from . import identity, machine_identity
    ident = machine_identity()
    if args.json:
        print(json.dumps(ident, indent=1, sort_keys=True))
    else:
        for line in identity.lines(ident):
            print(line)
    return 0


@interruptible
def cmd_profile(args) -> int:
    from .. import profiles
    if not args.from_host:
        if not args.name:
            raise TlbperfError("tlbperf profile: give --from-host (this machine) or the "
                               f"name of a built-in profile ({', '.join(profiles.names())})")
        profiles.get(args.name)                  # an unknown name or a bad file fails here
        builtin = profiles._builtin_files().get(args.name)
        sys.stdout.write(builtin.read_text() if builtin else Path(args.name).read_text())
        return 0
    from . import profile
    if args.output:
        writable(args.output, "-o")
    config = _config(args)
    print("measuring this machine (a few seconds)...", file=sys.stderr)
    text = profile.from_host(name=args.name or "this-host", config=config)
    if args.output:
        write_atomically(args.output, text, "-o")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


@interruptible
def cmd_check_model(args) -> int:
    from .. import policies, profiles, workloads
    from . import _bounded, checkmodel, forms, identity, machine_identity, profile
    for name in args.workload or ():
        forms.form(name)
    _bounded("windows", args.windows, "--windows")
    for n in args.size or ():
        if n < 1:
            raise HostError(f"--size {n}: threads (pairs) must be at least 1")
    policies.resolve(args.policy)
    if args.json:
        writable(args.json, "--json")
    config = _config(args)
    if args.profile:
        prof = profiles.get(args.profile)
        where = f"profile {args.profile}"
    else:
        print("measuring this machine for its profile (tlbperf profile --from-host)...",
              file=sys.stderr)
        prof = profiles._parse(profile.from_host(config=config), "this machine, measured now")
        where = "this machine's profile, measured now (tlbperf profile --from-host)"
    ident = machine_identity()
    progress = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.progress else None
    rows = checkmodel.check(prof, config, names=args.workload, wanted_sizes=args.size,
                            windows=args.windows, seeds=args.seeds, policy=args.policy,
                            engine=args.engine, progress=progress)
    missing = sorted({r.workload for r in rows if r.workload not in workloads.BUILDERS})
    head = ["check-model: this kernel (host) against the model of this machine",
            f"host:  {identity.summary(ident)}; median of {args.windows} windows of "
            f"{config.window_ms} ms after {config.warmup_ms} ms",
            f"model: {where}, policy {args.policy}, median of {args.seeds} seeds"]
    sys.stdout.write(checkmodel.render(rows, head))
    if missing:
        print(f"(no model form yet: {', '.join(missing)})")
    if args.json:
        data = {"identity": ident, "settings": config.to_dict(), "profile": prof.name,
                "policy": args.policy, "seeds": args.seeds, "windows": args.windows,
                "rows": [r.to_dict() for r in rows]}
        write_atomically(args.json, json.dumps(data, indent=1, sort_keys=True) + "\n",
                         "--json")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _host_args(p, windows=True):
    p.add_argument("--cpus", metavar="LIST", help="CPUs to use, a cpulist such as 0-3,8 "
                   "(default: every online CPU this process may run on)")
    p.add_argument("--window-ms", type=int, default=1000, metavar="MS",
                   help="one window, one sample (default: 1000, as will-it-scale)")
    p.add_argument("--warmup-ms", type=int, default=1000, metavar="MS",
                   help="warm-up before the first window (default: 1000)")
    if windows:
        p.add_argument("--windows", type=int, default=5, metavar="N",
                       help="measured windows (default: 5)")


def add_parsers(sub):
    from .. import api
    from . import forms
    h = sub.add_parser("host", help="run workloads on the running kernel (host backend)")
    hs = h.add_subparsers(dest="host_command", required=True)
    r = hs.add_parser("run", help="one workload with a host form, window by window")
    r.add_argument("workload", choices=list(forms.FORMS))
    r.add_argument("--threads", type=int, default=1, metavar="N",
                   help="threads (pinned one per CPU; default: 1)")
    r.add_argument("--pairs", type=int, default=1, metavar="N",
                   help="context_switch1: ping-pong pairs, one core each (default: 1)")
    r.add_argument("--file-mb", type=int, default=16, metavar="MIB",
                   help="tlb_flush1/3: the file each thread maps (default: 16)")
    r.add_argument("--no-perf", action="store_true", help="do not open perf counters")
    r.add_argument("--json", metavar="PATH", help="also write the windows as JSON")
    _host_args(r)
    r.set_defaults(func=cmd_host_run)
    i = hs.add_parser("identity", help="the running kernel's identity")
    i.add_argument("--json", action="store_true", help="as JSON")
    i.set_defaults(func=cmd_host_identity)

    p = sub.add_parser("profile", help="this machine as a profile (--from-host), or print a "
                                       "built-in one")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="built-in profile to print; with --from-host, the new profile's name")
    p.add_argument("--from-host", action="store_true", help="measure this machine")
    p.add_argument("-o", "--output", metavar="FILE", help="write the profile to FILE "
                   "(default: stdout)")
    p.add_argument("--cpus", metavar="LIST", help="CPUs to measure on (the first two, one "
                   "core apart where possible)")
    p.set_defaults(func=cmd_profile, window_ms=1000, warmup_ms=0)

    c = sub.add_parser("check-model", help="host-capable workloads on the host and on the "
                                           "model of this machine, side by side")
    c.add_argument("--profile", metavar="NAME|FILE", help="the model's profile (default: "
                   "measure this machine now, as profile --from-host)")
    c.add_argument("--workload", action="append", metavar="W",
                   help=f"repeatable (default: every host form: {', '.join(forms.FORMS)})")
    c.add_argument("--size", action="append", type=int, metavar="N",
                   help="threads (pairs for context_switch1); repeatable (default: 1 and 2)")
    c.add_argument("--seeds", type=int, default=5, metavar="N",
                   help="model seeds (default: 5)")
    c.add_argument("--policy", default="mainline", help="the model's policy (default: "
                   "mainline, today's kernel)")
    c.add_argument("--engine", default="auto", choices=api.ENGINES)
    c.add_argument("--progress", action="store_true", help="say what runs")
    c.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    _host_args(c)
    c.set_defaults(func=cmd_check_model)


def compare_lines(new, old) -> list:
    """What `tlbperf compare` adds for host runs: the kernels side by side."""
    from . import report
    return report.comparison(new, old)


def report_lines(run, references) -> list:
    """What `tlbperf report` adds to the text of a host run: the kernel,
    the counters it lacked, each cell's figures, the kernels compared."""
    from . import report
    lines = report.text(run, references)
    return [""] + lines if lines else []
