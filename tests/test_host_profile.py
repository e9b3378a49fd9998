"""`tlbperf profile --from-host` and `tlbperf check-model`: a machine
becomes a profile the model runs, every value saying where it came from;
the model is then put next to the host, workload by workload."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import cli, host, profiles
from pytest_tlbperf.host import checkmodel, commands, identity, profile, sysfs

from host_samples import host_unavailable, materialize

REASON = host_unavailable()
KVM_CPUID = {"hypervisor_signature": "KVMKVMKVM", "kvm_pv_tlb_flush": True,
             "kvm_steal_time": True}


def costs(sent=35000, steal=(100, 200)):
    """What `tlbperf-runner costs` prints, with chosen figures."""
    s0, s1 = steal
    return {"syscall_ns": 170.0, "page_fault_ns": 1300.0, "madvise_touch_ns": 2600.0,
            "pipe_round_trip_ns": 5000.0, "membarrier_self_ns": 340.0,
            "membarrier_ipi_ns": 340.0 + 2000.0 * sent / 35000, "membarrier_calls": 35000,
            "membarrier_errno": 0, "cpu": 0, "remote_cpu": 1,
            "interrupts_before": "  CPU0 CPU1\nCAL: 5 100\n",
            "interrupts_after": f"  CPU0 CPU1\nCAL: 5 {100 + sent}\n",
            "stat_before": f"cpu0 900 0 0 0 0 0 0 {s0} 0 0\ncpu1 900 0 0 0 0 0 0 {s0} 0 0\n",
            "stat_after": f"cpu0 1800 0 0 0 0 0 0 {s1} 0 0\ncpu1 1800 0 0 0 0 0 0 {s1} 0 0\n"}


def build(root, c=None, cpuid=None):
    ident = identity.collect(root, cpuid)
    text = profile.build(c or costs(), ident, sysfs.topology(root), sysfs.cpuidle(root),
                         root=root)
    return text, profiles._parse(text, "test")


def lines(text):
    return {line.split("=")[0].strip(): line for line in text.splitlines()
            if "=" in line and not line.startswith("#")}


def test_every_value_says_where_it_came_from(tmp_path):
    text, _ = build(materialize("kvm-amd-2", tmp_path), cpuid=KVM_CPUID)
    for key, line in lines(text).items():
        if key in ("name", "description") or line.startswith(("exit_latency", "target_res",
                                                               "tlb_flushed", "polling")):
            continue
        assert "#" in line, line
        why = line.split("#", 1)[1]
        assert any(w in why for w in ("measured", "sysfs", "cpuinfo", "CPUID",
                                      "default assumption", "AMD family")), line


def test_the_kvm_guest_as_a_profile(tmp_path):
    text, prof = build(materialize("kvm-amd-2", tmp_path), cpuid=KVM_CPUID)
    assert (prof.vendor, prof.cpus, prof.smt, prof.sockets) == ("amd", 2, 1, 1)
    assert prof.clock_mhz == 2596 and prof.tlb_entries == 3584
    assert [c.name for c in prof.cstates] == ["haltpoll idle"]      # POLL is C0 polling
    assert prof.virt["pv_tlb_flush"] and prof.virt["preempt_percent"] == 10
    assert prof.costs["syscall"] == round(170 * 2596 / 1000)
    keyed = lines(text)
    assert "measured: IPI round trip 2000 ns" in keyed["socket_ns"]
    assert "35000 of 35000 calls sent an IPI" in keyed["socket_ns"]
    assert "measured: steal time" in keyed["preempt_percent"]
    assert "KVM_FEATURE_PV_TLB_FLUSH and KVM_FEATURE_STEAL_TIME offered" in \
        keyed["pv_tlb_flush"]


def test_the_fit_makes_the_models_one_thread_loop_this_machines(tmp_path):
    """zap_pte_cycles is what is left of the measured 1-thread loop: the
    model's 1-thread madvise_dontneed comes within 10% of it."""
    _, prof = build(materialize("kvm-amd-2", tmp_path), cpuid=KVM_CPUID)
    r = tp.run(tp.workloads.madvise_dontneed(threads=1, iterations=50), prof, seed=1,
               engine="python")
    assert r.metrics["madvise_ns"] == pytest.approx(costs()["madvise_touch_ns"], rel=0.10)


def test_an_ipi_round_trip_that_found_no_spinner_is_not_used(tmp_path):
    text, prof = build(materialize("kvm-amd-2", tmp_path), c=costs(sent=100),
                       cpuid=KVM_CPUID)
    assert "unreliable: only 100 of 35000 membarrier() calls" in lines(text)["socket_ns"]
    assert prof.ipi_ns == profiles.get("zen1-epyc").ipi_ns


def test_the_intel_desktop_as_a_profile(tmp_path):
    """Bare metal: no [virt]; intel_idle's C3 and deeper flush the TLB, the
    disabled C7s and POLL are left out; one offline SMT sibling makes the
    cores uneven, which the model cannot take: one thread per core."""
    text, prof = build(materialize("intel-8-offline", tmp_path))
    assert prof.vendor == "intel" and prof.virt is None and prof.clock_mhz == 3400
    assert (prof.cpus, prof.smt) == (7, 1) and "uneven" in lines(text)["smt"]
    assert [(c.name, c.tlb_flushed) for c in prof.cstates] == [
        ("C1", False), ("C1E", False), ("C3", True), ("C6", True), ("C8", True),
        ("C9", True), ("C10", True)]
    assert "Left out of [[cstates]]: POLL, C7s" in text
    assert prof.freed_table_walk == "silent"


