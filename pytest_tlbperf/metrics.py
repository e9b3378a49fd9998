"""The metric registry (DESIGN §3.5): one place that says what each metric
means, its unit, which direction is better, and which backend gives it
(the modeled machine, the running kernel through the host backend, or
both: DESIGN §9). Model metrics are computed here, in Python, from the
integer counters an engine returns, so both engines report the same
numbers by construction; host metrics come from the runner's windows
(pytest_tlbperf/host/forms.py)."""

from __future__ import annotations


BACKENDS = ("model", "host")


class Metric:
    __slots__ = ("name", "unit", "better", "description", "backends")

    def __init__(self, name: str, unit: str, better: str, description: str,
                 backends=("model",)):
        if better not in ("lower", "higher"):
            raise ValueError(f"metric {name}: better must be 'lower' or 'higher'")
        if not backends or set(backends) - set(BACKENDS):
            raise ValueError(f"metric {name}: backends must be some of {BACKENDS}")
        self.name, self.unit, self.better, self.description = name, unit, better, description
        self.backends = tuple(backends)

    def __repr__(self):
        return f"Metric({self.name!r}, unit={self.unit!r}, better={self.better!r})"


METRICS = {m.name: m for m in (
    Metric("makespan_ns", "ns", "lower", "simulated time until the last task finished"),
    Metric("ops_per_sec", "ops/s", "higher",
           "will-it-scale's figure: iterations all tasks completed inside the measured "
           "window, divided by the window (throughput workloads only); host: the same, "
           "from the runner's per-thread counters", ("model", "host")),
    Metric("flush_latency_ns_p50", "ns", "lower",
           "median time from flush_tlb_mm_range() entry to its return"),
    Metric("flush_latency_ns_p99", "ns", "lower",
           "99th percentile of the same (nearest rank)"),
    Metric("madvise_ns", "ns", "lower",
           "mean time of one madvise(DONTNEED)+touch iteration (seed 002); only for "
           "workloads that mark iterations (model) and madvise_dontneed (host: the window "
           "x threads / iterations)", ("model", "host")),
    Metric("ipis", "IPIs", "lower", "cross-call IPIs sent (flush, shootdown, membarrier); "
           "host: function-call interrupts received (/proc/interrupts CAL), all CPUs, per "
           "window", ("model", "host")),
    Metric("ipis_to_idle", "IPIs", "lower", "IPIs that woke a CPU halted in a C-state"),
    Metric("ipis_to_lazy", "IPIs", "lower", "IPIs handled by a CPU in lazy TLB mode"),
    Metric("cr3_writes", "writes", "lower", "CR3 loads in switch_mm_irqs_off()"),
    Metric("full_flushes", "flushes", "lower", "whole-ASID (or whole-TLB) flushes"),
    Metric("invlpg", "pages", "lower", "single-page INVLPG flushes"),
    Metric("tlb_misses", "misses", "lower", "user accesses that missed the TLB; host: "
           "perf dTLB-load-misses of the runner's threads, where perf_event_open and a "
           "hardware PMU allow", ("model", "host")),
    Metric("atomic_contention_ns", "ns", "lower",
           "time atomics and loads waited for, and pulled, shared kernel cache lines "
           "(mm_count, mm_cpumask, tlb_gen, is_lazy, flush_tlb_info, call_single_queue, "
           "run-queue and pipe locks)"),
    Metric("idle_wakeups", "wakeups", "lower", "exits from a C-state (timer, task or IPI)"),
    Metric("resched_ipis", "IPIs", "lower",
           "reschedule IPIs try_to_wake_up() sent to idle CPUs that were not polling; "
           "host: every reschedule IPI received (/proc/interrupts RES), all CPUs, per "
           "window, kicks to busy CPUs included", ("model", "host")),
    Metric("flush_cpu_ns", "ns", "lower",
           "CPU time all CPUs spent on TLB flushes: each initiator from "
           "flush_tlb_mm_range() entry to its return (IPI waits, INVLPGB issue and TLBSYNC "
           "included), each target's interrupt and flush_tlb_func() for flush requests, "
           "and each RAR target's microcode time"),
    Metric("invlpgb", "instructions", "lower",
           "INVLPGB instructions issued (broadcast_flush='invlpgb')"),
    Metric("switch_mm_barrier_ns", "ns", "lower",
           "time in the explicit smp_mb() after switching to a user mm "
           "(switch_mm_barrier='explicit', seed 003's cost)"),
    # host only: the running kernel's own counters
    Metric("tlb_shootdowns", "flushes", "lower",
           "host: flush_tlb_func() runs on a CPU other than the initiator (/proc/interrupts "
           "TLB), all CPUs, per window; one CAL interrupt can carry several, and a polling "
           "idle CPU runs them without one", ("host",)),
    Metric("context_switches", "switches", "lower",
           "host: the runner's voluntary + involuntary context switches per window "
           "(getrusage)", ("host",)),
    Metric("page_faults", "faults", "lower",
           "host: the runner's page faults per window (perf software page-faults, else "
           "getrusage minflt + majflt)", ("host",)),
)}


def percentile(sorted_values, pct: int) -> int:
    """Nearest-rank percentile of integers (no interpolation, no floats)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-pct * len(sorted_values) // 100))
    return sorted_values[rank - 1]


def compute(raw: dict, profile) -> dict:
    """Metric values from an engine's raw counters."""
    ns = profile.ns_from_cycles
    counters = raw["counters"]
    lat = sorted(raw["flush_latency"])
    makespan = ns(raw["end"])
    out = {
        "makespan_ns": makespan,
        "flush_latency_ns_p50": ns(percentile(lat, 50)),
        "flush_latency_ns_p99": ns(percentile(lat, 99)),
    }
    if raw["window"]:
        # never ops / makespan: one straggler would decide that
        out["ops_per_sec"] = raw["window_marks"] * profile.clock_mhz * 1_000_000 / raw["window"]
    spans = [(last - first, count - 1) for first, last, count in raw["marks"] if count > 1]
    if spans and not raw["window"]:
        total = sum(span for span, _ in spans)
        iterations = sum(n for _, n in spans)
        out["madvise_ns"] = ns(total // iterations)
    for name in ("ipis", "ipis_to_idle", "ipis_to_lazy", "cr3_writes", "full_flushes",
                 "invlpg", "tlb_misses", "idle_wakeups", "resched_ipis", "invlpgb"):
        out[name] = counters[name]
    out["atomic_contention_ns"] = ns(counters["atomic_contention"])
    out["flush_cpu_ns"] = ns(counters["flush_cycles"])
    out["switch_mm_barrier_ns"] = ns(counters["switch_mm_barriers"] * profile.costs["smp_mb"])
    return {name: out[name] for name in METRICS if name in out}
