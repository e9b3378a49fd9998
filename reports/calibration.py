"""The calibration tables `tlbperf calibrate` prints, model beside published:

- `haswell-4c` against seed 002's table (Nadav Amit, May 31 2019, "[RFC PATCH
  v2 11/12] x86/mm/tlb: Use async and inline messages for flushing"): ns per
  madvise(MADV_DONTNEED)+touch iteration for 1, 2 and 4 threads, before /
  concurrent / +async;
- `skylake-2s` against aa44284960d5's will-it-scale tlb_flush1_threads table
  ("x86/mm/tlb: Avoid reading mm_tlb_gen when possible", 56-core Skylake):
  the scaling curve of both columns and the patch's gain;
- `milan-36c` against van Riel's tlb_flush2_threads figures in 4afeb0ed1753
  ("x86/mm: Enable broadcast TLB invalidation for multi-threaded processes",
  "an AMD Milan system with 36 cores"): vanilla, lru_add_drain removal,
  INVLPGB only, both -- normalized to vanilla -- and the share of CPU time
  spent on TLB flushes before and after INVLPGB.

The model is meant to reach these figures through its mechanisms (the tlb_gen
partial/full rule, call_single_queue IPI coalescing, concurrent local
flushing, early csd unlock) and documented or fitted costs -- never by
special-casing the workload. `tlbperf calibrate` prints the table.
"""

from __future__ import annotations

import statistics

from pytest_tlbperf import api, workloads
from pytest_tlbperf.policies.mainline_v4_20 import MainlineV420
from pytest_tlbperf.policies.mainline_v6_14 import MainlineV614

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
            table[policy, threads] = _mean(work, profile, policy, "madvise_ns", seeds, engine)
    return table


def _mean(work, profile, policy, metric, seeds, engine) -> float:
    """A metric's mean over seeds 0..seeds-1: every table's cell."""
    return statistics.mean(api.run(work, profile, policy, seed=s, engine=engine).metrics[metric]
                           for s in range(seeds))


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


# --------------------------------------------- aa44284960d5: tlb_flush1 on skylake-2s

TF1_PROFILE = "skylake-2s"
TF1_THREADS = (1, 5, 10, 20, 30, 40, 55)
TF1_PUBLISHED = {  # threads -> (before, patch), loops/s (aa44284960d5's table)
    1: (159960, 160202), 5: (310808, 308378), 10: (479110, 490728), 15: (526771, 562528),
    20: (534495, 587316), 25: (547462, 628296), 30: (579616, 666313), 35: (594134, 701814),
    40: (612288, 732967), 45: (617517, 749727), 50: (637476, 735497), 55: (614363, 778913),
}
TF1_SCALING_TOLERANCE = 0.15     # throughput / 1-thread throughput, relative
TF1_GAIN_TOLERANCE = 0.06        # patch / before - 1, absolute points
TF1_GAIN_THREADS = (20, 40, 55)


class Tf1Before(MainlineV420):
    """The kernel the commit measured against (v5.19-era): v4.20's lazy
    handling with v5.13's concurrent local flush, mm_tlb_gen read on every
    flush_tlb_func(). Without PTI: Nadav Amit, reporting his Haswell rerun
    for Lutomirski (LKML, 7 Jun 2022, <5B1920FB-B949-4F3D-8F08-A76F8974F1B2@
    vmware.com>): "IIRC the previous run [the Skylake table] was with PTI
    disabled"."""
    name = "tlb_flush1_before"
    flush_local = "concurrent"
    pti = False


class Tf1Patch(Tf1Before):
    """... with aa44284960d5 applied."""
    name = "tlb_flush1_patch"
    read_mm_tlb_gen = "when_needed"


