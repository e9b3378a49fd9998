"""`pytest --tlbperf --tlbperf-backend host`: the suites on the running
kernel, saved like model runs, compared across kernels (unpaired, with
both identities side by side), and refused on bad input."""

import pytest

# as in test_plugin.py: numpy cannot be imported twice in one process
import pytest_tlbperf.reports.html  # noqa: F401,E402
import pytest_tlbperf.reports.report  # noqa: F401,E402
from pytest_tlbperf import cli
from pytest_tlbperf.host import sysfs
from pytest_tlbperf.storage import Storage

from host_samples import host_unavailable

REASON = host_unavailable()

SUITE = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["haswell-4c"], metrics=["madvise_ns", "flush_latency_ns_p50"])
def test_madvise(tlbperf):
    cell = tlbperf(tp.workloads.madvise_dontneed(threads=1))
    assert cell.median("madvise_ns") > 0

@pytest.mark.tlbperf(profiles=["zen1-epyc"], shows=["freed_table_walk"])
def test_kernel_build(tlbperf):
    tlbperf(tp.workloads.kernel_build())

@pytest.mark.tlbperf(profiles=["haswell-4c"])
def test_wide(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(threads=4096))

@pytest.mark.tlbperf(profiles=["skylake-2s"])
def test_membarrier(tlbperf):
    tlbperf.membarrier()
