"""The native engine's Python side: flatten a profile, a policy's knobs and a
compiled program into tuples of ints, run `_native.run()` (the engine's
modules transcribed into C, see engine/_native/) and return exactly the raw
dict `Machine.run()` returns.

The C extension is optional: `pip install` builds it where a compiler exists.
`available()` says whether it was built; `run()` raises `EngineUnavailable`
when it was not. Policies with Python hooks (`should_flush_cpu`) run on the
python engine only; `api._pick_engine()` decides.
"""

from __future__ import annotations

from array import array

from ..errors import EngineUnavailable
from . import abi
from .machine import WATCHDOG_NS
from .smp import APIC_MODES

try:
    from . import _native
except ImportError:     # built without a compiler: engine="auto" falls back to python
    _native = None
if not hasattr(_native, "run"):
    # Not built, in a source tree or an editable install: the import found the
    # C sources' folder (engine/_native/) and made it a namespace package.
    _native = None

# The order _native/module.c's parse_profile() reads a profile in (its P_* enum).
PROFILE_FIELDS = (
    "cpus", "smt", "sockets", "cores_per_llc", "clock_mhz", "pcid", "meltdown", "has_invpcid",
    "apic", "tlb_sets", "tlb_ways", "psc_entries", "walk_interval", "walk_severity",
    "watchdog", "table_batch_fail_percent", "ipi_jitter", "ipi_smt", "ipi_socket",
    "ipi_remote", "xfer_smt", "xfer_llc", "xfer_socket", "xfer_remote",
    # Profile.costs, in cycles
    "syscall", "access", "walk", "walk_psc", "page_fault", "file_fault", "zap_pte",
    "pte_update", "invlpg", "full_flush", "cr3_write", "context_switch", "irq_entry",
    "flush_func", "csd_ack", "ipi_send", "atomic", "smp_mb", "wakeup", "pipe", "invpcid",
    "csd_setup", "lru_lock", "invlpgb", "tlbsync", "rar",
    # Profile.invalidate_cycles, invlpgb_max_pages
    "invalidate_cycles", "invlpgb_max_pages",
)
# ... a CState (its S_* enum)
CSTATE_FIELDS = ("target_residency", "tlb_flushed", "polling", "wake_min", "wake_max",
                 "exit_latency")
# ... and a Knobs.codes() (its K_* enum)
KNOB_FIELDS = ("lazy_tlb", "lazy_cpumask", "flush_lazy_cpus", "flush_local", "flush_wait",
               "lazy_mm_ref", "pv_flush", "idle_leave_mm", "flush_ceiling",
               "switch_mm_barrier", "read_mm_tlb_gen", "init_mm_asid", "pti", "lazy_mm_scan",
               "lazy_mm_release", "cpumask_update", "broadcast_flush", "tlbsync", "lru_drain",
               "table_free")


def available() -> bool:
    """Was the C extension built?"""
    return _native is not None


def flatten_profile(profile) -> tuple:
    """(profile, cstates, virt) as _native.run() takes them."""
    values = {
        "cpus": profile.cpus, "smt": profile.smt, "sockets": profile.sockets,
        "cores_per_llc": profile.cores_per_llc, "clock_mhz": profile.clock_mhz,
        "pcid": int(profile.pcid), "meltdown": int(profile.meltdown),
        "has_invpcid": int(profile.invpcid), "apic": APIC_MODES.index(profile.apic),
        "tlb_sets": profile.tlb_entries // profile.tlb_ways, "tlb_ways": profile.tlb_ways,
        "psc_entries": profile.psc_entries, "walk_interval": profile.walk_interval,
        "walk_severity": abi.SEV_HANG if profile.freed_table_walk == "hang" else abi.SEV_SILENT,
        "watchdog": profile.cycles_from_ns(WATCHDOG_NS),
        "table_batch_fail_percent": profile.table_batch_fail_percent,
        "ipi_jitter": profile.ipi_jitter, "invalidate_cycles": profile.invalidate_cycles,
        "invlpgb_max_pages": profile.invlpgb_max_pages,
    }
    for distance, name in enumerate(("smt", "socket", "remote")):
        values[f"ipi_{name}"] = profile.cycles_from_ns(profile.ipi_ns[distance])
    for distance, name in enumerate(("smt", "llc", "socket", "remote")):
        values[f"xfer_{name}"] = profile.line_transfer[distance]
    values.update(profile.costs)
    cstates = tuple((s.target_residency, int(s.tlb_flushed), int(s.polling), s.wake_min,
                     s.wake_max, s.exit_latency) for s in profile.cstates)
    virt = profile.virt
    if virt is not None:
        virt = (virt["preempt_percent"], virt["preempt"], int(virt["pv_tlb_flush"]))
    return tuple(values[name] for name in PROFILE_FIELDS), cstates, virt


def flatten_knobs(knobs) -> tuple:
    codes = knobs.codes()
    # any ceiling above every possible range size means "never a full flush"
    codes["flush_ceiling"] = min(codes["flush_ceiling"], _native.ABI["MAX_CEILING"])
    return tuple(codes[name] for name in KNOB_FIELDS)


def flatten_program(program) -> tuple:
    """(mm_pages, tasks, channels, warmup, window): tasks as (mm template, cpu,
    start, ops, affinity) tuples."""
    return (tuple(program.mm_pages),
            tuple((t.mm, t.cpu, t.start, tuple(t.ops), tuple(t.affinity))
                  for t in program.tasks),
            program.channels, program.warmup, program.window)


_PACKED_MAX = 16       # packed programs kept (oldest dropped first)
_packed: dict = {}     # id(program) -> (program, packed): held, so the id stays its own


def _packed_program(program) -> tuple:
    """flatten_program() with each task's ops packed as int64 words, which
    _native.run() copies instead of converting int by int. Programs are
    immutable (workloads.Program) and one is run for many policies and
    seeds, so the packing is done once per program object. Ops beyond
    int64 stay a tuple: _native.run() then names the bad word."""
    hit = _packed.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1]
    packed = []
    for t in program.tasks:
        ops = t.ops
        if isinstance(ops, array) and ops.typecode == "q":
            ops = ops.tobytes()                  # a compiled workload's (workloads.TaskSpec)
        else:
            try:
                ops = array("q", ops).tobytes()
            except (OverflowError, TypeError):
                ops = tuple(ops)
        packed.append((t.mm, t.cpu, t.start, ops, tuple(t.affinity)))
    mm_pages = tuple(program.mm_pages)
    rest = (program.channels, program.warmup, program.window)
    flat = (mm_pages, tuple(packed), *rest)
    _packed[id(program)] = (program, flat)
    if len(_packed) > _PACKED_MAX:
        del _packed[next(iter(_packed))]
    return flat


def run(profile, knobs, program, seed: int) -> dict:
    """`Machine(profile, knobs, program, seed).run()` on the native engine."""
    if _native is None:
        raise EngineUnavailable("the native engine is not built in this installation "
                                "(no C compiler when it was installed?); reinstall with a "
                                "compiler, or use engine='python'")
    prof, cstates, virt = flatten_profile(profile)
    return _native.run(prof, cstates, virt, flatten_knobs(knobs), *_packed_program(program),
                       seed)
