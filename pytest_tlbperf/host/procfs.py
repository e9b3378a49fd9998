"""Parsers for what /proc says: /proc/interrupts (per-CPU TLB shootdowns,
function-call and reschedule interrupts), /proc/cpuinfo (CPU model and the
flags that matter to TLB flushing), the kernel command line, and why a
perf counter could not be opened.

Pure functions of text (and of a sysfs `root` for the perf reasons), so
the tests feed them sample files from tests/fixtures/host/.
"""

from __future__ import annotations

import errno as _errno
import os

from . import sysfs

# /proc/interrupts rows a host run reads (arch/x86/kernel/irq.c
# arch_show_interrupts()): CAL counts both call-function vectors
# (irq_call_count), TLB counts flush_tlb_func() runs on a CPU other than
# the initiator (irq_tlb_count, arch/x86/mm/tlb.c), RES reschedule IPIs.
ROWS = ("CAL", "TLB", "RES")

# CPU flags that decide how the kernel flushes (arch/x86/include/asm/cpufeatures.h)
TLB_FLAGS = ("pcid", "invpcid", "invlpgb", "pge", "hypervisor", "pti")

# Kernel parameters that change TLB flushing, PTI, idle or scheduling
# (Documentation/admin-guide/kernel-parameters.txt): shown in the identity
# and compared across kernels.
TLB_PARAMETERS = ("nopti", "pti", "nopcid", "noinvpcid", "mitigations", "spectre_v2",
                  "nosmt", "idle", "cpuidle.off", "intel_idle.max_cstate",
                  "processor.max_cstate", "isolcpus", "nohz_full", "nohz", "maxcpus",
                  "nr_cpus", "transparent_hugepage", "no_kvmapf", "nopv",
                  "cpuidle_haltpoll.force", "haltpoll.guest_halt_poll_ns", "nox2apic",
                  "tsc", "clocksource")

# Parameters that name the boot image or the console, not the kernel's
# behaviour: differences in them are not worth a warning.
BOOT_ONLY = ("BOOT_IMAGE", "initrd", "root", "rootflags", "rootfstype", "ro", "rw", "quiet",
             "splash", "console", "earlyprintk", "loglevel", "resume", "rd.", "systemd.",
             "vt.", "net.ifnames", "biosdevname", "crashkernel", "rdinit", "init")


def parse_interrupts(text: str) -> dict:
    """{"cpus": [cpu numbers of the columns], "rows": {label: {cpu: count}}}
    from /proc/interrupts (or the runner's excerpt of it: the header and
    some rows). The header names the columns: offline CPUs have none, so
    "CPU0 CPU2" means columns for CPUs 0 and 2."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].split() or not lines[0].split()[0].startswith("CPU"):
        raise ValueError("not /proc/interrupts: the first line does not name CPU columns")
    cpus = []
    for word in lines[0].split():
        if not word.startswith("CPU") or not word[3:].isdigit():
            raise ValueError(f"not /proc/interrupts: header word {word!r}")
        cpus.append(int(word[3:]))
    rows = {}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        counts = {}
        for cpu, field in zip(cpus, fields):
            if not field.isdigit():
                break
            counts[cpu] = int(field)
        rows[label.strip()] = counts
    return {"cpus": cpus, "rows": rows}


def interrupt_deltas(before: dict, after: dict, rows=ROWS) -> dict:
    """{label: {cpu: after - before}} for each of `rows` present in both."""
    out = {}
    for label in rows:
        a, b = after["rows"].get(label), before["rows"].get(label)
        if a is None or b is None:
            continue
        out[label] = {cpu: a[cpu] - b.get(cpu, 0) for cpu in a}
    return out


def parse_stat(text: str) -> dict:
    """{cpu: (user, nice, system, idle, iowait, irq, softirq, steal)} in
    ticks from the cpuN lines of /proc/stat (the aggregate line is left
    out). Older kernels without a steal column read as steal 0."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if not words or not words[0].startswith("cpu") or words[0] == "cpu":
            continue
        if not words[0][3:].isdigit():
            raise ValueError(f"not /proc/stat: {words[0]!r}")
        fields = [int(w) for w in words[1:9]]
        out[int(words[0][3:])] = tuple(fields + [0] * (8 - len(fields)))
    return out


