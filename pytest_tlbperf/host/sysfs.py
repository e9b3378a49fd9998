"""What sysfs says about the CPUs: which are online, how they pair into
cores and packages, and the cpuidle driver, governor and states.

Every reader takes `root`, the directory that stands for `/`, so the tests
read sample trees kept under tests/fixtures/host/ the way a run reads the
live machine. A file that does not exist reads as None: older kernels and
VMs leave many of them out, and the caller says what it assumed instead.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HostError

CPU_DIR = "sys/devices/system/cpu"


def read(root, relpath):
    """The stripped text of `root/relpath`, or None when it cannot be read."""
    try:
        return (Path(root) / relpath).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def parse_cpulist(text, what="CPU list") -> list:
    """The kernel's cpulist format ("0-3,8,10-11", Documentation/admin-guide/
    cputopology.rst) -> sorted CPU numbers. An empty string is no CPU."""
    cpus = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise HostError(f"{what}: {part!r} in {text!r} is not a CPU number or a "
                            f"range like 0-3") from None
        if first < 0 or last < first:
            raise HostError(f"{what}: {part!r} in {text!r} is not a valid range")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def format_cpulist(cpus) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out, run = [], []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def online_cpus(root="/") -> list:
    text = read(root, f"{CPU_DIR}/online")
    if text is None:
        raise HostError(f"{Path(root) / CPU_DIR / 'online'} cannot be read: is sysfs "
                        f"mounted?")
    return parse_cpulist(text, f"{CPU_DIR}/online")


class Cpu:
    """One online CPU's place: package, core and the core's threads."""

    __slots__ = ("cpu", "package", "core", "siblings")

    def __init__(self, cpu, package, core, siblings):
        self.cpu, self.package, self.core, self.siblings = cpu, package, core, tuple(siblings)

    @property
    def core_key(self):
        return (self.package, self.core)

    def __repr__(self):
        return f"Cpu({self.cpu}, package={self.package}, core={self.core}, " \
               f"siblings={list(self.siblings)})"


def topology(root="/", cpus=None) -> dict:
    """{cpu: Cpu} for `cpus` (default: the online ones), from
    cpuN/topology/{physical_package_id,core_id,thread_siblings_list}. A CPU
    without a topology directory counts as a core of its own."""
    out = {}
    for cpu in online_cpus(root) if cpus is None else cpus:
        base = f"{CPU_DIR}/cpu{cpu}/topology"
        package = read(root, f"{base}/physical_package_id")
        core = read(root, f"{base}/core_id")
        siblings = read(root, f"{base}/thread_siblings_list")
        out[cpu] = Cpu(cpu, int(package) if package not in (None, "") else 0,
                       int(core) if core not in (None, "") else cpu,
                       parse_cpulist(siblings) if siblings else [cpu])
    return out


def llc_cpus(root="/", cpu=0):
    """The CPUs sharing `cpu`'s last-level cache: the shared_cpu_list of
    its highest cache level (cpuN/cache/indexM), or None where sysfs has
    no cache directory."""
    best, shared = -1, None
    index = 0
    while True:
        base = f"{CPU_DIR}/cpu{cpu}/cache/index{index}"
        level = read(root, f"{base}/level")
        if level is None:
            break
        cpus = read(root, f"{base}/shared_cpu_list")
        if level.isdigit() and int(level) > best and cpus:
            best, shared = int(level), parse_cpulist(cpus)
        index += 1
    return shared


def smt_active(root="/"):
    """True/False from /sys/devices/system/cpu/smt/active, None if absent."""
    text = read(root, f"{CPU_DIR}/smt/active")
    return None if text is None else text == "1"


class IdleState:
    """One cpuidle state of cpu0 as sysfs lists it (latency and residency
    in microseconds, cpuidle's units)."""

    __slots__ = ("index", "name", "desc", "latency_us", "residency_us", "disabled")

    def __init__(self, index, name, desc, latency_us, residency_us, disabled):
        self.index, self.name, self.desc = index, name, desc
        self.latency_us, self.residency_us, self.disabled = latency_us, residency_us, disabled

    @property
    def polling(self) -> bool:
        # drivers/cpuidle/poll_state.c names its state "POLL"
        return self.name.upper() == "POLL"

    def to_dict(self) -> dict:
        return {"name": self.name, "desc": self.desc, "latency_us": self.latency_us,
                "residency_us": self.residency_us, "disabled": self.disabled}


def cpuidle(root="/", cpu=0) -> dict:
    """The cpuidle driver and governor (current_governor where it is
    writable, current_governor_ro otherwise) and cpu`cpu`'s states, in
    order. No cpuidle directory: driver "none" (idle=poll, or
    CONFIG_CPU_IDLE=n, or a VM that idles in HLT without a driver)."""
    driver = read(root, f"{CPU_DIR}/cpuidle/current_driver")
    governor = read(root, f"{CPU_DIR}/cpuidle/current_governor") or \
        read(root, f"{CPU_DIR}/cpuidle/current_governor_ro")
    states = []
    index = 0
    while True:
        base = f"{CPU_DIR}/cpu{cpu}/cpuidle/state{index}"
        name = read(root, f"{base}/name")
        if name is None:
            break
        latency, residency = read(root, f"{base}/latency"), read(root, f"{base}/residency")
        states.append(IdleState(index, name, read(root, f"{base}/desc") or "",
                                int(latency) if latency else 0,
                                int(residency) if residency else 0,
                                read(root, f"{base}/disable") == "1"))
        index += 1
    return {"driver": driver or "none", "governor": governor or "none", "states": states}


def cpufreq_max_khz(root="/", cpu=0):
    text = read(root, f"{CPU_DIR}/cpu{cpu}/cpufreq/cpuinfo_max_freq")
    return int(text) if text and text.isdigit() else None


def has_cpu_pmu(root="/") -> bool:
    """Whether perf has a hardware PMU: /sys/bus/event_source/devices/cpu
    (or cpu_core/cpu_atom on hybrid Intel parts). A VM without a virtual
    PMU has only software, tracepoint and breakpoint sources."""
    devices = Path(root) / "sys/bus/event_source/devices"
    return any((devices / name).exists() for name in ("cpu", "cpu_core", "cpu_atom"))
