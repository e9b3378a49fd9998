"""Issue 17, profiles: every bad profile fails naming its file and field,
before any engine sees it; what the loader accepts both engines run, in
bounded memory; and a profile cannot be changed once loaded."""

import copy
import json
import os
from importlib import resources

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf import profiles
from pytest_tlbperf.engine import native
from pytest_tlbperf.errors import ProfileError

BASE = (resources.files("pytest_tlbperf.profiles") / "haswell-4c.toml").read_text()
VIRT = "\n[virt]\npreempt_percent = {}\npreempt_us = {}\npv_tlb_flush = true\n"


def _text(*replace, extra=""):
    text = BASE
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text + extra


def _load(tmp_path, text):
    path = tmp_path / "box.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ProfileError) as exc:
        profiles.load(path)
    assert str(path) in str(exc.value)
    return str(exc.value)


def test_not_utf8_names_the_byte_and_line(tmp_path):
    msg = _load(tmp_path, BASE.encode() + b"# caf\xe9\n")
    assert "not UTF-8" in msg and "0xe9" in msg and f"line {BASE.count(chr(10)) + 1}" in msg


def test_cstates_that_are_not_tables(tmp_path):
    text = BASE.split("[[cstates]]")[0].replace("clock_mhz", "cstates = [1, 2]\nclock_mhz")
    assert "cstates[0] must be a table" in _load(tmp_path, text)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "dir"])
def test_special_files_are_refused_before_reading(tmp_path, special):
    if special == "fifo":
        path = tmp_path / "box.toml"
        os.mkfifo(path)           # reading it would block until a writer came
    elif special == "dir":
        path = tmp_path / "box.toml"
        path.mkdir()
    else:
        path = special
    with pytest.raises(ProfileError, match="not a regular file"):
        profiles.get(str(path) if special != "/dev/zero" else "/dev/zero")


def test_an_oversized_file_is_refused(tmp_path):
    msg = _load(tmp_path, BASE + "#" * profiles.MAX_FILE_BYTES)
    assert f"more than the {profiles.MAX_FILE_BYTES}" in msg


@pytest.mark.parametrize("replace, field, limit", [
    (("cpus = 8 ", "cpus = 65538 "), "topology.'cpus' = 65538", "1..65536"),
    (("entries = 1024 ", "entries = 2097152 "), "tlb.'entries' = 2097152", "1..1048576"),
    (("psc_entries = 32", "psc_entries = 1048577"), "tlb.'psc_entries'", "1..1048576"),
    (("clock_mhz = 3400", "clock_mhz = 1"), "'clock_mhz' = 1", "100..10000"),
])
def test_engine_limits_are_named_with_their_bound(tmp_path, replace, field, limit):
    text = _text(replace, ("smt = 2", "smt = 1")) if "cpus" in replace[0] else _text(replace)
    msg = _load(tmp_path, text)
    assert field in msg and limit in msg


@pytest.mark.parametrize("replace, field", [
    (("walk_cycles = 120", f"walk_cycles = {2**44 + 1}"), "costs.'walk_cycles'"),
    # 10^13 ns at 3.4 GHz is 3.4 * 10^13 cycles: over 2^44 only once converted
    (("invlpg_ns = 100", f"invlpg_ns = {10**13}"), "costs.'invlpg_ns'"),
    (("exit_latency_us = 33", f"exit_latency_us = {10**10}"), "cstates[2].'exit_latency_us'"),
])
def test_times_beyond_2_44_cycles(tmp_path, replace, field):
    msg = _load(tmp_path, _text(replace))
    assert field in msg and "2^44" in msg


def test_the_tlbs_of_every_cpu_are_bounded_together(tmp_path):
    # 65536 CPUs x 1056 entries each: 69 million list slots in the python engine
    msg = _load(tmp_path, _text(("cpus = 8 ", "cpus = 65536 "), ("smt = 2", "smt = 1")))
    assert "65536 x 1056" in msg and str(profiles.MAX_CACHE_ENTRIES) in msg


def test_a_vcpu_that_never_runs_is_refused(tmp_path):
    # 95% preemption of 10 us windows leaves 0.5 us between them: the run
    # (both engines) never ended and its window list grew to gigabytes
    msg = _load(tmp_path, _text(extra=VIRT.format(95, 10)))
    assert "virt.'preempt_us' = 10" in msg and "0.526 us" in msg and "19 or more" in msg
    assert profiles.load(_write(tmp_path, _text(extra=VIRT.format(95, 19)))).virt


def _write(tmp_path, text):
    path = tmp_path / "ok.toml"
    path.write_text(text)
    return path


def test_names_with_control_characters_are_refused(tmp_path):
    msg = _load(tmp_path, _text(('name = "haswell-4c"', 'name = "box\\u001b[31m"')))
    assert "'name'" in msg and "control characters" in msg


def test_limits_are_the_native_engines():
    if not native.available():
        pytest.skip("native engine not built")
    abi = native._native.ABI
    assert profiles.MAX_CPUS == abi["MAX_CPUS"]
    assert profiles.MAX_CYCLES == abi["MAX_VALUE"]
    assert tp.workloads.MAX_OP_VALUE == abi["MAX_VALUE"]


def test_a_profile_at_the_limits_runs_on_both_engines(tmp_path):
    """What the loader accepts, the native engine accepts too."""
    text = _text(("cpus = 8 ", "cpus = 8192 "), ("smt = 2", "smt = 1"),
                 ("entries = 1024 ", "entries = 992 "), ("psc_entries = 32", "psc_entries = 32"),
                 ("walk_cycles = 120", f"walk_cycles = {2**44}"))
    prof = profiles.load(_write(tmp_path, text))
    w = tp.workloads.madvise_dontneed(threads=2, iterations=2)
    engines = ["python"] + (["native"] if native.available() else [])
    results = [tp.run(w, prof, seed=1, engine=e) for e in engines]
    assert all(r.metrics == results[0].metrics for r in results)


def test_profiles_are_read_only():
    prof = tp.profiles.get("kvm-guest-16")
    digest = prof.digest
    for change in (lambda: setattr(prof, "cpus", 2),
                   lambda: delattr(prof, "cpus"),
                   lambda: setattr(prof.cstates[0], "exit_latency", 0)):
        with pytest.raises(AttributeError, match="read-only"):
            change()
    for change in (lambda: prof.costs.__setitem__("ipi_send", 0),
                   lambda: prof.virt.__setitem__("preempt_percent", 0),
                   lambda: prof.raw["costs"].__setitem__("ipi_send_cycles", 0),
                   lambda: prof.raw["cstates"].append({})):
        with pytest.raises((TypeError, AttributeError)):
            change()
    assert prof.digest == digest and tp.profiles.get("kvm-guest-16") is prof
    # still plain data to read: JSON, copies, ** (the host backend copies a template)
    raw = json.loads(json.dumps(prof.raw))
    assert raw["topology"]["cpus"] == 16 and dict(**prof.costs)["ipi_send"] > 0
    copy.deepcopy(prof.raw)["costs"]["ipi_send"] = 0
    assert prof.costs["ipi_send"] > 0
    # a changed machine is a new, validated profile
    bigger = prof.with_changes(topology={"cpus": 32})
    assert bigger.cpus == 32 and prof.cpus == 16 and bigger.digest != digest
