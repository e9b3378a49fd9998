"""`tlbperf profile --from-host`: this machine as a profile the model can
run (the schema of pytest_tlbperf/profiles/__init__.py).

Every value carries a comment saying where it came from:

- **measured**: by `tlbperf-runner costs` on this machine (median of 7
  batches): a syscall, a page fault, the 1-thread madvise(DONTNEED)+touch
  loop, a membarrier() IPI round trip, a pipe round trip on one CPU;
- **sysfs** / **cpuinfo**: topology, online CPUs, C-states, clock, flags;
- **default assumption**: what no user-space measurement can give (TLB
  associativity, walk costs, cache-line transfers, ...), copied from the
  built-in profile of the same vendor, named in the comment.

The profile is built on the template's tables, so a field the schema gains
later is still written (from the template, and said so).
"""

from __future__ import annotations

import json
import re
import time

from .. import profiles
from . import identity as _identity
from . import procfs, runner, sysfs

TEMPLATES = {"amd": "zen1-epyc", "intel": "skylake-2s"}
VM_TEMPLATE = "kvm-guest-16"
# intel_idle and acpi_idle set CPUIDLE_FLAG_TLB_FLUSHED on C3 and deeper
# (drivers/idle/intel_idle.c tables; drivers/acpi/processor_idle.c for
# ACPI_STATE_C3); sysfs does not show the flag, so the name decides
DEEP = re.compile(r"^C([3-9]|1[0-9])", re.IGNORECASE)
# membarrier() sends no IPI while another task runs on the remote CPU, so
# the calls that did are counted (its CAL interrupts); fewer than this many
# leave the round trip to noise
MIN_IPIS = 500


def measure(config) -> dict:
    """The runner's cost measurements, on the first two CPUs of `config`
    one core apart where possible."""
    from .forms import by_core
    topo = sysfs.topology(config.root, config.cpus)
    cpus = config.cpus if config.ordered else by_core(config.cpus, topo)
    return runner.costs(cpus)


def _ipi_round_trip(costs):
    """(round trip ns, why) of one membarrier IPI, or (None, why not)."""
    if costs.get("membarrier_errno"):
        return None, f"membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) failed " \
                     f"(errno {costs['membarrier_errno']})"
    if costs.get("remote_cpu", -1) < 0 or costs.get("membarrier_ipi_ns", -1) < 0:
        return None, "one CPU only: no remote CPU to interrupt"
    calls = costs["membarrier_calls"]
    sent = calls
    if costs.get("interrupts_before") and costs.get("interrupts_after"):
        d = procfs.interrupt_deltas(procfs.parse_interrupts(costs["interrupts_before"]),
                                    procfs.parse_interrupts(costs["interrupts_after"]))
        sent = min(d.get("CAL", {}).get(costs["remote_cpu"], calls), calls)
    if sent < MIN_IPIS:
        return None, (f"unreliable: only {sent} of {calls} membarrier() calls interrupted "
                      f"CPU {costs['remote_cpu']} (other tasks ran there)")
    # calls that found the spinner cost a round trip more than calls that
    # did not: per call ipi_ns = self_ns + (sent / calls) * round trip
    extra = costs["membarrier_ipi_ns"] - costs["membarrier_self_ns"]
    rt = extra * calls / sent
    return max(rt, 0.0), (f"membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) with a thread "
                          f"spinning on CPU {costs['remote_cpu']}: "
                          f"{costs['membarrier_ipi_ns']:.0f} ns a call against "
                          f"{costs['membarrier_self_ns']:.0f} ns with no other thread running; "
                          f"{sent} of {calls} calls sent an IPI (CAL)")