def measure_tlb_flush1(seeds=3, window_us=600, engine="auto") -> dict:
    """(column, threads) -> mean ops_per_sec on skylake-2s."""
    table = {}
    for column, policy in (("before", Tf1Before), ("patch", Tf1Patch)):
        for threads in TF1_THREADS:
            work = workloads.tlb_flush1(threads=threads, window_us=window_us)
            table[column, threads] = _mean(work, TF1_PROFILE, policy, "ops_per_sec", seeds,
                                           engine)
    return table


def checks_tlb_flush1(table) -> list:
    """[(what, threads, value, wanted, ok)]."""
    out = []
    for i, column in enumerate(("before", "patch")):
        for threads in TF1_THREADS[1:]:
            value = table[column, threads] / table[column, 1]
            pub = TF1_PUBLISHED[threads][i] / TF1_PUBLISHED[1][i]
            lo, hi = pub * (1 - TF1_SCALING_TOLERANCE), pub * (1 + TF1_SCALING_TOLERANCE)
            out.append((f"{column} scaling", threads, value, f"{lo:.2f}..{hi:.2f}",
                        lo <= value <= hi))
    for threads in TF1_GAIN_THREADS:
        gain = table["patch", threads] / table["before", threads] - 1
        pub = TF1_PUBLISHED[threads][1] / TF1_PUBLISHED[threads][0] - 1
        lo, hi = pub - TF1_GAIN_TOLERANCE, pub + TF1_GAIN_TOLERANCE
        out.append(("patch gain", threads, gain, f"{lo:+.0%}..{hi:+.0%}", lo <= gain <= hi))
    return out


def render_tlb_flush1(table, seeds) -> str:
    lines = [f"will-it-scale tlb_flush1_threads, loops/s, {TF1_PROFILE}, mean of {seeds} seeds: "
             f"model [published, aa44284960d5]; scaling = / 1 thread", "",
             f"{'threads':<9}{'before':<30}{'patch':<30}gain",
             f"{'-------':<9}{'------':<30}{'-----':<30}----"]
    for threads in TF1_THREADS:
        pub_b, pub_p = TF1_PUBLISHED[threads]
        b, p = table["before", threads], table["patch", threads]
        cells = []
        for value, pub, one, pub_one in ((b, pub_b, table["before", 1], TF1_PUBLISHED[1][0]),
                                         (p, pub_p, table["patch", 1], TF1_PUBLISHED[1][1])):
            cells.append(f"{value / 1000:.0f}k x{value / one:.2f} [{pub / 1000:.0f}k "
                         f"x{pub / pub_one:.2f}]")
        gain = f"{p / b - 1:+.0%} [{pub_p / pub_b - 1:+.0%}]"
        lines.append(f"{threads:<9}{cells[0]:<30}{cells[1]:<30}{gain}")
    lines.append("")
    lines.append(_verdict(checks_tlb_flush1(table)))
    return "\n".join(lines)


# ------------------------------------------ 4afeb0ed1753: tlb_flush2 on milan-36c

TF2_PROFILE = "milan-36c"
TF2_THREADS = 36                 # one per core; the commit does not say how many it ran
TF2_COLUMNS = ("vanilla", "lru_add_drain removal", "only INVLPGB", "lru_add_drain + INVLPGB")
TF2_PUBLISHED = {"vanilla": 527_000, "lru_add_drain removal": 731_000,
                 "only INVLPGB": 527_000, "lru_add_drain + INVLPGB": 1_157_000}
TF2_RATIO_TOLERANCE = 0.15
# "TLB invalidation went down from 40% of the total CPU time to only around 4%"
TF2_SHARE_RANGES = {"vanilla": (0.30, 0.50), "only INVLPGB": (0.02, 0.08)}


class Tf2Vanilla(MainlineV614):
    """tip of Dec 2024-Feb 2025, which the series was posted against: the
    lazy mm_cpumask, lru_add_drain() in every zap, no INVLPGB."""
    name = "tlb_flush2_vanilla"
    lru_drain = "on_zap"


