"""Which cells a review runs: candidates and reference policies, and every
profile on which a candidate's knobs differ from the baseline's
(`pytest_tlbperf.selection`)."""

import pytest

# see tests/test_plugin.py: numpy must not be imported twice in one process
import pytest_tlbperf.reports.html  # noqa: F401
import pytest_tlbperf.reports.report  # noqa: F401,E402
from pytest_tlbperf import selection
from pytest_tlbperf.userio import printable

# The README's "Mirror your patch as a policy" example, as printed there.
AMD_RFC = '''
"""RFC: drop lazy TLB mode on AMD only (seed 000's two options, combined).

On AMD, where a speculative walk through a freed page table hangs, switch to
init_mm in enter_lazy_tlb() (seed 001's proposal); everywhere else keep
today's lazy mode, whose lazy CPUs get an IPI when page tables are freed.
"""
import pytest_tlbperf as tp


class DropLazyOnAmd(tp.Policy):
    def configure(self, profile):
        if profile.vendor == "amd":
            return {"lazy_tlb": "switch_to_init_mm"}
        return None
'''


def test_the_amd_only_rfc_surfaces_zen1_epycs_cr3_writes_without_naming_it(pytester):
    """The README's review command, narrowed to the context-switch suite:
    that suite runs on skylake-2s, where the RFC changes nothing. Its knobs
    differ from mainline's only on zen1-epyc, so the suite runs there too,
    and dropping lazy mode shows up as more CR3 writes -- every kworker
    switch becomes one (seed 000: what lazy mode saves) -- and fails the run
    under --tlbperf-fail-on=regression, with no profile named anywhere."""
    pytester.makepyfile(pcid_drop_lazy_amd=AMD_RFC)
    result = pytester.runpytest("--tlbperf", "--pyargs", "pytest_tlbperf.suites",
                                "--tlbperf-policy", "pcid_drop_lazy_amd.py",
                                "-k", "context_switch", "--tlbperf-max-rounds", "10",
                                "--tlbperf-fail-on=regression", "-v", "-p", "no:randomly")
    result.stdout.fnmatch_lines([
        "*test_context_switch[[]skylake-2s-mainline[]] PASSED*",
        "*test_context_switch[[]skylake-2s-pcid_drop_lazy_amd.py[]] PASSED*",
        "*test_context_switch[[]zen1-epyc-mainline[]] PASSED*",
        "*test_context_switch[[]zen1-epyc-pcid_drop_lazy_amd.py[]] PASSED*"])
    out = result.stdout.str()
    assert "pcid_drop_lazy_amd.py's knobs differ from mainline's on zen1-epyc (lazy_tlb " \
           "stay -> switch_to_init_mm); also run there: test_context_switch." \
           in " ".join(out.split())
    result.stdout.fnmatch_lines([
        "candidate pcid_drop_lazy_amd.py vs baseline mainline: ? regression*",
        "  REGRESSION   test_context_switch[[]zen1-epyc[]] cr3_writes +*"])
    # on skylake-2s the knobs are mainline's: the same machine, the same runs
    skylake = out[out.index("test_context_switch[skylake-2s]\ncr3_writes"):]
    assert skylake.splitlines()[5].split()[4] == "identical"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.stdout.lines[-1].startswith("tlbperf: FAILED: ")
    assert "test_context_switch[zen1-epyc] cr3_writes" in " ".join(
        line for line in result.stdout.lines if line.startswith("tlbperf: FAILED"))


SMALL = '''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["skylake-2s"], metrics=["cr3_writes"])
def test_switch(tlbperf):
    tlbperf(tp.workloads.context_switch(cpus=4, window_us=200))

@pytest.mark.tlbperf(profiles=["kvm-guest-16"], metrics=["ipis"])
def test_guest(tlbperf):
    tlbperf(tp.workloads.vm_overcommit(threads=4, iterations=5))
'''
FAST = ["--tlbperf", "--tlbperf-policy", "pcid_drop_lazy_amd.py", "--tlbperf-rounds", "2",
        "--tlbperf-max-rounds", "2", "-v", "-p", "no:randomly"]


@pytest.fixture
def small(pytester):
    pytester.makepyfile(pcid_drop_lazy_amd=AMD_RFC, test_small=SMALL)
    return pytester


def _ids(result):
    return {line.split("::")[1].split(" ")[0] for line in result.stdout.lines
            if "::" in line and ("PASSED" in line or "SKIPPED" in line)}


def test_a_guest_test_is_not_run_on_bare_metal_and_the_summary_says_how_to(small):
    result = small.runpytest(*FAST)
    assert _ids(result) == {
        "test_switch[skylake-2s-mainline]", "test_switch[skylake-2s-pcid_drop_lazy_amd.py]",
        "test_switch[zen1-epyc-mainline]", "test_switch[zen1-epyc-pcid_drop_lazy_amd.py]",
        "test_guest[kvm-guest-16-mainline]", "test_guest[kvm-guest-16-pcid_drop_lazy_amd.py]"}
    text = " ".join(result.stdout.str().split())
    assert ("also run there: test_switch; left out: test_guest (zen1-epyc is bare metal and "
            "the test asks about guests) -- add with --tlbperf-extra-profile zen1-epyc.") in text
    added = small.runpytest(*FAST, "--tlbperf-extra-profile", "zen1-epyc")
    assert "test_guest[zen1-epyc-pcid_drop_lazy_amd.py]" in _ids(added)
    assert "left out" not in added.stdout.str()