def build(costs, ident, topo, idle, name="this-host", root="/", when=None) -> str:
    """The profile's TOML text from measurements (`costs`, the runner's
    JSON), the kernel identity, the topology ({cpu: sysfs.Cpu}) and the
    cpuidle states; validated by the profile loader before it is returned."""
    vendor = "amd" if ident.get("cpu_vendor") == "AuthenticAMD" else "intel"
    template_name = TEMPLATES[vendor]
    template = profiles.get(template_name)
    vm = profiles.get(VM_TEMPLATE) if ident.get("hypervisor") else None
    raw = json.loads(json.dumps(template.raw))
    assume = f"default assumption (as {template_name})"
    notes = {}

    def put(table, key, value, why):
        (raw if table is None else raw.setdefault(table, {}))[key] = value
        notes[(table, key)] = why

    # -- identity, clock ------------------------------------------------------
    put(None, "name", name, "")
    put(None, "description", f"this machine: {ident.get('cpu_model') or 'unknown CPU'}, "
        f"{ident.get('n_online')} CPUs, Linux {ident.get('release')}"
        + (", a VM" if ident.get("hypervisor") else ""), "")
    put(None, "vendor", vendor, f"cpuinfo: vendor_id {ident.get('cpu_vendor')}")
    flags = ident.get("cpu_flags") or {}
    put(None, "pcid", bool(flags.get("pcid")), "cpuinfo: flags" + (
        "" if flags.get("pcid") else " (no pcid)"))
    khz = sysfs.cpufreq_max_khz(root)
    if khz:
        mhz, why = khz // 1000, "sysfs: cpufreq cpuinfo_max_freq"
    elif ident.get("cpu_mhz"):
        mhz, why = int(round(ident["cpu_mhz"])), ("cpuinfo: cpu MHz (no cpufreq in sysfs"
                                                  + (": in a VM, the host's TSC rate)"
                                                     if ident.get("hypervisor") else ")"))
    else:
        mhz, why = template.clock_mhz, assume
    put(None, "clock_mhz", mhz, why)

    def cycles(ns):
        return max(0, int(round(ns * mhz / 1000)))

    # -- topology -----------------------------------------------------------------
    online = sorted(topo)
    packages = sorted({c.package for c in topo.values()})
    per_core = sorted({len([s for s in c.siblings if s in topo]) for c in topo.values()})
    smt = per_core[0] if len(per_core) == 1 else 1
    cpus = len(online)
    sockets = len(packages)
    why_smt = f"sysfs: {smt} thread{'s' * (smt != 1)} per core (thread_siblings_list)"
    if len(per_core) > 1 or cpus % smt or (cpus // smt) % sockets:
        smt, sockets = 1, 1
        why_smt = "sysfs: uneven cores/threads; modeled as one socket without SMT"
    put("topology", "sockets", sockets, f"sysfs: physical_package_id of the online CPUs "
        f"({len(packages)})")
    put("topology", "cpus", cpus, f"sysfs: online CPUs {sysfs.format_cpulist(online)}")
    put("topology", "smt", smt, why_smt)
    if "cores_per_llc" in profiles._SCHEMA["topology"]:
        per_socket = cpus // smt // sockets
        llc = sysfs.llc_cpus(root, online[0])
        # in the model's cores: CPUs / smt, as the topology above counts them
        cores = len([c for c in llc or () if c in topo]) // smt
        if cores and per_socket % cores == 0:
            put("topology", "cores_per_llc", cores, f"sysfs: cpu{online[0]}'s last-level "
                f"cache is shared by CPUs {sysfs.format_cpulist(llc)}")
        else:
            put("topology", "cores_per_llc", per_socket, "default assumption: one "
                "last-level cache per socket (sysfs cache topology missing or uneven)")

    # -- TLB ------------------------------------------------------------------------
    tlb = raw["tlb"]
    if ident.get("tlb_size"):
        entries = ident["tlb_size"]
        ways = tlb["ways"]
        while ways > 1 and entries % ways:
            ways -= 1
        put("tlb", "entries", entries, "cpuinfo: TLB size (4K pages)")
        put("tlb", "ways", ways, assume if ways == tlb["ways"] else
            f"default assumption ({template_name}'s {tlb['ways']} does not divide "
            f"{entries}; the largest way count below it that does)")

    # -- costs ------------------------------------------------------------------------
    c = raw["costs"]
    if costs.get("syscall_ns", -1) > 0:
        put("costs", "syscall_cycles", cycles(costs["syscall_ns"]),
            f"measured: syscall(SYS_getppid), {costs['syscall_ns']:.0f} ns")
    if costs.get("page_fault_ns", -1) > 0:
        put("costs", "page_fault_cycles", cycles(costs["page_fault_ns"]),
            f"measured: first write to a fresh anonymous page (THP off), "
            f"{costs['page_fault_ns']:.0f} ns")
    if vm is not None:
        for key in ("irq_entry_cycles", "ipi_send_cycles"):
            put("costs", key, vm.raw["costs"][key], f"default assumption for a VM (as "
                f"{VM_TEMPLATE}: the ICR write and the interrupt go through the host)")
    invlpg_ns = c["invlpg_ns"]
    if costs.get("madvise_touch_ns", -1) > 0 and costs.get("syscall_ns", -1) > 0 \
            and costs.get("page_fault_ns", -1) > 0:
        zap = costs["madvise_touch_ns"] - costs["syscall_ns"] - costs["page_fault_ns"] \
            - invlpg_ns
        put("costs", "zap_pte_cycles", cycles(max(zap, 0)),
            f"measured: the 1-thread madvise(DONTNEED)+touch loop, "
            f"{costs['madvise_touch_ns']:.0f} ns, less the syscall, the page fault and one "
            f"INVLPG ({invlpg_ns} ns): fitted so the model's 1-thread loop comes close to "
            f"this machine's" + (" (clamped at 0)" if zap < 0 else ""))
    # a pipe round trip between two threads on one CPU is, on the model
    # (engine/sched.py pipe_read/pipe_write/try_to_wake_up): four syscalls
    # and pipe operations, two wake-ups and two context switches
    pipe = c.get("pipe_cycles", profiles.DEFAULT_COSTS["pipe_cycles"])
    wakeup = c.get("wakeup_cycles", profiles.DEFAULT_COSTS["wakeup_cycles"])
    for key, value in (("pipe_cycles", pipe), ("wakeup_cycles", wakeup)):
        if key in profiles._SCHEMA["costs"]:
            put("costs", key, value, "default assumption (the model's default, "
                "profiles.DEFAULT_COSTS)" if key not in template.raw["costs"] else assume)
    if costs.get("pipe_round_trip_ns", -1) > 0 and costs.get("syscall_ns", -1) > 0:
        rt = cycles(costs["pipe_round_trip_ns"])
        switch = (rt - 4 * (cycles(costs["syscall_ns"]) + pipe) - 2 * wakeup) // 2
        put("costs", "context_switch_cycles", max(switch, 0),
            f"measured: a pipe round trip between two threads on one CPU, "
            f"{costs['pipe_round_trip_ns']:.0f} ns, less 4 syscalls, 4 pipe operations and "
            f"2 wake-ups, halved: fitted so the model's context_switch1 pair on one CPU "
            f"comes close to this machine's" + (" (clamped at 0)" if switch < 0 else ""))

    # -- IPIs -----------------------------------------------------------------------------
    rt, why_rt = _ipi_round_trip(costs)
    if rt is not None:
        fixed = (c["ipi_send_cycles"] + c["irq_entry_cycles"] + c["smp_mb_cycles"]
                 + c["csd_ack_cycles"]) * 1000 // mhz
        one_way = max(int(round(rt - fixed)), 0)
        why = (f"measured: IPI round trip {rt:.0f} ns ({why_rt}), less this profile's send, "
               f"IRQ entry, smp_mb and ack costs ({fixed} ns)"
               + (" (clamped at 0: the round trip is below them)" if rt < fixed else ""))
        put("ipi", "socket_ns", one_way, why)
        put("ipi", "smt_ns", one_way, "as socket_ns (the round trip was measured between "
            "two cores; an SMT sibling is taken to be no slower)")
        if sockets == 1:
            put("ipi", "remote_ns", raw["ipi"]["remote_ns"], f"{assume}; unused on one "
                f"socket")
    else:
        notes[("ipi", "socket_ns")] = f"{assume}: the IPI round trip was not measured: " \
                                      f"{why_rt}"

    # -- speculation --------------------------------------------------------------------
    family = str(ident.get("cpu_family") or "")
    hang = vendor == "amd" and family == "23"
    put("speculation", "freed_table_walk", "hang" if hang else "silent",
        "AMD family 17h: as zen1-epyc, the parts behind the 2017 hang" if hang else
        f"default assumption: only the family 17h parts of the 2017 report are modeled as "
        f"hanging (this is {ident.get('cpu_vendor')} family {family or '?'})")

    # -- C-states ---------------------------------------------------------------------
    states = [s for s in idle["states"] if not s.polling and not s.disabled]
    raw["cstates"] = []
    last = 0
    for i, s in enumerate(states):
        residency = max(s.residency_us, last)
        last = residency
        entry = {"name": s.name, "exit_latency_us": s.latency_us,
                 "target_residency_us": residency, "tlb_flushed": bool(DEEP.match(s.name))}
        if "polling" in profiles._CSTATE_SCHEMA:
            entry["polling"] = "MWAIT" in s.desc.upper()
        raw["cstates"].append(entry)
        notes[("cstates", i)] = (
            f"sysfs: cpu0/cpuidle/state{s.index} ({idle['driver']}, {s.desc!r}); tlb_flushed: "
            f"default assumption from the name (intel_idle and acpi_idle flag C3 and deeper "
            f"CPUIDLE_FLAG_TLB_FLUSHED, which sysfs does not show)"
            + ("; polling: from the description (MWAIT watches the thread flags: "
               "TIF_POLLING_NRFLAG, a wake-up needs no IPI; HLT does not)"
               if "polling" in entry else ""))
    skipped = [s.name for s in idle["states"] if s.polling or s.disabled]

    # -- virtualization --------------------------------------------------------------------
    if ident.get("hypervisor"):
        virt = dict((vm.raw.get("virt") if vm else None) or {"preempt_percent": 0,
                    "preempt_us": 3000, "pv_tlb_flush": False})
        raw["virt"] = virt
        steal = None
        if costs.get("stat_before") and costs.get("stat_after"):
            steal = procfs.steal_percent(procfs.parse_stat(costs["stat_before"]),
                                         procfs.parse_stat(costs["stat_after"]), online)
        if steal is not None:
            put("virt", "preempt_percent", min(int(round(steal)), 95),
                f"measured: steal time of the online vCPUs during the measurement, "
                f"{steal:.1f}%")
        else:
            put("virt", "preempt_percent", 0, "default assumption: no steal time measured")
        notes[("virt", "preempt_us")] = f"default assumption (as {VM_TEMPLATE})"
        cpuid = ident.get("cpuid") or {}
        if "kvm_pv_tlb_flush" in cpuid:
            pv = bool(cpuid["kvm_pv_tlb_flush"] and cpuid.get("kvm_steal_time"))
            put("virt", "pv_tlb_flush", pv, "CPUID 0x40000001: KVM_FEATURE_PV_TLB_FLUSH "
                f"{'and' if pv else 'or'} KVM_FEATURE_STEAL_TIME "
                f"{'offered' if pv else 'missing'} (arch/x86/kernel/kvm.c "
                f"pv_tlb_flush_supported())")
        else:
            put("virt", "pv_tlb_flush", False, "default assumption: the hypervisor is not "
                "KVM, or CPUID was not read")
    else:
        raw.pop("virt", None)

    header = [f"# {name}: this machine, written by `tlbperf profile --from-host`"
              + (f" on {when}" if when else ""),
              f"# {_identity.summary(ident)}",
              "# Every value says where it came from: measured (tlbperf-runner costs, median",
              "# of 7 batches), sysfs / cpuinfo, or a default assumption copied from a",
              f"# built-in profile. Template: {template_name}" +
              (f" (and {VM_TEMPLATE} for a VM's interrupt costs)" if vm else "") + "."]
    if skipped:
        header.append(f"# Left out of [[cstates]]: {', '.join(skipped)} (polling or "
                      f"disabled: the model polls in C0 when no state fits).")
    text = "\n".join(header) + "\n" + _emit(raw, notes, assume) + "\n"
    profiles._parse(text, f"profile written from the host ({name})")   # must load back
    return text


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _line(key, value, why) -> str:
    text = f"{key} = {_value(value)}"
    return f"{text:26} # {why}" if why else text


def _emit(raw, notes, assume) -> str:
    out = []
    for key, value in raw.items():
        if not isinstance(value, (dict, list)) or (isinstance(value, list) and not any(
                isinstance(v, dict) for v in value)):
            out.append(_line(key, value, notes.get((None, key), assume)))
    for key, value in raw.items():
        if isinstance(value, dict):
            out += ["", f"[{key}]"]
            for k, v in value.items():
                out.append(_line(k, v, notes.get((key, k), assume)))
    for key, value in raw.items():
        if isinstance(value, list) and any(isinstance(v, dict) for v in value):
            for i, entry in enumerate(value):
                out += ["", f"# {notes.get((key, i), assume)}", f"[[{key}]]"]
                out += [_line(k, v, None) for k, v in entry.items()]
    return "\n".join(out)


def from_host(name="this-host", config=None) -> str:
    """Measure this machine and return its profile's TOML text."""
    from . import HostConfig, machine_identity
    config = config or HostConfig()
    costs = measure(config)
    ident = machine_identity(config.root)
    topo = sysfs.topology(config.root)
    idle = sysfs.cpuidle(config.root)
    return build(costs, ident, topo, idle, name=name, root=config.root,
                 when=time.strftime("%Y-%m-%d %H:%M"))
