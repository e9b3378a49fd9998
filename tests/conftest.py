"""Shared helpers: policies that set one knob each (so a test names the knob
it is about), and micro workloads built op by op."""

import pytest
# A session imports scipy.special only when its statistics need it (issue 16),
# and pytester's in-process runs drop the modules a run imported: scipy.special
# brings numpy.fft, which cannot be imported twice in one process. Once, here.
import scipy.special  # noqa: F401

import pytest_tlbperf as tp

pytest_plugins = ["pytester"]


class Eager(tp.Policy):
    """The kernel these knob tests were written for: mm_cpumask updated at
    every switch and page tables freed as soon as the flush returned (before
    v6.14's lazy mask and v6.15's RCU table freeing, which
    tests/test_kernel_paths_v615.py covers)."""
    cpumask_update = "eager"
    table_free = "after_flush"


class V414(Eager):
    """v4.14-rc1 (94b1b03b519b): lazy CPUs leave mm_cpumask and get no IPIs."""
    lazy_cpumask = "clear"
    flush_lazy_cpus = "never"


class LazyFreed(Eager):
    lazy_cpumask = "keep"
    flush_lazy_cpus = "freed_tables"
    # idle CPUs stay lazily on the mm even in states that flush the TLB, so
    # the flush IPIs they get (seed 001's cost) are what the tests compare
    idle_leave_mm = "never"


class LazyAlways(Eager):
    lazy_cpumask = "keep"
    flush_lazy_cpus = "always"
    idle_leave_mm = "never"


class DropLazy(Eager):
    lazy_tlb = "switch_to_init_mm"


class Hazard(tp.Policy):
    lazy_mm_ref = "hazard_pointer"


class Shootdown(tp.Policy):
    lazy_mm_ref = "shootdown"


class NoLazyRef(tp.Policy):
    lazy_mm_ref = "none"


class NoPV(tp.Policy):
    pv_flush = False


@pytest.fixture
def micro():
    """micro(build) -> a custom workload from `build(b, profile)`."""
    def make(build, name="micro"):
        return tp.workloads.custom(name, lambda b, profile: build(b, profile))
    return make