# -- check-model, with a host side chosen by the test ---------------------------------
class FakeRun:
    def __init__(self, value, share):
        self.samples = [{"metrics": {"ops_per_sec": value, "madvise_ns": 1e9 / value},
                         "window": {"cpu_share": share}}]

    def median(self, metric):
        return self.samples[0]["metrics"].get(metric)


def test_check_model_rows_and_missing_model_workloads(tmp_path, monkeypatch):
    """A host form whose model workload this pytest-tlbperf lacks still runs
    on the host; its model column is empty and says why."""
    monkeypatch.delitem(tp.workloads.BUILDERS, "tlb_flush2", raising=False)
    root = materialize("kvm-amd-2", tmp_path)
    config = host.HostConfig(root=root)
    _, prof = build(root, cpuid=KVM_CPUID)
    ran = []

    def host_run(name, params, windows, config):
        ran.append((name, params))
        return FakeRun(100000.0, 0.5)
    rows = checkmodel.check(prof, config, names=["madvise_dontneed", "tlb_flush2"],
                            windows=1, seeds=1, engine="python", host_run=host_run)
    assert ran == [("madvise_dontneed", {"threads": 1}), ("madvise_dontneed", {"threads": 2}),
                   ("tlb_flush2", {"threads": 1}), ("tlb_flush2", {"threads": 2})]
    mad = [r for r in rows if r.workload == "madvise_dontneed" and r.metric == "madvise_ns"]
    assert all(r.model > 0 and r.ratio is not None for r in mad)
    # the host got half its CPUs: its time per iteration on its own CPU is half
    assert mad[0].host_cpu == pytest.approx(mad[0].host * 0.5)
    flush = [r for r in rows if r.workload == "tlb_flush2"]
    assert all(r.host == 100000.0 and r.model is None and r.ratio is None and
               "not a model workload" in r.note for r in flush)
    assert "tp.workloads.BUILDERS has no tlb_flush2" in checkmodel.render(rows)


def test_check_model_sizes_follow_the_cpus(tmp_path):
    root = materialize("intel-8-offline", tmp_path)
    topo = sysfs.topology(root)
    assert checkmodel.sizes("tlb_flush1", [0], topo) == [1]
    assert checkmodel.sizes("context_switch1", sorted(topo), topo, [1, 4, 5]) == [1, 4]


# -- the commands on bad output paths, and nothing lost ---------------------------------------
def test_unwritable_outputs_are_refused_before_measuring(tmp_path, capsys, monkeypatch):
    def no_measuring(*a, **k):
        raise AssertionError("measured before checking the output")
    monkeypatch.setattr(profile, "measure", no_measuring)
    monkeypatch.setattr(checkmodel, "check", no_measuring)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["profile", "--from-host", "-o", str(blocker / "this.toml")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["check-model", "--profile", "haswell-4c", "--json",
                     str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_write_that_fails_late_prints_the_result(tmp_path, capsys, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(commands.os, "replace", refuse)
    with pytest.raises(host.HostError, match="No space left on device; the result is "
                                             "printed above"):
        commands.write_atomically(tmp_path / "this.toml", "name = 'x'\n", "-o")
    assert capsys.readouterr().out == "name = 'x'\n"
    assert list(tmp_path.iterdir()) == []              # no half-written file either


def test_profile_prints_a_builtin_and_refuses_an_unknown_one(capsys):
    assert cli.main(["profile", "haswell-4c"]) == 0
    assert 'name = "haswell-4c"' in capsys.readouterr().out
    assert cli.main(["profile", "nosuch"]) == 2
    assert "unknown profile 'nosuch'" in capsys.readouterr().err


# -- on this machine ---------------------------------------------------------------------
@pytest.mark.host
@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_this_machine_as_a_profile_and_the_model_checked_against_it(tmp_path, capsys):
    out = tmp_path / "this.toml"
    assert cli.main(["profile", "--from-host", "-o", str(out)]) == 0
    prof = profiles.get(str(out))
    assert prof.cpus == len(sysfs.online_cpus())
    assert "measured: syscall(SYS_getppid)" in out.read_text()
    capsys.readouterr()
    assert cli.main(["check-model", "--profile", str(out), "--workload", "madvise_dontneed",
                     "--workload", "tlb_flush2", "--size", "1", "--windows", "1",
                     "--window-ms", "50", "--warmup-ms", "0", "--seeds", "1",
                     "--engine", "python"]) == 0
    table = capsys.readouterr().out
    assert "check-model: this kernel (host) against the model of this machine" in table
    row = next(line for line in table.splitlines()
               if line.startswith("madvise_dontneed") and "madvise_ns" in line)
    host_ns, model_ns = row.split()[3], row.split()[6]
    assert float(host_ns) > 0 and float(model_ns) > 0
    assert "tlb_flush2" in table