def test_touched_profiles_can_be_listed_only(small):
    small.makeini("[pytest]\ntlbperf_touched_profiles = list\n")
    result = small.runpytest(*FAST)
    assert not any("zen1-epyc" in i for i in _ids(result))
    assert "left out: test_guest, test_switch (--tlbperf-touched-profiles=list) -- add with " \
           "--tlbperf-extra-profile zen1-epyc." in " ".join(result.stdout.str().split())
    named = small.runpytest(*FAST, "--tlbperf-profile", "haswell-4c")
    assert "(--tlbperf-profile chose the profiles)" in " ".join(named.stdout.str().split())
    bad = small.runpytest(*FAST, "--tlbperf-touched-profiles", "sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_a_change_made_everywhere_adds_no_profile(pytester):
    """A policy whose knobs differ the same way on every machine is already
    shown by the test's own profiles."""
    pytester.makepyfile(test_small=SMALL, drop='''
import pytest_tlbperf as tp

class DropLazy(tp.Policy):
    lazy_tlb = "switch_to_init_mm"
''')
    result = pytester.runpytest(*FAST[:2], "drop.py", *FAST[3:])
    assert len(_ids(result)) == 4 and not any("zen1-epyc" in i for i in _ids(result))
    assert "knobs differ" not in result.stdout.str()


def test_touched_compares_effective_knobs_per_profile():
    roles = selection.Roles("mainline", ["amd_only"])
    entries = selection.touched(["skylake-2s"], roles, selection.universe())
    # on AMD it keeps mainline's lazy_cpumask and IPIs lazy CPUs always
    # (revert_to_ipi's knobs); on the INVLPGB parts it also has no broadcast
    # flush, the same on milan-36c and genoa-2s: the smaller one runs
    assert {e["profile"]: e["status"] for e in entries} == {
        "zen1-epyc": selection.ADDED, "milan-36c": selection.ADDED,
        "genoa-2s": selection.LEFT_OUT}
    by = {e["profile"]: e for e in entries}
    assert "milan-36c, which runs" in by["genoa-2s"]["why"]
    knobs = by["zen1-epyc"]["knobs"]
    assert knobs["flush_lazy_cpus"] == ["freed_tables", "always"] and "lazy_cpumask" not in knobs
    assert "broadcast_flush" not in knobs
    assert by["milan-36c"]["knobs"]["broadcast_flush"] == ["invlpgb", "none"]
    # a test that already runs zen1-epyc and milan-36c shows the AMD changes itself
    assert selection.touched(["zen1-epyc", "milan-36c", "skylake-2s"], roles,
                             selection.universe()) == []
    # kvm-guest-16 differs the way skylake-2s does (lazy_pcid's knobs): nothing to add
    assert all(e["profile"] != "kvm-guest-16" for e in entries)


def test_roles_without_candidates_review_every_builtin():
    every = selection.Roles("mainline")
    assert every.reviewing_all and "mainline" not in every.candidates
    assert every.role("lazy_pcid") == selection.CANDIDATE
    mine = selection.Roles("mainline", ["my.py"], ["all"])
    assert mine.role("my.py") == selection.CANDIDATE and mine.role("mainline") == \
        selection.BASELINE
    assert mine.role("lazy_pcid") == selection.REFERENCE
    assert "mainline" not in mine.references and "my.py" not in mine.references
    saved = selection.Roles.from_options({"baseline": "mainline", "policies": ["my.py"]})
    assert saved.role("lazy_pcid") == selection.REFERENCE      # a run saved before roles


def test_an_added_profile_the_workload_does_not_fit_is_skipped_and_said(pytester):
    """A profile added for a candidate's knobs that the test's workload
    cannot run on (6 threads, haswell-4c has 4 cores) is skipped, not
    failed, and the summary lists it as left out."""
    pytester.makepyfile(test_six='''
import pytest
import pytest_tlbperf as tp

@pytest.mark.tlbperf(profiles=["skylake-2s"], metrics=["madvise_ns"])
def test_six(tlbperf):
    tlbperf(tp.workloads.madvise_dontneed(threads=6, iterations=5))
''', client='''
import pytest_tlbperf as tp

class ClientOnly(tp.Policy):
    def configure(self, profile):
        return {"flush_ceiling": 1} if profile.cpus <= 8 else None
''')
    result = pytester.runpytest("--tlbperf", "--tlbperf-policy", "client.py",
                                "--tlbperf-rounds", "2", "--tlbperf-max-rounds", "2", "-rs")
    result.assert_outcomes(passed=2, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    text = " ".join(result.stdout.str().split())
    assert "the workload does not fit haswell-4c: madvise_dontneed: 6 threads" in text
    assert "left out: test_six (the workload does not fit haswell-4c (skipped))" in text


def test_a_candidate_named_with_an_escape_stays_a_candidate_in_its_cells():
    """Cells record a policy by its printable name; a file named with an
    ANSI escape was read as a reference there (and left the verdict)."""
    roles = selection.Roles("mainline", candidates=["evil\x1b[31m.py"])
    assert roles.role(printable("evil\x1b[31m.py")) == selection.CANDIDATE
    assert roles.role("evil\x1b[31m.py") == selection.CANDIDATE
    assert roles.role("mainline") == selection.BASELINE
    assert roles.role("async_flush") == selection.REFERENCE
