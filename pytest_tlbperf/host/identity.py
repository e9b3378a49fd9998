"""The running kernel's identity, recorded in every host run (DESIGN §9),
and the comparison of two identities that a cross-kernel report prints.

A reviewer compares kernel A with kernel B; the comparison means something
only if nothing else changed. So the identity holds the kernel (release,
build, command line) and everything that moves TLB-flush figures without
being the kernel: the CPU and its flags, PTI, online CPUs and SMT, the
hypervisor, the cpuidle driver and governor. `differences()` names every
field that differs except the kernel's release and build.
"""

from __future__ import annotations

import os

from ..errors import HostError
from . import procfs, sysfs

# (field, label) in the order a report prints them
FIELDS = (
    ("release", "kernel"),
    ("version", "build"),
    ("parameters", "command line"),
    ("pti", "PTI (meltdown)"),
    ("cpu_model", "CPU"),
    ("cpu_signature", "family/model/stepping"),
    ("microcode", "microcode"),
    ("tlb_flags", "TLB flags (cpuinfo)"),
    ("online_cpus", "online CPUs"),
    ("smt", "SMT"),
    ("hypervisor", "hypervisor"),
    ("cpuidle", "cpuidle driver/governor"),
    ("perf_event_paranoid", "perf_event_paranoid"),
)
# what may differ between the two runs of a kernel comparison
KERNEL_FIELDS = ("release", "version")
# why a difference matters, for the warning
WHY = {
    "parameters": "boot both kernels with the same parameters, or the comparison measures "
                  "them too",
    "pti": "PTI changes every CR3 write and user-address flush",
    "cpu_model": "a different CPU",
    "cpu_signature": "a different CPU",
    "microcode": "microcode updates change mitigations and flush costs",
    "tlb_flags": "the kernel flushes differently with these features (a newer kernel may "
                 "also just show more of them)",
    "online_cpus": "flushes reach a different set of CPUs",
    "smt": "SMT siblings share a TLB and change where threads run",
    "hypervisor": "a VM delivers IPIs through the host",
    "cpuidle": "the idle driver and governor decide how deep idle CPUs sleep, and so what "
               "an IPI to them costs",
    "perf_event_paranoid": "different counters were available",
}


def collect(root="/", cpuid=None) -> dict:
    """The identity of the kernel running under `root` ("/" for this
    machine). `cpuid` is the runner's CPUID report where it ran (the
    hypervisor's signature and KVM's PV TLB flush, which /proc does not
    show); None leaves those out."""
    read = lambda rel: sysfs.read(root, rel)   # noqa: E731 - a local shorthand
    release = read("proc/sys/kernel/osrelease")
    version = read("proc/sys/kernel/version")
    if (release is None or version is None) and str(root) == "/":
        uname = os.uname()
        release, version = release or uname.release, version or uname.version
    cmdline = read("proc/cmdline") or ""
    cpuinfo_text = read("proc/cpuinfo")
    try:
        cpuinfo = procfs.parse_cpuinfo(cpuinfo_text) if cpuinfo_text else None
    except ValueError:
        cpuinfo = None
    meltdown = read(f"{sysfs.CPU_DIR}/vulnerabilities/meltdown")
    idle = sysfs.cpuidle(root)
    try:
        online = sysfs.online_cpus(root)
    except HostError:                         # no sysfs: reported as unknown
        online = []
    flags = set(cpuinfo["flags"]) if cpuinfo else set()
    hypervisor = "hypervisor" in flags
    hv_vendor = None
    if cpuid and cpuid.get("hypervisor_signature"):
        hv_vendor = cpuid["hypervisor_signature"].rstrip("\0") or None
    if hv_vendor is None and hypervisor:
        hv_vendor = read("sys/hypervisor/type") or read("sys/class/dmi/id/sys_vendor")
    return {
        "release": release or "unknown",
        "version": version or "unknown",
        "cmdline": cmdline,
        "tlb_parameters": procfs.cmdline_flags(cmdline),
        "meltdown": meltdown,
        "cpu_vendor": cpuinfo["vendor"] if cpuinfo else None,
        "cpu_model": cpuinfo["model_name"] if cpuinfo else None,
        "cpu_family": cpuinfo["family"] if cpuinfo else None,
        "cpu_model_number": cpuinfo["model"] if cpuinfo else None,
        "cpu_stepping": cpuinfo["stepping"] if cpuinfo else None,
        "microcode": cpuinfo["microcode"] if cpuinfo else None,
        "cpu_flags": {f: f in flags for f in procfs.TLB_FLAGS},
        "cpu_mhz": cpuinfo["mhz"] if cpuinfo else None,
        "tlb_size": cpuinfo["tlb_size"] if cpuinfo else None,
        "online_cpus": sysfs.format_cpulist(online),
        "n_online": len(online),
        "smt_active": sysfs.smt_active(root),
        "hypervisor": hypervisor,
        "hypervisor_vendor": hv_vendor,
        "cpuid": cpuid,
        "cpuidle_driver": idle["driver"],
        "cpuidle_governor": idle["governor"],
        "cpuidle_states": [s.name for s in idle["states"]],
        "perf_event_paranoid": procfs.perf_paranoid(root),
    }


