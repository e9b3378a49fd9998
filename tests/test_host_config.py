"""Where host runs may go and how long they take: CPU lists, placement by
core, the bounds, and the refusals (offline CPU, more threads than CPUs,
a window of 0) -- on machine samples, without running anything."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import host
from pytest_tlbperf.host import forms, sysfs

from host_samples import materialize


@pytest.fixture
def intel(tmp_path):
    return materialize("intel-8-offline", tmp_path / "intel")


def test_default_cpus_are_the_online_ones(intel):
    config = host.HostConfig(root=intel)
    assert config.cpus == [0, 1, 2, 3, 4, 6, 7] and not config.ordered


def test_an_offline_cpu_is_refused_by_number(intel):
    with pytest.raises(host.HostError, match=r"CPU 5 is offline \(online CPUs: 0-4,6-7\)"):
        host.HostConfig(cpus="0,5", root=intel)
    with pytest.raises(host.HostError, match="CPU 64 is offline"):
        host.HostConfig(cpus="0-1,64", root=intel)


def test_a_cpu_listed_twice_is_refused(intel):
    with pytest.raises(host.HostError, match="CPU 2 is listed twice"):
        host.HostConfig(cpus="2,0-3", root=intel)


def test_the_order_given_is_kept(intel):
    config = host.HostConfig(cpus="6,0", root=intel)
    assert config.cpus == [6, 0] and config.ordered


@pytest.mark.parametrize("window, message", [
    (0, "a window of 0 ms measures nothing"), (-5, "a window of -5 ms measures nothing"),
    (10001, "outside 1..10000"), ("1s", "'1s' is not a whole number")])
def test_windows_are_bounded(intel, window, message):
    with pytest.raises(host.HostError, match=message):
        host.HostConfig(window_ms=window, root=intel)


def test_warmup_and_file_size_are_bounded(intel):
    with pytest.raises(host.HostError, match="warm-up"):
        host.HostConfig(warmup_ms=60001, root=intel)
    with pytest.raises(host.HostError, match="file size"):
        host.HostConfig(file_mb=0, root=intel)
    with pytest.raises(host.HostError, match="not a directory"):
        host.HostConfig(tmpdir=intel / "nowhere", root=intel)


def test_placement_is_by_core_first(intel):
    """will-it-scale places one task per core before it uses SMT siblings:
    CPU 4 (core 0's second thread) comes after every core's first."""
    topo = sysfs.topology(intel)
    usable = sorted(topo)
    assert forms.by_core(usable, topo) == [0, 1, 2, 3, 4, 6, 7]
    f = forms.form("tlb_flush1")
    assert forms.place(f, 5, usable, topo) == ([0, 1, 2, 3, 4], [])


def test_more_threads_than_cpus_is_refused(intel):
    topo = sysfs.topology(intel)
    with pytest.raises(host.TooFewCpus, match="8 threads need 8 CPUs, one each; the run may "
                                              r"use 7 \(CPUs 0-4,6-7\)"):
        forms.place(forms.form("madvise_dontneed"), 8, sorted(topo), topo)


def test_context_switch_partners_on_the_smt_sibling(intel):
    """A pair shares a core: the partner on the sibling, or on the same
    CPU where the sibling is offline (core 1: CPU 5 is offline)."""
    topo = sysfs.topology(intel)
    f = forms.form("context_switch1")
    assert forms.place(f, 4, sorted(topo), topo) == ([0, 1, 2, 3], [4, 1, 6, 7])
    with pytest.raises(host.TooFewCpus, match="5 pairs need 5 cores"):
        forms.place(f, 5, sorted(topo), topo)


def test_only_workloads_with_a_host_form(intel):
    with pytest.raises(host.NoHostForm, match="kernel_build has no host form"):
        host.run(tp.workloads.kernel_build(), config=host.HostConfig(root=intel))
    with pytest.raises(host.HostError, match="threads must be a positive integer"):
        forms.form("tlb_flush2").count({"threads": 0})


def test_windows_per_run_are_bounded(intel):
    with pytest.raises(host.HostError, match="windows: 121 is outside 1..120"):
        host.run("tlb_flush2", {"threads": 1}, windows=121,
                 config=host.HostConfig(root=intel))
