"""The C extension only; every other piece of metadata is in pyproject.toml.

The native engine is optional: where no C compiler exists the build of the
extension fails, `pip install` still succeeds, and `engine="auto"` falls back
to the python engine with one warning (DESIGN §3.7).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("pytest_tlbperf.engine._native", ["pytest_tlbperf/engine/_native.c"],
              optional=True),
])
