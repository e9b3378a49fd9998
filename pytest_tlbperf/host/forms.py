"""The host forms of the model's workloads: which model workloads run on
the real kernel, with which of their parameters, on which CPUs, and how a
window of the runner's counts becomes the metrics of one sample.

Keyed by the model workloads' names (tp.workloads.BUILDERS) and their
size parameter (`threads`, or `pairs` for context_switch1); the model's
other parameters (iterations, warmup_us, window_us, regions) describe
simulated work and are not used here: host windows are wall-clock, set by
the host options.
"""

from __future__ import annotations

from ..errors import HostError
from ..metrics import METRICS
from . import procfs


class NoHostForm(HostError):
    """The workload exists only on the model."""


class TooFewCpus(HostError):
    """The workload asks for more CPUs (or cores) than the run may use."""


class Form:
    __slots__ = ("name", "size", "what")

    def __init__(self, name, size, what):
        self.name, self.size, self.what = name, size, what

    def count(self, params) -> int:
        n = params.get(self.size, 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise HostError(f"{self.name}: {self.size} must be a positive integer, got {n!r}")
        return n


FORMS = {f.name: f for f in (
    Form("tlb_flush1", "threads", "will-it-scale tlb_flush1: write, MADV_DONTNEED and read "
         "back each page of a private file mapping"),
    Form("tlb_flush2", "threads", "will-it-scale tlb_flush2: the same on 1 MiB of private "
         "anonymous memory"),
    Form("tlb_flush3", "threads", "will-it-scale tlb_flush3: the same on a shared file "
         "mapping"),
    Form("context_switch1", "pairs", "will-it-scale context_switch1: pipe ping-pong, the "
         "partner on the same core"),
    Form("madvise_dontneed", "threads", "seed 002: madvise(MADV_DONTNEED) of one page and a "
         "write that faults it back, per thread"),
    Form("munmap_storm", "threads", "map 4 MiB, touch 8 pages of its aligned 2 MiB, unmap "
         "(the page table is freed), per thread"),
)}


def form(name) -> Form:
    if name not in FORMS:
        raise NoHostForm(f"{name} has no host form (host forms: {', '.join(FORMS)})")
    return FORMS[name]


def by_core(usable, topo) -> list:
    """The usable CPUs one thread per core first, then the second threads
    of each core, ...: will-it-scale's placement by core (main.c, hwloc
    HWLOC_OBJ_CORE)."""
    cores = {}
    for cpu in sorted(usable):
        cores.setdefault(topo[cpu].core_key, []).append(cpu)
    order, depth = [], 0
    while len(order) < len(usable):
        for cpus in cores.values():
            if depth < len(cpus):
                order.append(cpus[depth])
        depth += 1
    return order


def place(f: Form, count: int, usable, topo, ordered=False) -> tuple:
    """(cpus, partners): the CPU of each counting task and, for
    context_switch1, of each partner. `ordered`: the user listed the CPUs,
    so their order is kept."""
    usable = list(usable)
    if f.size == "pairs":
        cores = {}
        for cpu in usable if ordered else sorted(usable):
            cores.setdefault(topo[cpu].core_key, []).append(cpu)
        if count > len(cores):
            raise TooFewCpus(f"{f.name}: {count} pair{'s' * (count != 1)} need {count} "
                             f"core{'s' * (count != 1)} (a pair shares one, the partner on "
                             f"its SMT sibling); the run may use {len(cores)} "
                             f"({_list(usable)})")
        chosen = list(cores.values())[:count]
        return [c[0] for c in chosen], [c[1] if len(c) > 1 else c[0] for c in chosen]
    order = usable if ordered else by_core(usable, topo)
    if count > len(order):
        raise TooFewCpus(f"{f.name}: {count} threads need {count} CPUs, one each; the run may "
                         f"use {len(order)} ({_list(usable)})")
    return order[:count], []


def _list(cpus) -> str:
    from .sysfs import format_cpulist
    return "CPUs " + format_cpulist(cpus) if cpus else "no CPU"


def samples(raw, name) -> list:
    """One sample per window of the runner's output: the metrics the
    registry lists for the host backend, plus the window's raw counts."""
    bounds = raw["boundaries"]
    perf_ok = {k: v["ok"] for k, v in raw["perf"].items()}
    out = []
    for k in range(1, len(bounds)):
        a, b = bounds[k - 1], bounds[k]
        ns = b["t_ns"] - a["t_ns"]
        its = [y - x for x, y in zip(a["iterations"], b["iterations"])]
        total = sum(its)
        m = {"ops_per_sec": total * 1e9 / ns if ns > 0 else 0.0}
        if name == "madvise_dontneed" and total:
            # mean time of one iteration per thread, as the model's madvise_ns
            m["madvise_ns"] = round(ns * len(its) / total)
        per_cpu = {}
        if a["interrupts"] and b["interrupts"]:
            deltas = procfs.interrupt_deltas(procfs.parse_interrupts(a["interrupts"]),
                                             procfs.parse_interrupts(b["interrupts"]))
            per_cpu = {label: [counts[c] for c in sorted(counts)] for label, counts in
                       deltas.items()}
            per_cpu["cpus"] = sorted(next(iter(deltas.values()), {}))
            if "CAL" in deltas:
                m["ipis"] = sum(deltas["CAL"].values())
            if "TLB" in deltas:
                m["tlb_shootdowns"] = sum(deltas["TLB"].values())
            if "RES" in deltas:
                m["resched_ipis"] = sum(deltas["RES"].values())
        m["context_switches"] = (b["nvcsw"] - a["nvcsw"]) + (b["nivcsw"] - a["nivcsw"])
        if perf_ok.get("page_faults"):
            m["page_faults"] = b["perf"]["page_faults"] - a["perf"]["page_faults"]
        else:
            m["page_faults"] = (b["minflt"] - a["minflt"]) + (b["majflt"] - a["majflt"])
        if perf_ok.get("dtlb_misses"):
            m["tlb_misses"] = b["perf"]["dtlb_misses"] - a["perf"]["dtlb_misses"]
        metrics = {key: value for key, value in m.items() if key in METRICS}
        used = sorted(set(raw["cpus"]) | set(raw["partners"]))
        # the CPU time the runner's threads got, of what its CPUs had: other
        # load on them, or a hypervisor that took them (steal), shows here
        share = (b["cpu_ns"] - a["cpu_ns"]) / (ns * len(used)) if ns > 0 else None
        steal = None
        if a.get("stat") and b.get("stat"):
            steal = procfs.steal_percent(procfs.parse_stat(a["stat"]),
                                         procfs.parse_stat(b["stat"]), used)
        out.append({"seed": k - 1, "metrics": metrics, "violations": [],
                    "window": {"ns": ns, "iterations": its, "per_cpu": per_cpu,
                               "cpu_share": round(share, 3) if share is not None else None,
                               "steal_pct": round(steal, 1) if steal is not None else None}})
    return out


def counters(raw, root="/", paranoid=None) -> dict:
    """{metric: where its value comes from, or 'unavailable: why'} for the
    metrics a host run can give."""
    has_irq = bool(raw["boundaries"]) and raw["boundaries"][0]["interrupts"]
    rows = set(procfs.parse_interrupts(raw["boundaries"][0]["interrupts"])["rows"]) \
        if has_irq else set()
    no_irq = "unavailable: /proc/interrupts cannot be read"

    def irq(label, text):
        if not has_irq:
            return no_irq
        return text if label in rows else f"unavailable: /proc/interrupts has no {label} row " \
                                          f"(not x86?)"
    perf = raw["perf"]
    out = {
        "ops_per_sec": "runner: iterations completed in the window / the window "
                       "(will-it-scale)",
        "ipis": irq("CAL", "/proc/interrupts CAL (function-call IPIs), all online CPUs"),
        "tlb_shootdowns": irq("TLB", "/proc/interrupts TLB (remote flush_tlb_func runs), all "
                                     "online CPUs"),
        "resched_ipis": irq("RES", "/proc/interrupts RES, all online CPUs"),
        "context_switches": "getrusage(RUSAGE_SELF): the runner's threads, voluntary + "
                            "involuntary",
    }
    if raw["workload"] == "madvise_dontneed":
        out["madvise_ns"] = "runner: the window x threads / iterations"
    if perf["page_faults"]["ok"]:
        out["page_faults"] = "perf_event_open software page-faults" + (
            ", user space only" if perf["page_faults"]["user_only"] else "")
    else:
        out["page_faults"] = "getrusage minflt+majflt (" + procfs.perf_reason(
            perf["page_faults"]["errno"], "page_faults", paranoid, root) + ")"
    if perf["dtlb_misses"]["ok"]:
        out["tlb_misses"] = "perf_event_open dTLB-load-misses" + (
            ", user space only" if perf["dtlb_misses"]["user_only"] else "")
    else:
        out["tlb_misses"] = "unavailable: " + procfs.perf_reason(
            perf["dtlb_misses"]["errno"], "tlb_misses", paranoid, root)
    return {k: v for k, v in out.items() if k in METRICS}
