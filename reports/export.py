"""Exports of a run's samples for the tools kernel and Python developers
already use to compare benchmarks: pytest-benchmark (`pytest-benchmark
compare FILE...`) and pyperf (`python -m pyperf compare_to A B`).

Each export is built with the tool's *own* classes -- pytest-benchmark's
`Stats` computes min/median/IQR/outliers the way its tables expect, pyperf's
`Run`/`Benchmark`/`BenchmarkSuite` validate and write its versioned format --
so the files are what those tools write themselves. Both packages are
needed only to export (and to read the result): `pip install
pytest-benchmark pyperf` (they are in the `[test]` extra).

One benchmark per (suite test, profile, policy, metric), one value per seed.
Time metrics (unit ns) are exported in seconds, the unit both tools assume;
every other metric keeps its own value (pyperf marks it 'integer', and
pytest-benchmark, which only knows time, shows it in its 's' column: read
that as the metric's own unit, recorded in `extra_info`). Both tools take
lower as better, so a higher-is-better metric (`ops_per_sec`) reads
inverted there. pyperf accepts only values > 0: a (cell, metric) with a
zero sample is left out of the pyperf file and named in every
benchmark's metadata (`tlbperf_skipped`).
"""

from __future__ import annotations

import datetime
import io
import json
import platform

from pytest_tlbperf.errors import TlbperfError
from pytest_tlbperf.metrics import METRICS


def _samples(run):
    """(cell, metric, [values over seeds]) for every metric a cell shows."""
    for cell in sorted(run["cells"], key=lambda c: (c["test"], c["profile"], c["policy"])):
        for metric in cell.get("metrics", ()):
            values = [s["metrics"][metric] for s in cell["seeds"] if metric in s["metrics"]]
            if values:
                yield cell, metric, values


def _scaled(metric, values):
    unit = METRICS[metric].unit
    return [v * 1e-9 for v in values] if unit == "ns" else list(values)


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
    for cell, metric, values in _samples(run):
        stats = Stats()
        for value in _scaled(metric, values):
            stats.update(value)
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
            "extra_info": {"metric": metric, "unit": METRICS[metric].unit,
                           "better": METRICS[metric].better,
                           "seeds": [s["seed"] for s in cell["seeds"]
                                     if metric in s["metrics"]],
                           "exported_in": "seconds" if METRICS[metric].unit == "ns"
                           else METRICS[metric].unit},
            "options": {"engine": cell.get("engine", ""), "workload": cell.get("workload", "")},
            "stats": data,
        })
    return json.dumps({
        "machine_info": {"node": "modeled machine (pytest-tlbperf)",
                         "machine": ", ".join(sorted(run.get("profiles", {}))),
                         "processor": "", "python_implementation":
                             platform.python_implementation(),
                         "python_version": platform.python_version(),
                         "tlbperf_model_version": run.get("model_version"),
                         "tlbperf_profiles": run.get("profiles", {})},
        "commit_info": {"id": run.get("commit", "unknown"), "dirty": bool(run.get("dirty")),
                        "project": "pytest-tlbperf run", "branch": None,
                        "time": run.get("created")},
        "benchmarks": benchmarks,
        "datetime": run.get("created") or datetime.datetime.now(
            datetime.timezone.utc).isoformat(),
        "version": pb_version,
    }, indent=4) + "\n"


def pyperf(run) -> str:
    """The run as a pyperf benchmark suite (JSON format of `pyperf._bench`),
    built with `pyperf.Run`, `pyperf.Benchmark` and `pyperf.BenchmarkSuite`:
    one run per seed, one value per run."""
    try:
        import pyperf as pp
    except ImportError:
        _needs("pyperf", "pyperf")
    samples = [(f"{cell['test']}[{cell['profile']}-{cell['policy']}]:{metric}", metric,
                values) for cell, metric, values in _samples(run)]
    skipped = [name for name, _, values in samples if any(v <= 0 for v in values)]
    benchmarks = []
    for name, metric, values in samples:
        if name in skipped:
            continue
        unit = "second" if METRICS[metric].unit == "ns" else "integer"
        meta = {"name": name, "unit": unit, "loops": 1,
                "description": f"{METRICS[metric].description} ({METRICS[metric].unit}, "
                               f"{METRICS[metric].better} is better)",
                "tlbperf_commit": str(run.get("commit") or "unknown"),
                "tlbperf_model_version": str(run.get("model_version") or "?")}
        if skipped:
            meta["tlbperf_skipped"] = ", ".join(skipped)
        runs = [pp.Run([v], metadata=meta, collect_metadata=False)
                for v in _scaled(metric, values)]
        benchmarks.append(pp.Benchmark(runs))
    if not benchmarks:
        raise TlbperfError("nothing to export for pyperf: no metric with positive values")
    out = io.StringIO()
    pp.BenchmarkSuite(benchmarks).dump(out, compact=False)
    return out.getvalue()


FORMATS = {"pytest-benchmark": pytest_benchmark, "pyperf": pyperf}   # plugin.FORMATS too