class Tf2Removal(Tf2Vanilla):
    name = "tlb_flush2_lru_removal"
    lru_drain = "batch_full"


class Tf2Invlpgb(Tf2Vanilla):
    name = "tlb_flush2_invlpgb"
    broadcast_flush = "invlpgb"


class Tf2Both(Tf2Invlpgb):
    name = "tlb_flush2_both"
    lru_drain = "batch_full"


TF2_POLICIES = dict(zip(TF2_COLUMNS, (Tf2Vanilla, Tf2Removal, Tf2Invlpgb, Tf2Both)))


def measure_tlb_flush2(seeds=3, window_us=12000, engine="auto") -> dict:
    """column -> (mean ops_per_sec, mean flush-CPU share) on milan-36c. The
    share is flush_cpu_ns over the CPU time of the benchmark's threads
    (threads x window), as a profile of the benchmark would show it. The
    window spans several of each thread's 256-loop munmap periods (2.7 to
    6.6 ms here), so the 1 MB munmap is in the figure as in the benchmark's."""
    table = {}
    work = workloads.tlb_flush2(threads=TF2_THREADS, window_us=window_us)
    for column, policy in TF2_POLICIES.items():
        runs = [api.run(work, TF2_PROFILE, policy, seed=s, engine=engine).metrics
                for s in range(seeds)]
        table[column] = (statistics.mean(m["ops_per_sec"] for m in runs),
                         statistics.mean(m["flush_cpu_ns"] / (TF2_THREADS * window_us * 1000)
                                         for m in runs))
    return table


def checks_tlb_flush2(table) -> list:
    out = []
    base = table["vanilla"][0]
    for column in TF2_COLUMNS[1:]:
        value = table[column][0] / base
        pub = TF2_PUBLISHED[column] / TF2_PUBLISHED["vanilla"]
        lo, hi = pub * (1 - TF2_RATIO_TOLERANCE), pub * (1 + TF2_RATIO_TOLERANCE)
        out.append((f"{column} / vanilla", TF2_THREADS, value, f"{lo:.2f}..{hi:.2f}",
                    lo <= value <= hi))
    for column, (lo, hi) in TF2_SHARE_RANGES.items():
        share = table[column][1]
        out.append((f"{column} flush share", TF2_THREADS, share, f"{lo:.0%}..{hi:.0%}",
                    lo <= share <= hi))
    return out


def render_tlb_flush2(table, seeds) -> str:
    lines = [f"will-it-scale tlb_flush2_threads, {TF2_THREADS} threads, {TF2_PROFILE}, mean of "
             f"{seeds} seeds: model [published, 4afeb0ed1753]", "",
             f"{'kernel':<26}{'kloops/s':<10}{'/ vanilla':<18}flush share of CPU time",
             f"{'------':<26}{'--------':<10}{'---------':<18}-----------------------"]
    base = table["vanilla"][0]
    published_share = {"vanilla": "[~40%]", "only INVLPGB": "[~4%]"}
    for column in TF2_COLUMNS:
        ops, share = table[column]
        ratio = f"{ops / base:.2f} [{TF2_PUBLISHED[column] / TF2_PUBLISHED['vanilla']:.2f}]"
        lines.append(f"{column:<26}{ops / 1000:<10.0f}{ratio:<18}{share:.1%} "
                     f"{published_share.get(column, '')}".rstrip())
    lines.append("")
    lines.append("loops/s are the model's own (published: 527k, 731k, 527k, 1157k); the "
                 "ranges are on the ratios")
    lines.append(_verdict(checks_tlb_flush2(table)))
    return "\n".join(lines)


def _verdict(checks) -> str:
    bad = [c for c in checks if not c[4]]
    if not bad:
        return "calibrated: every cell within its range"
    return "NOT calibrated: " + "; ".join(f"{what} x{n} = {v:.3g}, wanted {w}"
                                          for what, n, v, w, _ in bad)
