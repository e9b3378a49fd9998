"""Exports of a run's samples for the tools kernel and Python developers
already use to compare benchmarks: pytest-benchmark (`pytest-benchmark
compare FILE...`) and pyperf (`python -m pyperf compare_to A B`).

Each export is built with the tool's *own* classes -- pytest-benchmark's
`Stats` computes min/median/IQR/outliers the way its tables expect, pyperf's
`Run`/`Benchmark`/`BenchmarkSuite` validate and write its versioned format --
so the files are what those tools write themselves. Both packages are
needed only to export (and to read the result): `pip install
pytest-benchmark pyperf` (they are in the `[test]` extra).

**pytest-benchmark** knows one unit, time in seconds, and labels every
column with it. So a benchmark is a (suite test, profile, policy, time
metric), one value per seed, in seconds; the cell's counts (IPIs, CR3
writes, ...) travel in that benchmark's `extra_info["counts"]` with their
unit, never in a time column. A cell that shows no time metric carries its
counts on `makespan_ns` (recorded for every cell).

**pyperf** compares two files with a Student t-test (`pyperf._utils.
is_significant`) that needs the same number of values on both sides and a
non-zero pooled variance, takes only values > 0, and `pyperf show` warns
"may be unstable ... Run 'pyperf system tune'" when a 'second' value's raw
time is under 1 ms (`_cli.format_checks`: a clock-resolution check). So:

* a benchmark is a (cell, metric) holding the seeds of the cell's *first
  look* -- the seeds its test ran before any adaptive round -- so two runs
  made with the same --tlbperf-rounds have the same number of values
  whatever the adaptive rounds did (a different count is what made
  `compare_to` print "ERROR when testing if values are significant" and
  call an unchanged baseline "1.18x faster");
* time metrics are written as integer nanoseconds with pyperf's unit
  'integer': a modeled time is exact, not read from a clock, and the
  sub-millisecond check is about a clock;
* a (cell, metric) that pyperf cannot test is left out and named, with the
  reason, in every benchmark's `tlbperf_left_out` metadata: a value 0
  (pyperf takes values > 0), fewer than 2 values, or the same value on every
  seed (no variance: the t-test divides by it).

Both tools take lower as better, so a higher-is-better metric
(`ops_per_sec`) reads inverted there; each benchmark's description says
which way is better.
"""

from __future__ import annotations

import datetime
import io
import json
import platform
import statistics

from pytest_tlbperf.errors import TlbperfError
from pytest_tlbperf.metrics import METRICS

CARRIER = "makespan_ns"        # carries the counts of a cell that shows no time metric


def _is_time(metric) -> bool:
    return METRICS[metric].unit == "ns"


def _cells(run):
    return sorted(run["cells"], key=lambda c: (c["test"], c["profile"], c["policy"]))


def _values(cell, metric, seeds=None) -> list:
    """(seed, value) of `metric` in seed order, on `seeds` when given."""
    out = sorted((s["seed"], s["metrics"][metric]) for s in cell["seeds"]
                 if metric in s["metrics"])
    return out if seeds is None else [(s, v) for s, v in out if s in seeds]


def _needs(module, tool):
    raise TlbperfError(f"exporting for {tool} needs {module}: pip install {module}")


