"""The host backend's readers on machine samples (tests/fixtures/host/): a
KVM guest on AMD with no PMU, an Intel desktop with an offline CPU, PTI and
perf_event_paranoid=3, and the cpuinfo of an Intel and an AMD part."""

import errno

import pytest

from pytest_tlbperf.errors import HostError
from pytest_tlbperf.host import identity, procfs, sysfs

from host_samples import files, materialize, text


@pytest.fixture
def kvm(tmp_path):
    return materialize("kvm-amd-2", tmp_path / "kvm")


@pytest.fixture
def intel(tmp_path):
    return materialize("intel-8-offline", tmp_path / "intel")


# -- /proc/interrupts -------------------------------------------------------------
def test_interrupt_columns_follow_the_header_not_the_cpu_count():
    """An offline CPU has no column: CPU 5 of the Intel sample is absent,
    and CPU 6's counts are in the sixth column."""
    parsed = procfs.parse_interrupts(files("intel-8-offline")["proc/interrupts"])
    assert parsed["cpus"] == [0, 1, 2, 3, 4, 6, 7]
    assert parsed["rows"]["TLB"][6] == 70821 and 5 not in parsed["rows"]["TLB"]
    assert parsed["rows"]["CAL"][0] == 120432
    assert parsed["rows"]["ERR"] == {0: 0}      # one value, not per CPU


def test_interrupt_deltas_per_cpu():
    before = procfs.parse_interrupts("   CPU0   CPU1\nCAL:  10  20  Function call interrupts\n"
                                     "TLB:  5  6  TLB shootdowns\n")
    after = procfs.parse_interrupts("   CPU0   CPU1\nCAL:  17  20  Function call interrupts\n"
                                    "TLB:  5  20  TLB shootdowns\nRES: 1 1\n")
    d = procfs.interrupt_deltas(before, after)
    assert d == {"CAL": {0: 7, 1: 0}, "TLB": {0: 0, 1: 14}}     # RES only in one of them


def test_not_proc_interrupts_is_refused():
    with pytest.raises(ValueError, match="CPU columns"):
        procfs.parse_interrupts("NMI: 1 2\n")


def test_steal_is_the_hypervisors_share_of_the_ticks():
    before = procfs.parse_stat("cpu0 100 0 50 800 0 0 0 50 0 0\ncpu1 10 0 10 980 0 0 0 0 0 0\n")
    after = procfs.parse_stat("cpu0 200 0 100 1600 0 0 0 100 0 0\ncpu1 20 0 20 1960 0 0 0 0 0 0\n")
    assert procfs.steal_percent(before, after, [0]) == pytest.approx(5.0)
    assert procfs.steal_percent(before, after, [1]) == 0.0
    assert procfs.steal_percent(before, before, [0]) is None


# -- /proc/cpuinfo -------------------------------------------------------------------
def test_intel_cpuinfo():
    info = procfs.parse_cpuinfo(text("cpuinfo-intel-skylake.txt"))
    assert info["vendor"] == "GenuineIntel" and "i7-6700" in info["model_name"]
    assert {"pcid", "invpcid", "pti"} <= set(info["flags"]) and "invlpgb" not in info["flags"]
    assert "cpu_meltdown" in info["bugs"]
    assert info["processors"] == 7 and info["tlb_size"] is None and info["mhz"] == 3400.0


def test_amd_cpuinfo():
    info = procfs.parse_cpuinfo(text("cpuinfo-amd-genoa.txt"))
    assert info["vendor"] == "AuthenticAMD" and info["family"] == "25"
    assert {"pcid", "invpcid", "invlpgb"} <= set(info["flags"]) and "pti" not in info["flags"]
    assert info["tlb_size"] == 3584 and info["processors"] == 4


def test_cpuinfo_that_is_not_x86_is_refused():
    with pytest.raises(ValueError, match="not an x86"):
        procfs.parse_cpuinfo("processor : 0\nBogoMIPS : 50.00\nFeatures : fp asimd\n")


# -- command line --------------------------------------------------------------------
def test_command_line_flags_and_boot_only_parameters():
    cmd = files("intel-8-offline")["proc/cmdline"].strip()
    assert procfs.cmdline_flags(cmd) == {"nopcid": True, "intel_idle.max_cstate": "6"}
    assert procfs.behaviour_parameters(cmd) == ["nopcid", "intel_idle.max_cstate=6"]
    # what follows a lone "--" is init's, not the kernel's
    assert procfs.cmdline_parameters("nopti -- --nopcid") == ["nopti"]


# -- sysfs -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, cpus", [("0-3,8", [0, 1, 2, 3, 8]), ("5", [5]), ("", []),
                                        ("0-1, 4-5", [0, 1, 4, 5])])
def test_cpulist(text, cpus):
    assert sysfs.parse_cpulist(text) == cpus
    assert sysfs.parse_cpulist(sysfs.format_cpulist(cpus)) == cpus


@pytest.mark.parametrize("bad", ["x", "3-1", "0-", "-2"])
def test_bad_cpulist_names_the_part(bad):
    with pytest.raises(HostError, match="CPU list"):
        sysfs.parse_cpulist(bad)


def test_topology_of_smt_siblings_with_one_offline(intel):
    topo = sysfs.topology(intel)
    assert sorted(topo) == [0, 1, 2, 3, 4, 6, 7]
    assert topo[0].siblings == (0, 4) and topo[1].siblings == (1,)
    assert topo[4].core_key == topo[0].core_key != topo[1].core_key


