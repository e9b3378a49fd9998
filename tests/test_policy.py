"""Policies: knobs validated where they are written, resolved per profile,
found by name, module:Class or file path."""

import pytest

import pytest_tlbperf as tp
from pytest_tlbperf.errors import PolicyError
from pytest_tlbperf.policy import KNOB_NAMES


def test_every_design_knob_exists_with_mainline_defaults():
    assert set(KNOB_NAMES) == {"lazy_tlb", "lazy_cpumask", "flush_lazy_cpus", "flush_local",
                               "flush_wait", "lazy_mm_ref", "pv_flush", "idle_leave_mm",
                               "flush_ceiling", "switch_mm_barrier", "read_mm_tlb_gen",
                               "init_mm_asid", "pti", "lazy_mm_scan", "lazy_mm_release",
                               "cpumask_update", "broadcast_flush", "tlbsync", "lru_drain",
                               "table_free"}
    knobs = tp.Policy().knobs(tp.profiles.get("skylake-2s"))
    assert knobs.flush_lazy_cpus == "freed_tables" and knobs.flush_ceiling == 33
    assert knobs.read_mm_tlb_gen == "when_needed"
    assert (knobs.cpumask_update, knobs.lru_drain, knobs.table_free) == ("lazy", "batch_full",
                                                                        "rcu")
    assert tp.policies.get("mainline")().knobs(tp.profiles.get("skylake-2s")) == knobs
    # on a part with INVLPGB, Policy's defaults are today's kernel there too
    milan = tp.profiles.get("milan-36c")
    assert tp.Policy().knobs(milan).broadcast_flush == "invlpgb"
    assert tp.policies.get("mainline")().knobs(milan) == tp.Policy().knobs(milan)


def test_bad_knob_fails_at_class_creation_naming_it():
    with pytest.raises(PolicyError, match=r"flush_lazy_cpus='sometimes' is not one of"):
        class Bad(tp.Policy):
            flush_lazy_cpus = "sometimes"
    with pytest.raises(PolicyError, match="flush_ceiling"):
        class Bad2(tp.Policy):
            flush_ceiling = -1
    with pytest.raises(PolicyError, match="known_violations"):
        class Bad3(tp.Policy):
            known_violations = {"stale_tbl"}


def test_configure_overrides_per_profile():
    class AmdOnly(tp.Policy):
        lazy_cpumask = "clear"
        flush_lazy_cpus = "never"

        def configure(self, profile):
            if profile.vendor == "amd":
                return {"lazy_cpumask": "keep", "flush_lazy_cpus": "freed_tables"}

    pol = AmdOnly()
    assert pol.knobs(tp.profiles.get("zen1-epyc")).lazy_cpumask == "keep"
    assert pol.knobs(tp.profiles.get("skylake-2s")).lazy_cpumask == "clear"

    class Broken(tp.Policy):
        def configure(self, profile):
            return {"lazy_tbl": "stay"}
    with pytest.raises(PolicyError, match="lazy_tbl"):
        Broken().knobs(tp.profiles.get("zen1-epyc"))


def test_registry_and_resolution(tmp_path):
    assert "mainline" in tp.policies.names()
    assert tp.policies.get("mainline").policy_name() == "mainline"
    with pytest.raises(PolicyError, match="unknown policy 'mainlne'"):
        tp.policies.get("mainlne")
    assert type(tp.policies.resolve("pytest_tlbperf.policies.mainline:Mainline")).__name__ \
        == "Mainline"
    path = tmp_path / "my_rfc.py"
    path.write_text("import pytest_tlbperf as tp\n"
                    "class MyRfc(tp.Policy):\n"
                    "    '''Send flush IPIs to lazy CPUs again.'''\n"
                    "    flush_lazy_cpus = 'always'\n")
    pol = tp.policies.resolve(str(path))
    assert pol.flush_lazy_cpus == "always"
    assert type(tp.policies.resolve(f"{path}:MyRfc")).__name__ == "MyRfc"
    with pytest.raises(PolicyError, match="no Policy subclass named 'Nope'"):
        tp.policies.resolve(f"{path}:Nope")


def test_broken_policy_file_is_named(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import pytest_tlbperf as tp\nclass X(tp.Policy):\n    lazy_tlb = 'sleep'\n")
    with pytest.raises(PolicyError) as exc:
        tp.policies.resolve(str(path))
    assert "lazy_tlb='sleep'" in str(exc.value)
    path.write_text("def policy(:\n")
    with pytest.raises(PolicyError, match=r"broken\.py failed to import: SyntaxError"):
        tp.policies.resolve(str(path))
    with pytest.raises(PolicyError, match="does not exist"):
        tp.policies.resolve(str(tmp_path / "missing.py"))


def test_hook_selects_python_engine_and_native_refuses_it():
    class Hooked(tp.Policy):
        def should_flush_cpu(self, cpu, info):
            return info.default
    assert Hooked().has_python_hooks() and not tp.Policy().has_python_hooks()
    r = tp.run(tp.workloads.madvise_dontneed(iterations=3), "haswell-4c", Hooked)
    assert r.engine == "python"
    with pytest.raises(tp.EngineUnavailable):
        tp.run(tp.workloads.madvise_dontneed(iterations=3), "haswell-4c", Hooked,
               engine="native")
