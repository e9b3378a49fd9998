"""The C extension only; every other piece of metadata is in pyproject.toml.

The native engine is optional: where no C compiler exists the build of the
extension fails, `pip install` still succeeds, and `engine="auto"` falls back
to the python engine with one warning (DESIGN §3.7).

Its sources are one file per kernel file modeled (DESIGN §2), sharing
machine.h; listed by hand so that a stray file in the folder is not built.
"""

from setuptools import Extension, setup

NATIVE = "pytest_tlbperf/engine/_native/"
SOURCES = ["core.c", "hw.c", "tlb.c", "smp.c", "sched.c", "idle.c", "mm.c", "kvm.c", "task.c",
           "oracle.c", "module.c"]

setup(ext_modules=[
    Extension("pytest_tlbperf.engine._native", [NATIVE + f for f in SOURCES],
              depends=[NATIVE + "machine.h"], optional=True),
])
