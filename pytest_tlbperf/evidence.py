"""What the model says about each patch: every built-in policy on the cells
where the seed threads make a claim. `tlbperf matrix` prints it as the
Markdown table in the README (a test keeps the two identical)."""

from __future__ import annotations

import statistics

from . import api, policies, workloads
from .metrics import METRICS

SEEDS = 3
# (column title, workload, profile, how to read the cell)
COLUMNS = [
    ("kernel_build@zen1-epyc violations", workloads.kernel_build(), "zen1-epyc", "violations"),
    ("kernel_build@skylake-2s violations", workloads.kernel_build(), "skylake-2s", "violations"),
    ("idle_server@laptop-8c IPIs to idle", workloads.idle_server(), "laptop-8c", "ipis_to_idle"),
    ("idle_server@laptop-8c flush p99", workloads.idle_server(), "laptop-8c",
     "flush_latency_ns_p99"),
    ("vm_overcommit@kvm-guest-16 flush p99", workloads.vm_overcommit(), "kvm-guest-16",
     "flush_latency_ns_p99"),
    ("context_switch@skylake-2s CR3 writes", workloads.context_switch(), "skylake-2s",
     "cr3_writes"),
    ("context_switch@skylake-2s contention", workloads.context_switch(), "skylake-2s",
     "atomic_contention_ns"),
    ("exit_storm@skylake-2s IPIs", workloads.exit_storm(), "skylake-2s", "ipis"),
    ("madvise x4@haswell-4c ns/iter", workloads.madvise_dontneed(threads=4), "haswell-4c",
     "madvise_ns"),
]


def _fmt(metric, value) -> str:
    if METRICS[metric].unit != "ns":
        return f"{value:.0f}"
    if value >= 1_000_000:
        return f"{value / 1e6:.1f} ms"
    return f"{value / 1000:.1f} µs" if value >= 10_000 else f"{value:.0f} ns"


def cell(workload, profile, policy, what, seeds=SEEDS, engine="auto") -> str:
    results = [api.run(workload, profile, policy, seed=s, engine=engine) for s in range(seeds)]
    if what == "violations":
        found = sorted({f"{v.kind} ({v.severity})" for r in results for v in r.violations})
        return ", ".join(found) or "none"
    return _fmt(what, statistics.median(r.metrics[what] for r in results))


def table(seeds=SEEDS, engine="auto", names=None, progress=None) -> str:
    """The Markdown table, one row per policy, median over `seeds` seeds."""
    names = names or policies.names()
    head = "| policy | " + " | ".join(title for title, *_ in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for i, name in enumerate(names, 1):
        if progress:
            progress(f"[{i}/{len(names)}] {name}")
        cells = [cell(w, p, name, what, seeds, engine) for _, w, p, what in COLUMNS]
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
