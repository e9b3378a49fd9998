"""Calibration of `haswell-4c` against seed 002's table (Nadav Amit, May 31
2019, "[RFC PATCH v2 11/12] x86/mm/tlb: Use async and inline messages for
flushing"): ns per madvise(MADV_DONTNEED)+touch iteration for 1, 2 and 4
threads, before / concurrent / +async.

The model is meant to reach these figures through its mechanisms (the tlb_gen
partial/full rule, call_single_queue IPI coalescing, concurrent local
flushing, early csd unlock) and documented or fitted costs -- never by
special-casing the workload. `tlbperf calibrate` prints the table.
"""

from __future__ import annotations

import statistics

from pytest_tlbperf import api, workloads

THREADS = (1, 2, 4)
POLICIES = ("mainline_v4_20", "concurrent_flush", "async_flush")
COLUMN = {"mainline_v4_20": "before", "concurrent_flush": "concurrent",
          "async_flush": "+async"}
PUBLISHED = {  # threads -> (before, concurrent, +async), ns per iteration (seed 002)
    1: (661, 663, 663),
    2: (1436, 1225, 1115),
    4: (1571, 1421, 1289),
}
# What counts as calibrated (issue 3): "before" within ±10% of the published
# figure; the others as a change relative to the model's own "before".
BEFORE_TOLERANCE = 0.10
CHANGE_RANGES = {  # (policy, threads) -> (lowest, highest) change vs before
    ("concurrent_flush", 1): (-0.02, 0.02), ("concurrent_flush", 2): (-0.18, -0.10),
    ("concurrent_flush", 4): (-0.14, -0.06),
    ("async_flush", 1): (-0.02, 0.02), ("async_flush", 2): (-0.26, -0.18),
    ("async_flush", 4): (-0.22, -0.14),
}


def measure(profile="haswell-4c", seeds=20, iterations=200, engine="auto") -> dict:
    """(policy, threads) -> mean madvise_ns over `seeds` seeds."""
    table = {}
    for policy in POLICIES:
        for threads in THREADS:
            work = workloads.madvise_dontneed(threads=threads, iterations=iterations)
            table[policy, threads] = statistics.mean(
                api.run(work, profile, policy, seed=s, engine=engine).metrics["madvise_ns"]
                for s in range(seeds))
    return table


def checks(table) -> list:
    """[(policy, threads, value, wanted, ok)] for every cell of the table."""
    out = []
    for threads in THREADS:
        before = table["mainline_v4_20", threads]
        published = PUBLISHED[threads][0]
        lo, hi = published * (1 - BEFORE_TOLERANCE), published * (1 + BEFORE_TOLERANCE)
        out.append(("mainline_v4_20", threads, before, f"{lo:.0f}..{hi:.0f} ns",
                    lo <= before <= hi))
        for policy in POLICIES[1:]:
            change = table[policy, threads] / before - 1
            lo, hi = CHANGE_RANGES[policy, threads]
            out.append((policy, threads, change, f"{lo:+.0%}..{hi:+.0%}", lo <= change <= hi))
    return out


def render(table, seeds) -> str:
    """The table in the layout of seed 002, the model first and the
    published figure in brackets."""
    lines = [f"madvise(MADV_DONTNEED)+touch, ns per iteration, haswell-4c, mean of {seeds} "
             f"seeds: model [published, seed 002]", "",
             f"{'n_threads':<11}{'before':<16}{'concurrent':<28}+async",
             f"{'---------':<11}{'------':<16}{'----------':<28}------"]
    for threads in THREADS:
        before = table["mainline_v4_20", threads]
        pub = PUBLISHED[threads]
        cells = [f"{before:.0f} [{pub[0]}]"]
        for i, policy in enumerate(POLICIES[1:], 1):
            value = table[policy, threads]
            if threads == 1:
                cells.append(f"{value:.0f} [{pub[i]}]")
            else:
                cells.append(f"{value:.0f} ({value / before - 1:+.0%}) "
                             f"[{pub[i]} ({pub[i] / pub[0] - 1:+.0%})]")
        lines.append(f"{threads:<11}{cells[0]:<16}{cells[1]:<28}{cells[2]}")
    bad = [c for c in checks(table) if not c[4]]
    lines.append("")
    lines.append("calibrated: every cell within its range" if not bad else
                 "NOT calibrated: " + "; ".join(f"{p} x{t} = {v:.3g}, wanted {w}"
                                                 for p, t, v, w, _ in bad))
    return "\n".join(lines)