'''
HOST = ["--tlbperf", "--tlbperf-backend", "host", "--tlbperf-rounds", "2",
        "--tlbperf-host-window", "50", "--tlbperf-host-warmup", "0", "-p", "no:randomly"]


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    return pytester


@pytest.mark.host
@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_host_run_saved_like_a_model_run_and_compared_across_kernels(suite):
    result = suite.runpytest(*HOST, "--tlbperf-save=kernel-a", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    out = result.stdout.str()
    assert "kernel_build runs on the model only: it has no host form" in out
    assert "4096 threads need 4096 CPUs" in out
    assert "membarrier litmus check runs on the model" in out
    assert "host: Linux" in out and "CPU share" in out
    run = Storage(suite.path / ".tlbperf").find("kernel-a")
    assert run["backend"] == "host"
    ident = run["host"]["identity"]
    assert ident["release"] and ident["cpuidle_driver"] and "cmdline" in ident
    assert run["host"]["settings"]["window_ms"] == 50
    assert set(run["host"]["counters"]) >= {"ipis", "tlb_shootdowns", "tlb_misses"}
    (cell,) = run["cells"]
    assert (cell["test"], cell["profile"], cell["policy"]) == ("test_madvise", "host", "kernel")
    assert [s["seed"] for s in cell["seeds"]] == [0, 1]            # a sample per window
    assert cell["metrics"] == ["madvise_ns", "ops_per_sec", "ipis"]
    assert all(s["metrics"]["madvise_ns"] > 0 for s in cell["seeds"])
    # `tlbperf report` of a host run shows the kernel and each cell's figures
    assert cli.main(["report", "kernel-a", "--storage", str(suite.path / ".tlbperf"),
                     "-o", str(suite.path / "a.txt")]) == 0
    text = (suite.path / "a.txt").read_text()
    assert "host: Linux" in text and "madvise_ns" in text and "CPU share" in text

    # "kernel B": the same suite again, compared with kernel A (unpaired)
    result = suite.runpytest(*HOST, "--tlbperf-compare=kernel-a",
                             "--tlbperf-text=report.txt")
    result.assert_outcomes(passed=1, skipped=3)
    out = result.stdout.str()
    assert "vs run 0001" in out and "kernels compared (unpaired" in out
    assert "madvise_ns (ns, lower is better)" in out
    text = (suite.path / "report.txt").read_text()
    assert "kernels compared" in text and "host runs: warm-up 0 ms" in text


@pytest.mark.parametrize("args, message", [
    (["--tlbperf-backend", "bogus"], "invalid choice: 'bogus'"),
    (["--tlbperf-backend", "host", "--tlbperf-host-window", "0"],
     "a window of 0 ms measures nothing"),
    (["--tlbperf-backend", "host", "--tlbperf-host-cpus", "0,4095"], "CPU 4095 is offline"),
    (["--tlbperf-backend", "host", "--tlbperf-host-cpus", "zero"], "'zero' in 'zero' is not"),
    (["--tlbperf-backend", "host", "-n", "2"], "without pytest-xdist's -n"),
])
def test_bad_host_options_are_usage_errors(suite, args, message):
    if REASON is not None and "bogus" not in args:
        pytest.skip(REASON)
    result = suite.runpytest("--tlbperf", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_backend_from_the_ini_file(suite):
    suite.makeini("[pytest]\ntlbperf_backend = metal\n")
    result = suite.runpytest("--tlbperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--tlbperf-backend: 'metal' is not one of model, host" in result.stderr.str()


# -- tlbperf compare of two host runs: the kernels side by side ------------------------------
def _host_run(release, **identity_changes):
    ident = {"release": release, "version": "#1 SMP", "cmdline": "ro quiet nopcid",
             "meltdown": "Mitigation: PTI", "cpu_vendor": "GenuineIntel",
             "cpu_model": "Intel(R) Core(TM) i7-6700", "cpu_family": "6",
             "cpu_model_number": "94", "cpu_stepping": "3", "microcode": "0xf0",
             "cpu_flags": {"pcid": True, "invpcid": True}, "online_cpus": "0-7",
             "n_online": 8, "smt_active": True, "hypervisor": False,
             "cpuidle_driver": "intel_idle", "cpuidle_governor": "menu",
             "perf_event_paranoid": 2}
    ident.update(identity_changes)
    seeds = [{"seed": i, "metrics": {"ops_per_sec": 1000.0 + i}, "violations": []}
             for i in range(5)]
    return {"format": "pytest-tlbperf-run", "version": 1, "id": "", "name": None,
            "commit": "abc", "dirty": False, "model_version": "1", "baseline": "kernel",
            "backend": "host", "options": {},
            "host": {"identity": ident, "settings": {"window_ms": 1000, "warmup_ms": 1000,
                                                     "cpus": "0-7"}, "counters": {}},
            "cells": [{"test": "test_tlb_flush2", "profile": "host", "policy": "kernel",
                       "metrics": ["ops_per_sec"], "seeds": seeds}]}


def test_compare_two_kernels_warns_about_what_is_not_the_kernel(tmp_path, capsys):
    storage = Storage(tmp_path / ".tlbperf")
    storage.save(_host_run("6.14.0"), name="a")
    storage.save(_host_run("6.15.0-rc1", cpuidle_governor="teo",
                           cmdline="ro quiet nopcid mitigations=off"), name="b")
    assert cli.main(["compare", "a", "b", "--storage", str(tmp_path / ".tlbperf")]) == 0
    out = capsys.readouterr().out
    assert "kernels compared (unpaired" in out
    assert "6.14.0" in out and "6.15.0-rc1" in out
    assert "warning: cpuidle driver/governor differs: intel_idle/menu vs intel_idle/teo" in out
    assert "warning: command line differs: - vs mitigations=off" in out
    assert "warning: kernel" not in out and "warning: CPU" not in out


def test_compare_a_host_run_with_a_model_run_says_nothing_matches(tmp_path, capsys):
    storage = Storage(tmp_path / ".tlbperf")
    storage.save(_host_run("6.14.0"), name="a")
    model = _host_run("6.14.0")
    del model["backend"], model["host"]
    model["cells"][0].update(profile="skylake-2s", policy="mainline")
    storage.save(model, name="m")
    assert cli.main(["compare", "m", "a", "--storage", str(tmp_path / ".tlbperf")]) == 0
    out = capsys.readouterr().out
    assert "no cell" in out and "the other ran the model" in out


def test_every_host_metric_is_registered_for_the_host():
    from pytest_tlbperf.metrics import METRICS
    host_side = {m for m, spec in METRICS.items() if "host" in spec.backends}
    assert {"ops_per_sec", "madvise_ns", "ipis", "tlb_misses", "tlb_shootdowns",
            "context_switches", "page_faults"} <= host_side
    assert "flush_latency_ns_p99" not in host_side      # no flush latency without tracing
    assert sysfs.format_cpulist([0, 1]) == "0-1"
