"""Starting the C runner (`tlbperf-runner`, built from runner.c next to
this file) and reading what it prints.

One process per run. Ctrl-C reaches the runner with the terminal's SIGINT
(same process group): it prints the windows it finished and exits at once.
Here the KeyboardInterrupt is passed on after the runner has gone, within
a second (it is killed if it has not). A runner that outlives its bound is
killed by its own alarm(), and by this side's timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import HostError, HostUnavailable

NAME = "tlbperf-runner"
SLACK_S = 30                  # runner.c WATCHDOG_SLACK_S
BOUNDS = {"window_ms": (1, 10000), "warmup_ms": (0, 60000), "windows": (1, 120),
          "file_mb": (1, 128)}   # runner.c MAX_*


def path() -> Path:
    return Path(__file__).with_name(NAME)


def unavailable() -> str | None:
    """Why the host backend cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"the host backend measures a Linux kernel; this is {sys.platform}"
    exe = path()
    if not exe.exists():
        return (f"the host runner was not built in this installation ({exe} is missing: no "
                f"C compiler when pytest-tlbperf was installed?); reinstall with gcc or "
                f"clang present")
    if not os.access(exe, os.X_OK):
        return f"the host runner {exe} is not executable"
    if not hasattr(os, "sched_setaffinity"):
        return "this Python has no os.sched_setaffinity: threads cannot be pinned"
    return None


def require() -> Path:
    reason = unavailable()
    if reason:
        raise HostUnavailable(reason)
    return path()


def execute(args, timeout_s: float, what: str) -> dict:
    """Run `tlbperf-runner ARGS`, return its JSON. Ctrl-C: the runner stops
    (it got the same SIGINT), then KeyboardInterrupt propagates."""
    exe = require()
    proc = subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except KeyboardInterrupt:
        _stop(proc)
        raise
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise HostError(f"{what}: the runner did not finish within {timeout_s:.0f} s and "
                        f"was killed") from None
    code = proc.returncode
    if code == 130:
        # SIGINT that did not reach this process (sent to the runner alone)
        raise KeyboardInterrupt
    if code < 0:
        sig = signal.Signals(-code).name
        extra = " (its watchdog: the run outlived its bound)" if -code == signal.SIGALRM else ""
        raise HostError(f"{what}: the runner was killed by {sig}{extra}")
    if code != 0:
        message = err.strip().removeprefix("tlbperf-runner: ") or f"exit status {code}"
        raise HostError(f"{what}: {message}")
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise HostError(f"{what}: the runner printed something that is not JSON ({exc})") \
            from None


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=1)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run_workload(workload, cpus, partners, warmup_ms, window_ms, windows, file_mb=16,
                 tmpdir=None, perf=True) -> dict:
    args = [workload, "--cpus", ",".join(map(str, cpus)), "--warmup-ms", warmup_ms,
            "--window-ms", window_ms, "--windows", windows, "--file-mb", file_mb]
    if partners:
        args += ["--partners", ",".join(map(str, partners))]
    if tmpdir:
        args += ["--tmpdir", tmpdir]
    if not perf:
        args.append("--no-perf")
    bound = (warmup_ms + windows * window_ms) / 1000 + SLACK_S + 5
    return execute(args, bound, workload)


def costs(cpus) -> dict:
    """The runner's cost measurements on cpus[0] (and cpus[1] for the IPI)."""
    return execute(["costs", "--cpus", ",".join(map(str, cpus[:2]))], 150, "cost measurement")


def cpuid():
    """The runner's CPUID report, or None where the runner cannot run."""
    if unavailable():
        return None
    try:
        return execute(["cpuid"], 10, "cpuid")
    except HostError:
        return None