def test_cpuidle_states_and_governor(intel, kvm):
    idle = sysfs.cpuidle(intel)
    assert (idle["driver"], idle["governor"]) == ("intel_idle", "menu")
    names = [s.name for s in idle["states"]]
    assert names[:3] == ["POLL", "C1", "C1E"] and idle["states"][0].polling
    c7s = next(s for s in idle["states"] if s.name == "C7s")
    assert c7s.disabled and c7s.latency_us == 124
    # a governor that cannot be changed is only in current_governor_ro
    (kvm / sysfs.CPU_DIR / "cpuidle/current_governor").unlink()
    assert sysfs.cpuidle(kvm)["governor"] == "haltpoll"


def test_no_cpuidle_directory_reads_as_none(tmp_path):
    idle = sysfs.cpuidle(tmp_path)
    assert idle == {"driver": "none", "governor": "none", "states": []}


def test_pmu_presence(intel, kvm):
    assert sysfs.has_cpu_pmu(intel) and not sysfs.has_cpu_pmu(kvm)


# -- why a perf counter is missing ---------------------------------------------------------
def test_perf_refused_by_paranoid_3(intel):
    paranoid = procfs.perf_paranoid(intel)
    assert paranoid == 3
    why = procfs.perf_reason(errno.EACCES, "tlb_misses", paranoid, intel, is_root=False)
    assert "perf_event_paranoid=3" in why and "CAP_PERFMON" in why


def test_perf_without_a_pmu_in_a_vm(kvm):
    why = procfs.perf_reason(errno.ENOENT, "tlb_misses", 2, kvm, is_root=False)
    assert "no hardware PMU" in why and "VM" in why


def test_perf_not_built_and_disabled():
    assert "CONFIG_PERF_EVENTS" in procfs.perf_reason(errno.ENOSYS, "page_faults", 2)
    assert "disabled" in procfs.perf_reason(-1, "page_faults", 2)


# -- identity ---------------------------------------------------------------------------------
def test_identity_of_the_intel_desktop(intel):
    ident = identity.collect(intel)
    assert ident["release"] == "6.1.0-28-amd64"
    assert identity.pti(ident) == "on"
    assert ident["cpu_flags"]["pcid"] and ident["cpu_flags"]["pti"]
    assert ident["online_cpus"] == "0-4,6-7" and ident["n_online"] == 7
    assert not ident["hypervisor"] and ident["smt_active"]
    assert (ident["cpuidle_driver"], ident["cpuidle_governor"]) == ("intel_idle", "menu")
    assert ident["perf_event_paranoid"] == 3
    assert ident["tlb_parameters"] == {"nopcid": True, "intel_idle.max_cstate": "6"}


def test_identity_of_the_kvm_guest(kvm):
    cpuid = {"hypervisor_signature": "KVMKVMKVM", "kvm_pv_tlb_flush": True,
             "kvm_steal_time": True}
    ident = identity.collect(kvm, cpuid)
    assert ident["hypervisor"] and ident["hypervisor_vendor"] == "KVMKVMKVM"
    assert identity.pti(ident) == "off (not affected)"
    assert identity.value(ident, "hypervisor") == "KVMKVMKVM, PV TLB flush offered"
    assert ident["tlb_size"] == 3584
    assert "firecracker" not in identity.value(ident, "parameters")


def test_two_kernels_on_one_machine_differ_only_in_the_kernel(intel):
    a = identity.collect(intel)
    b = dict(a, release="6.15.0-rc1+", version="#2 SMP PREEMPT_DYNAMIC")
    assert identity.differences(a, b) == []
    table = "\n".join(identity.side_by_side(a, b, "kernel A", "kernel B"))
    assert "6.1.0-28-amd64" in table and "6.15.0-rc1+" in table
    assert not any(line.startswith("!") for line in identity.side_by_side(a, b, "A", "B"))


def test_what_is_not_the_kernel_is_warned_about(intel, kvm):
    """CPU model, the mitigations on the command line and the governor
    each get a warning naming both values."""
    a = identity.collect(intel)
    b = dict(a, release="6.15.0", cpu_model="Intel(R) Xeon(R) Platinum 8180",
             cmdline=a["cmdline"] + " mitigations=off", cpuidle_governor="teo")
    warnings = identity.differences(a, b)
    assert any(w.startswith("CPU differs") and "8180" in w for w in warnings)
    assert any(w.startswith("command line differs") and "mitigations=off" in w
               for w in warnings)
    assert any("cpuidle driver/governor differs: intel_idle/menu vs intel_idle/teo" in w
               for w in warnings)
    assert not any(w.startswith("kernel") for w in warnings)
    marked = [line for line in identity.side_by_side(a, b, "A", "B") if line.startswith("!")]
    assert len(marked) == 3
    # another machine altogether: the hypervisor, the CPUs, PTI, perf...
    other = identity.differences(a, identity.collect(kvm))
    for label in ("PTI", "online CPUs", "hypervisor", "perf_event_paranoid", "SMT"):
        assert any(w.startswith(label) for w in other), label


def test_a_saved_identity_matches_the_live_one(kvm):
    """A saved run's JSON has its keys sorted; the flags must still read
    the same, or every comparison would warn about them."""
    import json
    live = identity.collect(kvm, {"hypervisor_signature": "KVMKVMKVM"})
    saved = json.loads(json.dumps(live, sort_keys=True))
    assert list(saved["cpu_flags"]) != list(live["cpu_flags"])
    assert identity.differences(saved, live) == []
    assert identity.value(saved, "tlb_flags") == "pcid invpcid -invlpgb pge -pti"
