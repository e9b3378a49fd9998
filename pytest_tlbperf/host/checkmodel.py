"""`tlbperf check-model`: every workload with a host form, on this
machine's kernel and on the model of this machine (a profile written by
`tlbperf profile --from-host`), side by side with their ratio -- where the
model is good on this hardware and where it is not.

A workload the model does not have yet (not in tp.workloads.BUILDERS) is
still run on the host; its model column says why it is empty.
"""

from __future__ import annotations

import statistics

from .. import api, workloads
from ..errors import TlbperfError
from ..metrics import METRICS
from . import forms

# what is compared: metrics that mean the same per unit of work on both
# sides (rates and per-iteration times, not counts over a window)
COMPARED = {"madvise_dontneed": ("madvise_ns", "ops_per_sec")}
DEFAULT_COMPARED = ("ops_per_sec",)


class Row:
    """One (workload, size, metric): the host's median over its windows,
    the share of its CPUs the runner got (median), the model's median over
    seeds. The model runs alone on its machine; the host may not have: so
    the host figure is also given per CPU-second the runner received
    (`host_cpu`: a rate divided by the share, a time multiplied by it),
    and the ratio is taken against that."""

    __slots__ = ("workload", "size", "metric", "host", "share", "model", "note")

    def __init__(self, workload, size, metric, host, share, model, note=""):
        self.workload, self.size, self.metric = workload, size, metric
        self.host, self.share, self.model, self.note = host, share, model, note

    @property
    def host_cpu(self):
        if self.host is None or not self.share:
            return self.host
        share = min(self.share, 1.0)
        return self.host * share if METRICS[self.metric].unit == "ns" \
            else self.host / share

    @property
    def ratio(self):
        if self.host_cpu in (None, 0) or self.model is None:
            return None
        return self.model / self.host_cpu

    def to_dict(self) -> dict:
        return {"workload": self.workload, "size": self.size, "metric": self.metric,
                "host": self.host, "cpu_share": self.share, "host_per_cpu": self.host_cpu,
                "model": self.model, "ratio": self.ratio, "note": self.note}


def sizes(name, usable, topo, wanted=None) -> list:
    """The sizes a workload runs at: `wanted`, else 1 and 2 (as far as the
    CPUs allow: context_switch1 needs a core per pair)."""
    f = forms.form(name)
    if f.size == "pairs":
        limit = len({topo[c].core_key for c in usable})
    else:
        limit = len(usable)
    chosen = wanted or [1, 2]
    return sorted({n for n in chosen if n <= limit} or {1})


def model_figures(name, size_param, n, profile, policy, seeds, engine):
    """{metric: median over seeds} on the model, or (None, why not)."""
    builder = workloads.BUILDERS.get(name)
    if builder is None:
        return None, (f"{name} is not a model workload in this pytest-tlbperf "
                      f"(tp.workloads.BUILDERS has no {name})")
    try:
        workload = builder(**{size_param: n})
        results = [api.run(workload, profile, policy, seed=s, engine=engine)
                   for s in range(seeds)]
    except TlbperfError as exc:
        return None, f"model: {exc}"
    out = {}
    for metric in {m for r in results for m in r.metrics}:
        values = [r.metrics[metric] for r in results if metric in r.metrics]
        out[metric] = statistics.median(values)
    return out, ""


def check(profile, config, names=None, wanted_sizes=None, windows=5, seeds=5,
          policy="mainline", engine="auto", host_run=None, progress=None) -> list:
    """The rows of the table. `host_run(name, params, windows, config)` runs
    the host side (default: pytest_tlbperf.host.run); tests pass their own."""
    from . import run as default_host_run
    from . import sysfs
    host_run = host_run or default_host_run
    topo = sysfs.topology(config.root, config.cpus)
    rows = []
    for name in names or list(forms.FORMS):
        f = forms.form(name)
        for n in sizes(name, config.cpus, topo, wanted_sizes):
            size = f"{f.size}={n}"
            if progress:
                progress(f"{name} {size}: host, {windows} windows")
            result = host_run(name, {f.size: n}, windows, config)
            if progress:
                progress(f"{name} {size}: model, {seeds} seeds")
            model, why = model_figures(name, f.size, n, profile, policy, seeds, engine)
            shares = [s["window"]["cpu_share"] for s in result.samples
                      if s.get("window", {}).get("cpu_share") is not None]
            share = statistics.median(shares) if shares else None
            for metric in COMPARED.get(name, DEFAULT_COMPARED):
                note = why
                if model is not None and metric not in model:
                    note = f"the model's {name} gives no {metric}"
                rows.append(Row(name, size, metric, result.median(metric), share,
                                None if model is None else model.get(metric), note))
    return rows


def _num(v) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"


def render(rows, head=()) -> str:
    """The table: one row per (workload, size, metric); notes under it."""
    lines = list(head)
    widths = (16, 10, 11, 8, 5, 8, 8, 6)
    titles = ("workload", "size", "metric", "host", "share", "host/cpu", "model",
              "m/h")
    fmt = "{:<16} {:<10} {:<11} {:>8} {:>5} {:>8} {:>8} {:>6}"
    lines += ["", fmt.format(*titles), fmt.format(*("-" * w for w in widths))]
    notes = []
    for r in rows:
        mark = ""
        if r.note:
            if r.note not in notes:
                notes.append(r.note)
            mark = f" [{notes.index(r.note) + 1}]"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        share = "-" if r.share is None else f"{min(r.share, 9.99):.0%}"
        lines.append(fmt.format(r.workload, r.size, r.metric, _num(r.host), share,
                                _num(r.host_cpu), _num(r.model), ratio) + mark)
    lines += ["", "host: median of the windows; share: of its CPUs the runner got (median); "
              "host/cpu:", "the host figure per CPU-second it got; m/h: model / host/cpu "
              "(1.00: the model", "is exact; above 1 for a rate, below 1 for a time: the "
              "model is fast)."]
    if notes:
        lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"
