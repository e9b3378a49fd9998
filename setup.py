"""The C parts only; every other piece of metadata is in pyproject.toml.

Both are optional: where no C compiler exists the build of each fails,
`pip install` still succeeds, `engine="auto"` falls back to the python
engine with one warning (DESIGN §3.7), and the host backend says it was
not built (DESIGN §9).

- `pytest_tlbperf.engine._native`: the native engine, an extension module.
  Its sources are one file per kernel file modeled (DESIGN §2), sharing
  machine.h; listed by hand so that a stray file in the folder is not built.
- `pytest_tlbperf/host/tlbperf-runner`: the host backend's runner, a small
  executable rather than an extension: it runs in its own process, so
  Ctrl-C, a crash or its pinned threads never touch pytest (see the head of
  pytest_tlbperf/host/runner.c).
"""

import os
import shlex
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

RUNNER_SRC = "pytest_tlbperf/host/runner.c"
RUNNER_DIR = "pytest_tlbperf/host"
RUNNER = "tlbperf-runner"


class build_ext_and_runner(build_ext):
    """build_ext, then link the host runner next to the package's host/
    modules: in the build tree (wheels), and in the source tree too for an
    in-place or editable build, as setuptools does for extensions."""

    def run(self):
        super().run()
        try:
            self._build_runner()
        except Exception as exc:        # noqa: BLE001 - optional, like the extension
            self.warn(f"the host runner ({RUNNER}) was not built: {exc}; the host backend "
                      f"will say so")

    def _build_runner(self):
        if self.compiler is None or isinstance(self.compiler, str):
            from distutils.ccompiler import new_compiler
            from distutils.sysconfig import customize_compiler
            self.compiler = new_compiler(compiler=self.compiler, force=self.force)
            customize_compiler(self.compiler)
        objects = self.compiler.compile(
            [RUNNER_SRC], output_dir=self.build_temp,
            extra_postargs=["-O2", "-pthread", "-std=gnu11", "-Wall"])
        out_dir = os.path.join(self.build_lib, RUNNER_DIR)
        # distutils applies $LDFLAGS to shared objects only; an executable
        # built with $CFLAGS such as -fsanitize=address needs them too
        self.compiler.link_executable(objects, RUNNER, output_dir=out_dir,
                                      extra_postargs=["-pthread"] +
                                      shlex.split(os.environ.get("LDFLAGS", "")))
        if self.inplace or getattr(self, "editable_mode", False):
            shutil.copy2(os.path.join(out_dir, RUNNER), os.path.join(RUNNER_DIR, RUNNER))

    def get_outputs(self):
        return super().get_outputs() + [os.path.join(self.build_lib, RUNNER_DIR, RUNNER)]


NATIVE = "pytest_tlbperf/engine/_native/"
SOURCES = ["core.c", "hw.c", "tlb.c", "smp.c", "sched.c", "idle.c", "mm.c", "kvm.c", "task.c",
           "oracle.c", "module.c"]

setup(
    ext_modules=[
        Extension("pytest_tlbperf.engine._native", [NATIVE + f for f in SOURCES],
                  depends=[NATIVE + "machine.h"], optional=True),
    ],
    cmdclass={"build_ext": build_ext_and_runner},
)