def steal_percent(before: dict, after: dict, cpus) -> float | None:
    """The share of the ticks of `cpus` the hypervisor took (steal), in
    percent; None where no tick passed."""
    total = steal = 0
    for cpu in cpus:
        if cpu not in before or cpu not in after:
            continue
        d = [b - a for a, b in zip(before[cpu], after[cpu])]
        total += sum(d)
        steal += d[7]
    return 100.0 * steal / total if total else None


def parse_cpuinfo(text: str) -> dict:
    """The first processor's model and flags, and how many processors are
    listed. Keys: vendor, model_name, family, model, stepping, microcode,
    flags (a sorted list), bugs, tlb_size (AMD's "TLB size" line, 4K pages;
    None elsewhere), mhz, processors."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    if not blocks:
        raise ValueError("empty /proc/cpuinfo")
    first = {}
    for line in blocks[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            first[key.strip()] = value.strip()
    if "flags" not in first and "vendor_id" not in first:
        raise ValueError("not an x86 /proc/cpuinfo: no vendor_id or flags line")
    tlb_size = None
    tlb = first.get("TLB size", "")
    if tlb.split() and tlb.split()[0].isdigit():
        tlb_size = int(tlb.split()[0])
    try:
        mhz = float(first.get("cpu MHz", ""))
    except ValueError:
        mhz = None
    return {"vendor": first.get("vendor_id", ""), "model_name": first.get("model name", ""),
            "family": first.get("cpu family", ""), "model": first.get("model", ""),
            "stepping": first.get("stepping", ""), "microcode": first.get("microcode", ""),
            "flags": sorted(first.get("flags", "").split()),
            "bugs": sorted(first.get("bugs", "").split()), "tlb_size": tlb_size, "mhz": mhz,
            "processors": sum(1 for b in blocks if b.lstrip().startswith("processor"))}


def cmdline_parameters(cmdline: str) -> list:
    """The kernel's own parameters: everything before a lone "--" (what
    follows goes to init)."""
    words = cmdline.split()
    if "--" in words:
        words = words[: words.index("--")]
    return words


def cmdline_flags(cmdline: str) -> dict:
    """{parameter: value or True} for the TLB_PARAMETERS on the command line."""
    out = {}
    for word in cmdline_parameters(cmdline):
        name, sep, value = word.partition("=")
        if name in TLB_PARAMETERS:
            out[name] = value if sep else True
    return out


def behaviour_parameters(cmdline: str) -> list:
    """The command line without the boot-only parameters (BOOT_ONLY)."""
    out = []
    for word in cmdline_parameters(cmdline):
        name = word.partition("=")[0]
        if not any(name == p or (p.endswith(".") and name.startswith(p)) for p in BOOT_ONLY):
            out.append(word)
    return out


def perf_reason(err: int, counter: str, paranoid, root="/", is_root=None) -> str:
    """Why perf_event_open() refused `counter`, for the report. `err` is
    the runner's errno (-1: the run was asked not to use perf)."""
    if is_root is None:
        is_root = os.geteuid() == 0
    if err == -1:
        return "not measured (perf disabled for this run)"
    if err in (_errno.EACCES, _errno.EPERM):
        level = f"perf_event_paranoid={paranoid}" if paranoid is not None else \
            "perf_event_paranoid unreadable"
        why = (" forbids any unprivileged use (a Debian/Ubuntu-style 3)"
               if isinstance(paranoid, int) and paranoid >= 3 else "")
        who = "even as root (a security module or seccomp?)" if is_root else \
            "needs CAP_PERFMON, or perf_event_paranoid <= 2 for a process's own user-space " \
            "counts"
        return f"perf_event_open refused: {level}{why}; {who}"
    if err == _errno.ENOSYS:
        return "perf_event_open is not implemented (CONFIG_PERF_EVENTS=n) or is blocked by " \
               "seccomp (a container?)"
    if err in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.EINVAL, _errno.ENODEV):
        if counter == "tlb_misses" and not sysfs.has_cpu_pmu(root):
            return "no hardware PMU: /sys/bus/event_source/devices has no 'cpu' (a VM " \
                   "without a virtual PMU)"
        return f"this PMU has no such event ({_errno.errorcode.get(err, err)})"
    return f"perf_event_open failed: {os.strerror(err) if err > 0 else err}"


def perf_paranoid(root="/"):
    text = sysfs.read(root, "proc/sys/kernel/perf_event_paranoid")
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
