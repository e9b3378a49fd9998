"""The host runner on this machine's kernel: a short smoke test of every
host form (1-2 threads, windows of 100 ms), Ctrl-C, and bad input on the
command line. Skipped, with the reason, where the runner cannot run (not
Linux, not built, no CPU to pin to)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import cli, host
from pytest_tlbperf.host import runner, sysfs

from host_samples import host_unavailable

REASON = host_unavailable()
pytestmark = [pytest.mark.host, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

FAST = dict(window_ms=100, warmup_ms=50)


@pytest.fixture(scope="module")
def usable():
    return host.HostConfig().cpus


@pytest.fixture
def config(tmp_path):
    return host.HostConfig(tmpdir=tmp_path, file_mb=1, **FAST)


def test_madvise_loop_window_by_window(config, usable):
    """Seed 002's loop on up to two CPUs: one sample per window, every
    thread pinned to its own CPU and making progress, the interrupt
    counters read per CPU."""
    threads = min(2, len(usable))
    run = host.run(tp.workloads.madvise_dontneed(threads=threads), windows=2, config=config)
    assert [s["seed"] for s in run.samples] == [0, 1]
    assert len(set(run.cpus)) == threads and set(run.cpus) <= set(usable)
    for s in run.samples:
        w = s["window"]
        assert all(n > 0 for n in w["iterations"]), w["iterations"]
        m = s["metrics"]
        assert m["ops_per_sec"] > 0 and m["madvise_ns"] > 0
        # a fault per touch; each thread's iteration count and its fault
        # counter are read a few instructions apart, so one iteration per
        # thread may straddle the window's edge
        assert m["page_faults"] >= sum(w["iterations"]) - threads > 0
        assert set(w["per_cpu"]["cpus"]) == set(sysfs.online_cpus())
        assert all(v >= 0 for v in w["per_cpu"]["CAL"])
        assert 0 < w["cpu_share"] <= 1.5
    # each counter either has a source or says why it is missing
    for metric in ("ipis", "tlb_shootdowns", "tlb_misses", "page_faults"):
        assert run.counters[metric]
        assert (metric in run.samples[0]["metrics"]) != run.counters[metric].startswith(
            "unavailable"), (metric, run.counters[metric])


@pytest.mark.parametrize("name", ["tlb_flush1", "tlb_flush2", "tlb_flush3", "munmap_storm"])
def test_every_thread_form_runs(config, name):
    run = host.run(name, {"threads": 1}, windows=1, config=config)
    assert run.samples[0]["metrics"]["ops_per_sec"] > 0
    assert run.samples[0]["window"]["iterations"][0] > 0


def test_context_switch_pairs(config):
    run = host.run("context_switch1", {"pairs": 1}, windows=1, config=config)
    m = run.samples[0]["metrics"]
    assert m["ops_per_sec"] > 0 and m["context_switches"] > 0
    # the partner shares the pair's core: its SMT sibling, else the CPU itself
    topo = sysfs.topology()
    assert topo[run.partners[0]].core_key == topo[run.cpus[0]].core_key


def test_ctrl_c_stops_the_runner_with_the_windows_it_finished(usable):
    """SIGINT (the terminal's Ctrl-C reaches the runner too): it stops at
    once, prints valid JSON flagged as interrupted, and exits 130."""
    proc = subprocess.Popen([str(runner.path()), "tlb_flush2", "--cpus", str(usable[0]),
                             "--warmup-ms", "0", "--window-ms", "100", "--windows", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["interrupted"] and len(data["boundaries"]) < 101


def _runners(tag):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"tlbperf-runner") and tag in cmd:
            found.append(pid)
    return found


def test_ctrl_c_in_tlbperf_host_run_leaves_no_runner_behind(usable, tmp_path):
    """SIGINT to the Python side only (not to its runner): it stops the
    runner, says 'interrupted' without a traceback, and exits 130."""
    # run from elsewhere: `-m` from the source tree would import the
    # uninstalled package, whose runner a non-editable install did not build
    proc = subprocess.Popen([sys.executable, "-m", "pytest_tlbperf.cli", "host", "run",
                             "tlb_flush2", "--cpus", str(usable[0]), "--warmup-ms", "0",
                             "--window-ms", "100", "--windows", "97"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not _runners(b"97") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _runners(b"97"), f"the runner did not start: {proc.communicate()[1]}"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not _runners(b"97")


def test_runner_refuses_a_cpu_it_cannot_pin_to():
    """The second line of defence, behind the Python checks."""
    out = subprocess.run([str(runner.path()), "tlb_flush2", "--cpus", "1000", "--windows",
                          "1", "--window-ms", "10"], capture_output=True, text=True)
    assert out.returncode == 3 and "cannot pin thread 0 to CPU 1000" in out.stderr


def test_runner_refuses_bad_arguments():
    for args, message in [(["tlb_flush9", "--cpus", "0"], "unknown workload tlb_flush9"),
                          (["tlb_flush2", "--cpus", "0", "--window-ms", "0"],
                           "--window-ms: 0 is outside 1..10000"),
                          (["context_switch1", "--cpus", "0"], "--partners must name")]:
        out = subprocess.run([str(runner.path()), *args], capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)


# -- `tlbperf host run` on bad input: a clear error, exit 2, nothing measured ------------
def test_cli_bad_input(tmp_path, capsys, usable):
    offline = max(sysfs.online_cpus()) + 1
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    for argv, message in [
        (["--cpus", f"0,{offline}"], f"CPU {offline} is offline"),
        (["--threads", str(len(usable) + 1)], f"{len(usable) + 1} threads need"),
        (["--window-ms", "0"], "a window of 0 ms measures nothing"),
        (["--json", str(not_a_dir / "out.json")], "file is not a directory"),
        (["--json", str(tmp_path)], "is a directory"),
    ]:
        assert cli.main(["host", "run", "tlb_flush2", "--windows", "1", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (not_a_dir / "out.json").exists()


def test_cli_run_prints_windows_and_counters(tmp_path, capsys):
    out_json = tmp_path / "run.json"
    assert cli.main(["host", "run", "tlb_flush2", "--windows", "2", "--window-ms", "50",
                     "--warmup-ms", "0", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "tlb_flush2 threads=1 on CPUs" in out and "median" in out
    assert "tlb_misses:" in out                 # a source, or why it is unavailable
    data = json.loads(out_json.read_text())
    assert len(data["samples"]) == 2 and data["identity"]["release"] == os.uname().release
