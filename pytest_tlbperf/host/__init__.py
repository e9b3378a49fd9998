"""The host backend (DESIGN §9): the model's workloads on the running
kernel, through a small C runner built with the package.

    from pytest_tlbperf import host
    config = host.HostConfig(cpus="0-1", window_ms=1000, warmup_ms=1000)
    run = host.run(tp.workloads.madvise_dontneed(threads=2), windows=5, config=config)
    run.samples[0]["metrics"]["madvise_ns"], run.counters["tlb_misses"]

Modules: `runner.c` (the workloads, will-it-scale's sampling), `runner.py`
(starting it), `forms.py` (which workloads have a host form, CPU placement,
window -> metrics), `procfs.py` and `sysfs.py` (parsers), `identity.py`
(the kernel's identity and the comparison of two), `report.py` (terminal
lines), `profile.py` (`tlbperf profile --from-host`), `checkmodel.py`
(`tlbperf check-model`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import HostError, HostUnavailable
from . import forms, identity, procfs, runner, sysfs
from .forms import FORMS, NoHostForm, TooFewCpus

__all__ = ["HostConfig", "HostRun", "run", "available", "unavailable", "FORMS", "HostError",
           "HostUnavailable", "NoHostForm", "TooFewCpus", "machine_identity"]

def unavailable():
    """Why the host backend cannot run here, or None."""
    return runner.unavailable()


def available() -> bool:
    return runner.unavailable() is None


def _bounded(name, value, what):
    lo, hi = runner.BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise HostError(f"{what}: {value!r} is not a whole number") from None
    if value < lo or value > hi:
        if name == "window_ms" and value <= 0:
            raise HostError(f"{what}: a window of {value} ms measures nothing; give at "
                            f"least {lo} ms (will-it-scale samples every 1000 ms)")
        raise HostError(f"{what}: {value} is outside {lo}..{hi}")
    return value


class HostConfig:
    """Where and how long host runs measure. Validated on construction:

    cpus: the CPUs runs may use, a cpulist ("0-3,8") or a list; each must
        be online and in this process's affinity mask (taskset, cgroup
        cpuset). Default: all such CPUs.
    window_ms: one window, one sample (1..10000; default 1000, as
        will-it-scale). warmup_ms: before the first window (0..60000).
    file_mb: tlb_flush1/3's file per thread (1..128 MiB; default 16).
    tmpdir: where those files live (default $TMPDIR or /tmp), as
        will-it-scale's /tmp/willitscale.XXXXXX.
    perf: open perf counters (dTLB misses, page faults) where permitted.
    root: the directory standing for / (tests point it at sample trees)."""

    __slots__ = ("cpus", "ordered", "window_ms", "warmup_ms", "file_mb", "tmpdir", "perf",
                 "root")

    def __init__(self, cpus=None, window_ms=1000, warmup_ms=1000, file_mb=16, tmpdir=None,
                 perf=True, root="/"):
        self.root = root
        self.window_ms = _bounded("window_ms", window_ms, "host window (ms)")
        self.warmup_ms = _bounded("warmup_ms", warmup_ms, "host warm-up (ms)")
        self.file_mb = _bounded("file_mb", file_mb, "tlb_flush1/3 file size (MiB)")
        self.perf = bool(perf)
        if tmpdir is not None and not Path(tmpdir).is_dir():
            raise HostError(f"host tmpdir {tmpdir}: not a directory")
        self.tmpdir = str(tmpdir) if tmpdir is not None else None
        self.cpus, self.ordered = self._usable(cpus)

    def _usable(self, cpus):
        online = sysfs.online_cpus(self.root)
        allowed = set(online)
        if str(self.root) == "/" and hasattr(os, "sched_getaffinity"):
            allowed &= os.sched_getaffinity(0)
        if cpus is None or cpus == "" or cpus == []:
            if not allowed:
                raise HostError("no online CPU is in this process's affinity mask")
            return sorted(allowed), False
        # keep the order the user wrote: "2,0" pins thread 0 to CPU 2
        wanted = _in_order(cpus) if isinstance(cpus, str) else list(cpus)
        seen = set()
        for cpu in wanted:
            if cpu in seen:
                raise HostError(f"host CPUs: CPU {cpu} is listed twice")
            seen.add(cpu)
            if cpu not in online:
                raise HostError(f"host CPUs: CPU {cpu} is offline (online CPUs: "
                                f"{sysfs.format_cpulist(online)})")
            if cpu not in allowed:
                raise HostError(f"host CPUs: CPU {cpu} is online but outside this process's "
                                f"affinity mask ({sysfs.format_cpulist(allowed)}: taskset or "
                                f"a cgroup cpuset)")
        return wanted, True

    def to_dict(self) -> dict:
        return {"cpus": sysfs.format_cpulist(self.cpus), "window_ms": self.window_ms,
                "warmup_ms": self.warmup_ms, "file_mb": self.file_mb, "perf": self.perf}


def _in_order(text) -> list:
    out = []
    for part in str(text).replace(" ", "").split(","):
        if part:
            out += sysfs.parse_cpulist(part, "host CPUs")
    return out


class HostRun:
    """One workload on the host: a sample per window."""

    __slots__ = ("workload", "params", "count", "cpus", "partners", "samples", "counters",
                 "config")

    def __init__(self, workload, params, count, cpus, partners, samples, counters, config):
        self.workload, self.params, self.count = workload, params, count
        self.cpus, self.partners = cpus, partners
        self.samples, self.counters = samples, counters
        self.config = config

    def values(self, metric) -> list:
        return [s["metrics"][metric] for s in self.samples if metric in s["metrics"]]

    def median(self, metric):
        import statistics
        values = self.values(metric)
        return statistics.median(values) if values else None

    def placement(self) -> str:
        text = "CPUs " + ",".join(map(str, self.cpus))
        if self.partners:
            text += ", partners on " + ",".join(map(str, self.partners))
        return text


def run(workload, params=None, windows=5, config=None) -> HostRun:
    """Run `workload` (a tp.workloads Workload, or a host form's name with
    `params`) on the running kernel: a warm-up, then `windows` windows,
    each one sample. Raises NoHostForm, TooFewCpus, HostError,
    HostUnavailable; Ctrl-C stops the runner and raises KeyboardInterrupt."""
    name = workload if isinstance(workload, str) else workload.name
    params = dict(params if params is not None else getattr(workload, "params", {}))
    f = forms.form(name)
    count = f.count(params)
    config = config or HostConfig()
    windows = _bounded("windows", windows, "host windows")
    topo = sysfs.topology(config.root, config.cpus)
    cpus, partners = forms.place(f, count, config.cpus, topo, ordered=config.ordered)
    raw = runner.run_workload(name, cpus, partners, config.warmup_ms, config.window_ms,
                              windows, config.file_mb, config.tmpdir, config.perf)
    paranoid = procfs.perf_paranoid(config.root)
    return HostRun(name, params, count, cpus, partners, forms.samples(raw, name),
                   forms.counters(raw, config.root, paranoid), config)


def machine_identity(root="/") -> dict:
    """The running kernel's identity, with the runner's CPUID report where
    the runner is built."""
    return identity.collect(root, runner.cpuid() if str(root) == "/" else None)