def pti(identity) -> str:
    """'on' / 'off (not affected)' / 'off (vulnerable)' / 'unknown', from
    the meltdown vulnerability file."""
    text = identity.get("meltdown")
    if not text:
        return "unknown"
    if "PTI" in text:
        return "on"
    if text.startswith("Not affected"):
        return "off (not affected)"
    if text.startswith("Vulnerable"):
        return "off (vulnerable)"
    return text


def value(identity, field) -> str:
    """One field as a report prints it."""
    if field == "parameters":
        return " ".join(procfs.behaviour_parameters(identity.get("cmdline", ""))) or "-"
    if field == "pti":
        return pti(identity)
    if field == "cpu_signature":
        parts = [identity.get(k) for k in ("cpu_family", "cpu_model_number", "cpu_stepping")]
        return "/".join(str(p) for p in parts) if any(parts) else "unknown"
    if field == "tlb_flags":
        flags = identity.get("cpu_flags") or {}
        # in procfs.TLB_FLAGS order: a saved run's dict comes back sorted
        text = " ".join(f if flags[f] else f"-{f}" for f in procfs.TLB_FLAGS
                        if f in flags and f != "hypervisor")
        cpuid = identity.get("cpuid") or {}
        if cpuid.get("invlpgb") and not flags.get("invlpgb"):
            text += " (CPUID has invlpgb)"
        return text
    if field == "smt":
        active = identity.get("smt_active")
        return "unknown" if active is None else ("active" if active else "off")
    if field == "hypervisor":
        if not identity.get("hypervisor"):
            return "none (bare metal)"
        text = identity.get("hypervisor_vendor") or "yes"
        cpuid = identity.get("cpuid") or {}
        if "kvm_pv_tlb_flush" in cpuid:
            text += f", PV TLB flush {'offered' if cpuid['kvm_pv_tlb_flush'] else 'not offered'}"
        return text
    if field == "cpuidle":
        return f"{identity.get('cpuidle_driver')}/{identity.get('cpuidle_governor')}"
    if field == "online_cpus":
        return f"{identity.get('online_cpus')} ({identity.get('n_online')})"
    v = identity.get(field)
    return "unknown" if v in (None, "") else str(v)


def differences(a, b) -> list:
    """Warnings, one per field other than the kernel's release and build
    that differs between identities `a` and `b`."""
    out = []
    for field, label in FIELDS:
        if field in KERNEL_FIELDS:
            continue
        va, vb = value(a, field), value(b, field)
        if va != vb:
            if field == "parameters":
                pa = set(procfs.behaviour_parameters(a.get("cmdline", "")))
                pb = set(procfs.behaviour_parameters(b.get("cmdline", "")))
                va = " ".join(sorted(pa - pb)) or "-"
                vb = " ".join(sorted(pb - pa)) or "-"
            out.append(f"{label} differs: {va} vs {vb}: {WHY.get(field, '')}".rstrip(": "))
    return out


def side_by_side(a, b, label_a, label_b, width=80) -> list:
    """The two identities as a table, a '!' in front of each field that
    differs (other than the kernel itself); long values are wrapped, and
    a value both share is written once across both columns."""
    import textwrap
    key_w = max(len(label) for _, label in FIELDS) + 2
    col = (width - key_w - 3) // 2
    lines = [f"  {'':{key_w - 2}} {label_a[:col]:{col}} {label_b[:col]}"]
    for field, label in FIELDS:
        va, vb = value(a, field), value(b, field)
        if va == vb and len(va) > col:
            wrapped = textwrap.wrap(f"(both) {va}", width - key_w - 1)
            lines.append(f"  {label:{key_w - 2}} {wrapped[0]}")
            lines += [f"{'':{key_w}} {w}" for w in wrapped[1:]]
            continue
        mark = "!" if va != vb and field not in KERNEL_FIELDS else " "
        wa, wb = textwrap.wrap(va, col) or ["-"], textwrap.wrap(vb, col) or ["-"]
        for i in range(max(len(wa), len(wb))):
            head = f"{mark} {label}" if i == 0 else ""
            left = wa[i] if i < len(wa) else ""
            right = wb[i] if i < len(wb) else ""
            lines.append(f"{head:{key_w}} {left:{col}} {right}".rstrip())
    return lines


def lines(identity, width=80) -> list:
    """One identity, one field per line."""
    import textwrap
    key_w = max(len(label) for _, label in FIELDS) + 1
    out = []
    for field, label in FIELDS:
        wrapped = textwrap.wrap(value(identity, field), width - key_w - 1) or ["-"]
        out.append(f"{label:{key_w}} {wrapped[0]}")
        out += [f"{'':{key_w}} {w}" for w in wrapped[1:]]
    return out


def summary(identity) -> str:
    """One line: 'Linux 6.1.0 on AMD EPYC, 2 CPUs, KVM guest, PTI off'."""
    hv = f", {identity.get('hypervisor_vendor') or 'VM'} guest" if identity.get("hypervisor") \
        else ""
    return (f"Linux {identity.get('release')} on {identity.get('cpu_model') or 'unknown CPU'}, "
            f"{identity.get('n_online')} CPUs{hv}, PTI {pti(identity)}")