def pytest_benchmark(run) -> str:
    """The run as a pytest-benchmark JSON document (its `machine_info`,
    `commit_info`, `benchmarks`, `datetime`, `version` layout). Groups are
    'metric test[profile]', so `pytest-benchmark compare` puts the policies
    (and, given two files, the two runs) of one metric side by side."""
    try:
        from pytest_benchmark import __version__ as pb_version
        from pytest_benchmark.stats import Stats
    except ImportError:
        _needs("pytest-benchmark", "pytest-benchmark")
    benchmarks = []
    for cell in _cells(run):
        shown = list(cell.get("metrics", ()))
        times = [m for m in shown if _is_time(m)]
        counts = [m for m in shown if not _is_time(m)]
        if not times and counts and _values(cell, CARRIER):
            times = [CARRIER]
        extra_counts = {}
        for metric in counts:
            pairs = _values(cell, metric)
            if pairs:
                extra_counts[metric] = {
                    "unit": METRICS[metric].unit, "better": METRICS[metric].better,
                    "median": statistics.median(v for _, v in pairs),
                    "values": [v for _, v in pairs]}
        for metric in times:
            pairs = _values(cell, metric)
            if not pairs:
                continue
            stats = Stats()
            for _, value in pairs:
                stats.update(value * 1e-9)
            data = stats.as_dict()
            data["data"] = list(stats.data)
            data["iterations"] = 1
            param = f"{cell['profile']}-{cell['policy']}"
            benchmarks.append({
                "group": f"{metric} {cell['test']}[{cell['profile']}]",
                "name": f"{cell['test']}[{param}]",
                "fullname": f"{cell['test']}[{param}]::{metric}",
                "params": {"profile": cell["profile"], "policy": cell["policy"]},
                "param": param,
                "extra_info": {"metric": metric, "unit": "ns, exported in seconds",
                               "better": METRICS[metric].better,
                               "seeds": [s for s, _ in pairs], "counts": extra_counts},
                "options": {"engine": cell.get("engine", ""),
                            "workload": cell.get("workload", "")},
                "stats": data,
            })
    return json.dumps({
        "machine_info": {"node": "modeled machine (pytest-tlbperf)",
                         "machine": ", ".join(sorted(run.get("profiles", {}))),
                         "processor": "", "python_implementation":
                             platform.python_implementation(),
                         "python_version": platform.python_version(),
                         "tlbperf_model_version": run.get("model_version"),
                         "tlbperf_profiles": run.get("profiles", {}),
                         "tlbperf_note": "time metrics only, in seconds; each benchmark's "
                                         "extra_info['counts'] holds its cell's counts"},
        "commit_info": {"id": run.get("commit", "unknown"), "dirty": bool(run.get("dirty")),
                        "project": "pytest-tlbperf run", "branch": None,
                        "time": run.get("created")},
        "benchmarks": benchmarks,
        "datetime": run.get("created") or datetime.datetime.now(
            datetime.timezone.utc).isoformat(),
        "version": pb_version,
    }, indent=4) + "\n"


def _first_look(run, cell) -> set:
    """The seeds a cell's test ran before any adaptive round."""
    rounds = cell.get("rounds") or (run.get("options") or {}).get("rounds") \
        or len(cell["seeds"])
    return set(sorted(s["seed"] for s in cell["seeds"])[:rounds])


def _untestable(values) -> str:
    """Why pyperf's compare_to cannot test these values, or ''."""
    if any(v <= 0 for v in values):
        return "a value is 0 (pyperf takes values > 0)"
    if len(values) < 2:
        return "fewer than 2 seeds (no t-test)"
    if len(set(values)) == 1:
        return "the same value on every seed (no variance for the t-test)"
    return ""


def pyperf(run) -> str:
    """The run as a pyperf benchmark suite (JSON format of `pyperf._bench`),
    built with `pyperf.Run`, `pyperf.Benchmark` and `pyperf.BenchmarkSuite`:
    one run per seed of the cell's first look, one value per run."""
    try:
        import pyperf as pp
    except ImportError:
        _needs("pyperf", "pyperf")
    samples, left_out = [], []
    for cell in _cells(run):
        seeds = _first_look(run, cell)
        for metric in cell.get("metrics", ()):
            pairs = _values(cell, metric, seeds)
            if not pairs:
                continue
            name = f"{cell['test']}[{cell['profile']}-{cell['policy']}]:{metric}"
            why = _untestable([v for _, v in pairs])
            if why:
                left_out.append(f"{name}: {why}")
            else:
                samples.append((name, metric, pairs))
    if not samples:
        raise TlbperfError("nothing to export for pyperf: no metric pyperf can test ("
                           + "; ".join(left_out[:3]) + ("; ..." if len(left_out) > 3 else "")
                           + ")")
    benchmarks = []
    for name, metric, pairs in samples:
        m = METRICS[metric]
        unit = "nanoseconds as integers" if _is_time(metric) else m.unit
        meta = {"name": name, "unit": "integer",
                "description": f"{m.description} ({unit}, {m.better} is better; the seeds "
                               f"of the cell's first look: "
                               f"{', '.join(str(s) for s, _ in pairs)})",
                "tlbperf_commit": str(run.get("commit") or "unknown"),
                "tlbperf_model_version": str(run.get("model_version") or "?")}
        if left_out:
            meta["tlbperf_left_out"] = "; ".join(left_out)
        benchmarks.append(pp.Benchmark([pp.Run([v], metadata=meta, collect_metadata=False)
                                        for _, v in pairs]))
    out = io.StringIO()
    pp.BenchmarkSuite(benchmarks).dump(out, compact=False)
    return out.getvalue()


FORMATS = {"pytest-benchmark": pytest_benchmark, "pyperf": pyperf}   # plugin.FORMATS too
