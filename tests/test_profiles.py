"""Profiles are data: the built-ins load, bad files fail naming the file
and the field."""

from importlib import resources

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf.errors import ProfileError

BUILTINS = {"haswell-4c", "skylake-2s", "zen1-epyc", "kvm-guest-16", "laptop-8c",
            "milan-36c", "genoa-2s"}


def test_builtin_names_are_the_contract():
    assert set(tp.profiles.names()) == BUILTINS


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_profiles_load_and_convert_to_cycles(name):
    p = tp.profiles.get(name)
    assert p.name == name
    assert p.cpus == p.sockets * p.cores_per_socket * p.smt
    # INVLPG ~100 ns everywhere (Documentation/x86/tlb.rst): cycles follow the clock
    assert p.costs["invlpg"] == 100 * p.clock_mhz // 1000


def test_design_facts():
    sky = tp.profiles.get("skylake-2s")
    assert sky.cpus == 112 and sky.sockets == 2 and sky.smt == 2
    assert [(c.name, sky.ns_from_cycles(c.exit_latency) // 1000) for c in sky.cstates] == \
        [("C1", 2), ("C1E", 10), ("C6", 133)]
    assert tp.profiles.get("zen1-epyc").freed_table_walk == "hang"
    assert sky.freed_table_walk == "silent"
    laptop = tp.profiles.get("laptop-8c")
    assert laptop.cstates[-1].name == "C10"
    assert laptop.ns_from_cycles(laptop.cstates[-1].exit_latency) == 890_000
    assert tp.profiles.get("kvm-guest-16").virt["pv_tlb_flush"] is True
    # same core, same L3 (the whole socket on Intel), remote; on Zen a CCX is 4 cores
    assert sky.distance(0, 56) == 0 and sky.distance(0, 1) == 1 and sky.distance(0, 28) == 3
    zen = tp.profiles.get("zen1-epyc")
    assert zen.distance(0, 3) == 1 and zen.distance(0, 4) == 2 and zen.distance(0, 8) == 3
    # van Riel's Milan: 36 cores, 72 CPUs, INVLPGB of up to 8 pages (CPUID of EPYC 7713)
    milan = tp.profiles.get("milan-36c")
    assert (milan.cores, milan.cpus, milan.invlpgb, milan.invlpgb_max_pages) == (36, 72, True, 8)
    genoa = tp.profiles.get("genoa-2s")
    assert (genoa.sockets, genoa.cpus, genoa.invlpgb) == (2, 384, True)
    assert genoa.distance(0, 7) == 1 and genoa.distance(0, 8) == 2 and genoa.distance(0, 96) == 3


def _write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def _base_text(**replace):
    text = (resources.files("pytest_tlbperf.profiles") / "haswell-4c.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_user_profile_by_path(tmp_path):
    path = _write(tmp_path, _base_text(**{'name = "haswell-4c"': 'name = "my-box"'}))
    p = tp.profiles.get(str(path))
    assert p.name == "my-box"
    r = tp.run(tp.workloads.madvise_dontneed(iterations=5), str(path))
    assert r.profile == "my-box"


@pytest.mark.parametrize("replace, field", [
    ({"syscall_cycles = ": "syscal_cycles = 1\nsyscall_cycles = "}, "costs.'syscal_cycles'"),
    ({"exit_latency_us = 33": "exit_latency_us = -33"}, "cstates[2].'exit_latency_us'"),
    ({"cpus = 8 ": "cpus = 0 "}, "topology.'cpus'"),
    ({"smt = 2": "smt = 3"}, "topology.'smt'"),
    ({'vendor = "intel"': 'vendor = "via"'}, "'vendor'"),
    ({'freed_table_walk = "silent"': 'freed_table_walk = "boom"'},
     "speculation.'freed_table_walk'"),
    ({"socket_ns = ": "socket_ns = 110.5\n# "}, "ipi.'socket_ns'"),
])
def test_bad_profile_names_file_and_field(tmp_path, replace, field):
    path = _write(tmp_path, _base_text(**replace))
    with pytest.raises(ProfileError) as exc:
        tp.profiles.load(path)
    assert str(path) in str(exc.value)
    assert field in str(exc.value)


def test_missing_table_and_bad_toml(tmp_path):
    text = _base_text()
    cut = text.index("[ipi]")
    path = _write(tmp_path, text[:cut] + text[text.index("[cache_line]"):])
    with pytest.raises(ProfileError, match=r"missing table \[ipi\]"):
        tp.profiles.load(path)
    path.write_text("name = [")
    with pytest.raises(ProfileError, match="not valid TOML"):
        tp.profiles.load(path)


def test_unknown_profile_lists_the_builtins():
    with pytest.raises(ProfileError) as exc:
        tp.profiles.get("skylake-8s")
    assert "skylake-8s" in str(exc.value) and "zen1-epyc" in str(exc.value)


def test_preempted_vcpus_need_a_preemption_length():
    kvm = tp.profiles.get("kvm-guest-16")
    with pytest.raises(ProfileError, match=r"virt.'preempt_us' must be positive"):
        kvm.with_changes(virt={"preempt_us": 0})
    assert kvm.with_changes(virt={"preempt_us": 0, "preempt_percent": 0}).virt["preempt"] == 0


def test_with_changes_revalidates():
    big = tp.profiles.get("skylake-2s").with_changes(name="skylake-1024",
                                                     topology={"cpus": 1024, "sockets": 16})
    assert big.cpus == 1024 and big.name == "skylake-1024"
    with pytest.raises(ProfileError, match="sockets"):
        tp.profiles.get("skylake-2s").with_changes(topology={"sockets": 3})
