"""Machine profiles: TOML files that describe a modeled machine (DESIGN §3.1).

A profile is data, not code. The built-in ones ship next to this file; users
load their own with `load(path)` or by passing a path wherever a profile name
is accepted. Every time-like value carries its unit in its key
(`_cycles`, `_ns`, `_us`); the loader converts them all to integer cycles of
the profile's clock, which is the only unit the engines know.
"""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from ..errors import ProfileError
from ..userio import read_text

__all__ = ["Profile", "CState", "names", "get", "load", "ProfileError"]

# Schema: table -> {key: (type, required)}. Unknown keys are errors, so a
# typo in a user's profile cannot silently fall back to a default.
_SCHEMA = {
    "": {"name": (str, True), "description": (str, True), "vendor": (str, True),
         "pcid": (bool, True), "clock_mhz": (int, True), "meltdown": (bool, False),
         "invpcid": (bool, False), "invlpgb": (bool, False), "invlpgb_max_pages": (int, False),
         "rar": (bool, False)},
    "topology": {"sockets": (int, True), "cpus": (int, True), "smt": (int, True),
                 "cores_per_llc": (int, False)},
    "tlb": {"entries": (int, True), "ways": (int, True), "psc_entries": (int, True)},
    "costs": {
        "syscall_cycles": (int, True), "access_cycles": (int, True),
        "walk_cycles": (int, True), "walk_psc_cycles": (int, True),
        "page_fault_cycles": (int, True), "zap_pte_cycles": (int, True),
        "pte_update_cycles": (int, True), "invlpg_ns": (int, True),
        "full_flush_ns": (int, True), "cr3_write_cycles": (int, True),
        "context_switch_cycles": (int, True), "irq_entry_cycles": (int, True),
        "flush_func_cycles": (int, True), "csd_ack_cycles": (int, True),
        "ipi_send_cycles": (int, True), "atomic_cycles": (int, True),
        "smp_mb_cycles": (int, True), "wakeup_cycles": (int, False),
        "pipe_cycles": (int, False), "file_fault_cycles": (int, False),
        "invpcid_ns": (int, False), "csd_setup_cycles": (int, False),
        "invlpgb_ns": (int, False), "tlbsync_ns": (int, False), "rar_ns": (int, False),
        "lru_lock_cycles": (int, False),
    },
    "ipi": {"smt_ns": (int, True), "socket_ns": (int, True), "remote_ns": (int, True),
            "jitter_ns": (int, True), "apic": (str, False)},
    "cache_line": {"smt_cycles": (int, True), "llc_cycles": (int, False),
                   "socket_cycles": (int, True), "remote_cycles": (int, True),
                   "invalidate_cycles": (int, False)},
    "speculation": {"walk_interval_ns": (int, True), "freed_table_walk": (str, True)},
    "virt": {"preempt_percent": (int, True), "preempt_us": (int, True),
             "pv_tlb_flush": (bool, True)},
    "memory": {"table_batch_fail_percent": (int, False)},
}
_CSTATE_SCHEMA = {"name": (str, True), "exit_latency_us": (int, True),
                  "target_residency_us": (int, True), "tlb_flushed": (bool, True),
                  "polling": (bool, False), "wake_latency_ns": (list, False)}
# Optional fields and what they mean when absent: the model before they existed.
DEFAULT_COSTS = {"wakeup_cycles": 1500, "pipe_cycles": 600, "csd_setup_cycles": 0,
                 "invlpgb_ns": 0, "tlbsync_ns": 0, "rar_ns": 0, "lru_lock_cycles": 0}
_OPTIONAL_TABLES = {"virt", "memory"}
APIC_MODES = ("cluster", "physical", "kvm_pv")

# -- bounds ------------------------------------------------------------------------
# The native engine's input limits (MAX_CPUS, MAX_VALUE and the 2^20 bound on
# TLB sets, ways and PSC entries in engine/_native.c; tests/test_badinput_profiles.py
# checks them against _native.ABI). The loader enforces them, so a profile either
# runs on both engines or fails here naming its field, never in the engine.
MAX_CPUS = 1 << 16
MAX_CYCLES = 1 << 44               # any cost or time, once converted to cycles
MAX_TLB_ENTRIES = 1 << 20          # tlb.entries and tlb.psc_entries
# Sane bounds beyond the engine's. Both engines allocate every CPU's TLB and
# paging-structure cache up front: cpus x (entries + psc_entries) bounds that
# memory (2^23 entries: about 200 MB in the python engine; 4096 CPUs with
# 2048 entries each still fit).
MAX_CACHE_ENTRIES = 1 << 23
CLOCK_MHZ = (100, 10_000)
# A preempted vCPU runs preempt_us * (100 - preempt_percent) / preempt_percent
# between two preemptions. Work is stretched across every window that falls
# inside it, so a run costs a window per that much work. At 0 cycles (clock
# 1 MHz with 95% preemption of 10 us windows rounds it down) the windows
# touch, the run never ends and its list of windows grows without bound
# (2 GB in 4 s); at 1 us and 100 MHz the worst built-in workloads still run
# in about a second on the python engine. A host's time slice is
# milliseconds (kvm-guest-16: 3 ms).
MIN_VCPU_RUN_US = 1
MAX_FILE_BYTES = 1 << 20           # a profile is a page of TOML
MAX_NAME = 64
_TO_NS = {"cycles": None, "ns": 1, "us": 1000}     # unit suffix -> ns per unit


class _ReadOnlyTable(dict):
    """A profile's table: a dict (json.dumps, isinstance and ** still work)
    whose every mutator raises."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("a profile is read-only: a policy's configure() returns knob "
                        "overrides; profile.with_changes(...) makes a changed copy")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __copy__(self):
        return dict(self)

    def __deepcopy__(self, memo):
        return _deep_copy(self)

    def __reduce__(self):
        return dict, (dict(self),)


def _frozen(value):
    """A read-only deep copy: tables become _ReadOnlyTables, arrays tuples."""
    if isinstance(value, dict):
        return _ReadOnlyTable({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


class _ReadOnly(type):
    """Instances are read-only once built: every attribute set in __init__
    is frozen (nested tables and arrays too) and cannot be set again.

    One Profile object serves every run in a process (get() caches it), and
    a policy's configure(profile) receives it: a configure() that changed it
    would silently change every later run -- the baseline's included -- while
    the digest saved with the results stayed the same."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        for name in cls.__slots__:
            if hasattr(obj, name):
                object.__setattr__(obj, name, _frozen(getattr(obj, name)))
        return obj


def _read_only_setattr(self, name, value):
    if hasattr(self, name):
        raise AttributeError(f"{self!r} is read-only: cannot set {name!r} (a policy's "
                             f"configure() returns knob overrides; a changed machine is "
                             f"profile.with_changes(...))")
    object.__setattr__(self, name, value)


def _read_only_delattr(self, name):
    raise AttributeError(f"{self!r} is read-only: cannot delete {name!r}")


class CState(metaclass=_ReadOnly):
    """One idle state, times in cycles: the driver's exit latency (the
    worst case the governor plans with), its target residency, whether it
    flushes the TLB, whether it is entered with TIF_POLLING_NRFLAG set (the
    POLL loop and MWAIT states: a wake-up needs no IPI), and the range
    measured wake-ups fall in (`wake_min`..`wake_max`, bounded by the exit
    latency) from which each exit's cost is drawn."""

    __slots__ = ("name", "exit_latency", "target_residency", "tlb_flushed", "polling",
                 "wake_min", "wake_max")

    def __init__(self, name, exit_latency, target_residency, tlb_flushed, polling=False,
                 wake_min=None, wake_max=None):
        self.name = name
        self.exit_latency = exit_latency
        self.target_residency = target_residency
        self.tlb_flushed = tlb_flushed
        self.polling = polling
        self.wake_min = exit_latency if wake_min is None else wake_min
        self.wake_max = exit_latency if wake_max is None else wake_max

    __setattr__ = _read_only_setattr
    __delattr__ = _read_only_delattr

    def __repr__(self):
        return f"CState({self.name})"


class Profile(metaclass=_ReadOnly):
    """A validated machine profile. Time values are integer cycles. It is
    read-only: nested tables are read-only dicts and arrays tuples."""

    __slots__ = ("name", "description", "vendor", "pcid", "clock_mhz", "sockets", "cpus", "cores_per_llc",
                 "meltdown", "invpcid", "apic", "table_batch_fail_percent", "invalidate_cycles",
                 "invlpgb", "invlpgb_max_pages", "rar",
                 "smt", "tlb_entries", "tlb_ways", "psc_entries", "costs", "ipi_ns",
                 "ipi_jitter", "line_transfer", "cstates", "walk_interval",
                 "freed_table_walk", "virt", "source", "digest", "raw")

    def __init__(self, raw: dict, source: str):
        _validate(raw, source)
        self.raw = raw
        self.source = source
        self.digest = hashlib.sha256(_canonical(raw).encode()).hexdigest()[:16]
        self.name = raw["name"]
        self.description = raw["description"]
        self.vendor = raw["vendor"]
        self.pcid = raw["pcid"]
        self.clock_mhz = raw["clock_mhz"]
        # Meltdown-affected (Intel parts without RDCL_NO): PTI on by default
        self.meltdown = raw.get("meltdown", False)
        self.invpcid = raw.get("invpcid", self.pcid)
        # broadcast TLB invalidation: AMD INVLPGB (CPUID 8000_0008h EBX[3]; EDX[15:0]
        # + 1 pages per instruction) and Intel Remote Action Request
        self.invlpgb = raw.get("invlpgb", False)
        self.invlpgb_max_pages = raw.get("invlpgb_max_pages", 8)
        self.rar = raw.get("rar", False)
        self.apic = raw["ipi"].get("apic", "cluster")
        self.table_batch_fail_percent = raw.get("memory", {}).get("table_batch_fail_percent", 0)
        topo = raw["topology"]
        self.sockets, self.cpus, self.smt = topo["sockets"], topo["cpus"], topo["smt"]
        tlb = raw["tlb"]
        self.tlb_entries, self.tlb_ways, self.psc_entries = (
            tlb["entries"], tlb["ways"], tlb["psc_entries"])
        # every cost in cycles, keyed without its unit suffix
        self.costs = {}
        defaults = dict(DEFAULT_COSTS, file_fault_cycles=raw["costs"]["page_fault_cycles"],
                        invpcid_ns=raw["costs"]["invlpg_ns"])
        for key, value in {**defaults, **raw["costs"]}.items():
            base, unit = key.rsplit("_", 1)
            self.costs[base] = self._to_cycles(value, unit)
        self.cores_per_llc = topo.get("cores_per_llc", self.cores_per_socket)
        ipi = raw["ipi"]
        # delivery latency by distance: same core (SMT sibling), same socket, remote
        self.ipi_ns = (ipi["smt_ns"], ipi["socket_ns"], ipi["remote_ns"])
        self.ipi_jitter = self.cycles_from_ns(ipi["jitter_ns"])
        line = raw["cache_line"]
        # by distance: same core, same last-level cache, same socket, remote
        self.line_transfer = (line["smt_cycles"], line.get("llc_cycles", line["socket_cycles"]),
                              line["socket_cycles"], line["remote_cycles"])
        # a store to a line shared by k others pays this for each beyond the first
        self.invalidate_cycles = line.get("invalidate_cycles", 0)
        us = lambda v: self.cycles_from_ns(v * 1000)   # noqa: E731
        self.cstates = tuple(
            CState(c["name"], us(c["exit_latency_us"]), us(c["target_residency_us"]),
                   c["tlb_flushed"], c.get("polling", False),
                   *([self.cycles_from_ns(v) for v in c["wake_latency_ns"]]
                     if "wake_latency_ns" in c else (None, None)))
            for c in raw.get("cstates", ()))
        spec = raw["speculation"]
        self.walk_interval = self.cycles_from_ns(spec["walk_interval_ns"])
        self.freed_table_walk = spec["freed_table_walk"]
        virt = raw.get("virt")
        self.virt = None if virt is None else {
            "preempt_percent": virt["preempt_percent"],
            "preempt": self.cycles_from_ns(virt["preempt_us"] * 1000),
            "pv_tlb_flush": virt["pv_tlb_flush"],
        }

    # -- unit conversion (integers only: the engines never see a float) -----
    def cycles_from_ns(self, ns: int) -> int:
        return ns * self.clock_mhz // 1000

    def ns_from_cycles(self, cycles: int) -> int:
        return cycles * 1000 // self.clock_mhz

    def _to_cycles(self, value: int, unit: str) -> int:
        if unit == "cycles":
            return value
        if unit == "ns":
            return self.cycles_from_ns(value)
        if unit == "us":
            return self.cycles_from_ns(value * 1000)
        raise ProfileError(f"{self.source}: unit {unit!r} unknown")

    @property
    def cores(self) -> int:
        return self.cpus // self.smt

    @property
    def cores_per_socket(self) -> int:
        return self.cores // self.sockets

    def core_of(self, cpu: int) -> int:
        # Linux enumeration: CPUs 0..cores-1 are the first thread of every
        # core, socket by socket; their SMT siblings follow.
        return cpu % self.cores

    def llc_of(self, cpu: int) -> int:
        """The last-level cache domain (a CCX on AMD, the socket on Intel)."""
        return self.core_of(cpu) // self.cores_per_llc

    def socket_of(self, cpu: int) -> int:
        return self.core_of(cpu) // self.cores_per_socket

    def siblings(self, cpu: int) -> tuple:
        """The SMT siblings of cpu (itself excluded)."""
        core = self.core_of(cpu)
        return tuple(core + i * self.cores for i in range(self.smt) if core + i * self.cores != cpu)

    def apicid(self, cpu: int) -> int:
        """The x2APIC ID Linux would see: socket, core and thread fields, each
        rounded up to a power of two (so IDs have gaps on odd core counts)."""
        core = self.core_of(cpu)
        thread = cpu // self.cores
        thread_bits = (self.smt - 1).bit_length()
        core_bits = (self.cores_per_socket - 1).bit_length()
        return (((core // self.cores_per_socket) << (core_bits + thread_bits))
                | ((core % self.cores_per_socket) << thread_bits) | thread)

    def distance(self, a: int, b: int) -> int:
        """0: same core (SMT sibling or itself), 1: same last-level cache,
        2: same socket, 3: remote."""
        if self.core_of(a) == self.core_of(b):
            return 0
        if self.llc_of(a) == self.llc_of(b):
            return 1
        return 2 if self.socket_of(a) == self.socket_of(b) else 3

    def with_changes(self, **changes) -> "Profile":
        """A copy with some raw fields changed, e.g.
        `with_changes(name="skylake-1024", topology={"cpus": 1024, "sockets": 16})`;
        nested tables are merged key by key. The copy is validated again."""
        raw = _deep_copy(self.raw)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key].update(value)
            else:
                raw[key] = value
        return Profile(raw, f"{self.source} (modified)")

    __setattr__ = _read_only_setattr
    __delattr__ = _read_only_delattr

    def __repr__(self):
        return f"<Profile {self.name}: {self.cpus} CPUs, {self.vendor}>"

    def __eq__(self, other):
        return isinstance(other, Profile) and self.digest == other.digest

    def __hash__(self):
        return hash(self.digest)


def _deep_copy(value):
    """A mutable deep copy of (frozen) raw profile data."""
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(v) for v in value]
    return value


def _canonical(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_canonical(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):          # a frozen array digests as its list
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


def _check_table(table: dict, schema: dict, where: str, source: str) -> None:
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: {where.rstrip('.') or 'the file'} must be a table, "
                           f"got {table!r}")
    for key in table:
        if key not in schema:
            raise ProfileError(f"{source}: unknown field {where}{key!r}; expected one of "
                               f"{', '.join(sorted(schema))}")
    for key, (typ, required) in schema.items():
        if key not in table:
            if required:
                raise ProfileError(f"{source}: missing field {where}{key!r}")
            continue
        value = table[key]
        if typ is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ProfileError(f"{source}: field {where}{key!r} must be an integer, "
                               f"got {value!r}")
        if typ is not int and not isinstance(value, typ):
            raise ProfileError(f"{source}: field {where}{key!r} must be a {typ.__name__}, "
                               f"got {value!r}")
        if typ is int and value < 0:
            raise ProfileError(f"{source}: field {where}{key!r} must not be negative, "
                               f"got {value}")


def _validate(raw: dict, source: str) -> None:
    tables = set(_SCHEMA) - {""}
    top_schema = dict(_SCHEMA[""])
    top_keys = {k: v for k, v in raw.items() if k not in tables and k != "cstates"}
    _check_table(top_keys, top_schema, "", source)
    for table in sorted(tables):
        if table not in raw:
            if table in _OPTIONAL_TABLES:
                continue
            raise ProfileError(f"{source}: missing table [{table}]")
        if not isinstance(raw[table], dict):
            raise ProfileError(f"{source}: [{table}] must be a table")
        _check_table(raw[table], _SCHEMA[table], f"{table}.", source)
    cstates = raw.get("cstates", [])
    if not isinstance(cstates, list):
        raise ProfileError(f"{source}: cstates must be an array of tables ([[cstates]])")
    for i, cstate in enumerate(cstates):
        if not isinstance(cstate, dict):
            raise ProfileError(f"{source}: cstates[{i}] must be a table ([[cstates]] with "
                               f"name, exit_latency_us, ...), got {cstate!r}")
        _check_table(cstate, _CSTATE_SCHEMA, f"cstates[{i}].", source)
        wake = cstate.get("wake_latency_ns")
        if wake is not None and not (
                len(wake) == 2 and all(type(v) is int for v in wake)
                and 0 <= wake[0] <= wake[1] <= 1000 * cstate["exit_latency_us"]):
            raise ProfileError(f"{source}: field cstates[{i}].'wake_latency_ns' must be "
                               f"[min, max] integers with 0 <= min <= max <= the exit latency "
                               f"({cstate['exit_latency_us']} us), got {wake!r}")
    if raw["vendor"] not in ("intel", "amd"):
        raise ProfileError(f"{source}: field 'vendor' must be 'intel' or 'amd', "
                           f"got {raw['vendor']!r}")
    if raw["clock_mhz"] == 0:
        raise ProfileError(f"{source}: field 'clock_mhz' must be positive")
    topo = raw["topology"]
    for key in ("cpus", "sockets", "smt"):
        if topo[key] == 0:
            raise ProfileError(f"{source}: field topology.{key!r} must be at least 1")
    if topo["cpus"] % topo["smt"]:
        raise ProfileError(f"{source}: field topology.'smt' = {topo['smt']} does not divide "
                           f"topology.'cpus' = {topo['cpus']}")
    if (topo["cpus"] // topo["smt"]) % topo["sockets"]:
        raise ProfileError(f"{source}: field topology.'sockets' = {topo['sockets']} does not "
                           f"divide the {topo['cpus'] // topo['smt']} cores")
    per_socket = topo["cpus"] // topo["smt"] // topo["sockets"]
    llc = topo.get("cores_per_llc", per_socket)
    if llc == 0 or per_socket % llc:
        raise ProfileError(f"{source}: field topology.'cores_per_llc' = {llc} must be positive "
                           f"and divide the {per_socket} cores of a socket")
    tlb = raw["tlb"]
    if tlb["ways"] == 0 or tlb["entries"] == 0 or tlb["entries"] % tlb["ways"]:
        raise ProfileError(f"{source}: field tlb.'ways' = {tlb['ways']} must be positive and "
                           f"divide tlb.'entries' = {tlb['entries']}")
    if tlb["psc_entries"] == 0:
        raise ProfileError(f"{source}: field tlb.'psc_entries' must be at least 1")
    if raw["speculation"]["walk_interval_ns"] == 0:
        raise ProfileError(f"{source}: field speculation.'walk_interval_ns' must be positive")
    if raw["speculation"]["freed_table_walk"] not in ("hang", "silent"):
        raise ProfileError(f"{source}: field speculation.'freed_table_walk' must be 'hang' or "
                           f"'silent', got {raw['speculation']['freed_table_walk']!r}")
    last_residency = -1
    for i, c in enumerate(cstates):
        if c["target_residency_us"] < last_residency:
            raise ProfileError(f"{source}: field cstates[{i}].'target_residency_us' must not "
                               f"be below the shallower state's")
        last_residency = c["target_residency_us"]
    if raw.get("invlpgb_max_pages", 8) == 0:
        raise ProfileError(f"{source}: field 'invlpgb_max_pages' must be at least 1")
    apic = raw["ipi"].get("apic", "cluster")
    if apic not in APIC_MODES:
        raise ProfileError(f"{source}: field ipi.'apic' must be one of "
                           f"{', '.join(APIC_MODES)}, got {apic!r}")
    if apic == "kvm_pv" and "virt" not in raw:
        raise ProfileError(f"{source}: field ipi.'apic' = 'kvm_pv' (KVM's PV send-IPI) needs "
                           f"a [virt] table: only a KVM guest has it")
    fail = raw.get("memory", {}).get("table_batch_fail_percent", 0)
    if fail > 100:
        raise ProfileError(f"{source}: field memory.'table_batch_fail_percent' must be at "
                           f"most 100, got {fail}")
    virt = raw.get("virt")
    if virt is not None and virt["preempt_percent"] > 95:
        raise ProfileError(f"{source}: field virt.'preempt_percent' must be at most 95")
    if virt is not None and virt["preempt_percent"] and not virt["preempt_us"]:
        raise ProfileError(f"{source}: field virt.'preempt_us' must be positive when vCPUs "
                           f"are preempted (preempt_percent > 0)")
    _check_bounds(raw, source)


def _bound(source, field, value, lo, hi, why="") -> None:
    if not lo <= value <= hi:
        raise ProfileError(f"{source}: field {field} = {value} is out of range: it must be "
                           f"{lo}..{hi}{why}")


def _check_bounds(raw: dict, source: str) -> None:
    """The engine's limits and the bounds that keep a run's time and memory
    finite (see MAX_* above), each naming its field."""
    for key in ("name", "description"):
        if not raw[key].isprintable():
            raise ProfileError(f"{source}: field {key!r} = {raw[key]!r} has control "
                               f"characters (newlines, escapes)")
    if not 0 < len(raw["name"]) <= MAX_NAME:
        raise ProfileError(f"{source}: field 'name' must be 1..{MAX_NAME} characters")
    clock = raw["clock_mhz"]
    _bound(source, "'clock_mhz'", clock, *CLOCK_MHZ)
    topo, tlb = raw["topology"], raw["tlb"]
    _bound(source, "topology.'cpus'", topo["cpus"], 1, MAX_CPUS, " (the engine's limit)")
    _bound(source, "tlb.'entries'", tlb["entries"], 1, MAX_TLB_ENTRIES,
           " (the engine's limit)")
    _bound(source, "tlb.'psc_entries'", tlb["psc_entries"], 1, MAX_TLB_ENTRIES,
           " (the engine's limit)")
    cached = topo["cpus"] * (tlb["entries"] + tlb["psc_entries"])
    if cached > MAX_CACHE_ENTRIES:
        raise ProfileError(f"{source}: topology.'cpus' x (tlb.'entries' + tlb.'psc_entries') "
                           f"= {topo['cpus']} x {tlb['entries'] + tlb['psc_entries']} = "
                           f"{cached} TLB and PSC entries, more than the {MAX_CACHE_ENTRIES} "
                           f"a run may allocate")
    # every time or cost, in the cycles the engines get (Profile._to_cycles)
    fields = [(f"{table}.{key!r}", key, value) for table in sorted(set(_SCHEMA) - {""})
              for key, value in (raw.get(table) or {}).items()]
    fields += [(f"cstates[{i}].{key!r}", key, value)
               for i, c in enumerate(raw.get("cstates", ())) for key, value in c.items()]
    for field, key, value in fields:
        unit = key.rsplit("_", 1)[-1]
        if unit in _TO_NS and not isinstance(value, bool) and isinstance(value, int):
            cycles = value if unit == "cycles" else value * _TO_NS[unit] * clock // 1000
            if cycles > MAX_CYCLES:
                raise ProfileError(f"{source}: field {field} = {value} is {cycles} cycles at "
                                   f"{clock} MHz, more than the engine's limit of 2^44 "
                                   f"({MAX_CYCLES}) cycles")
    virt = raw.get("virt")
    if virt is not None and virt["preempt_percent"]:
        percent = virt["preempt_percent"]
        run_us = virt["preempt_us"] * (100 - percent) / percent
        if run_us < MIN_VCPU_RUN_US:
            raise ProfileError(
                f"{source}: field virt.'preempt_us' = {virt['preempt_us']} with "
                f"virt.'preempt_percent' = {percent} lets a vCPU run {run_us:.3g} us between "
                f"two preemptions (preempt_us x (100 - preempt_percent) / preempt_percent); "
                f"it must be at least {MIN_VCPU_RUN_US} us, or the run never ends: raise "
                f"preempt_us to {-(-MIN_VCPU_RUN_US * percent // (100 - percent))} or more")



def _builtin_files() -> dict:
    return {p.name[:-5]: p for p in resources.files(__name__).iterdir()
            if p.name.endswith(".toml")}


def names() -> list:
    """Names of the built-in profiles."""
    return sorted(_builtin_files())


_cache: dict = {}


def load(path) -> Profile:
    """Load and validate a profile file: a regular UTF-8 file of at most
    MAX_FILE_BYTES (never /dev/zero or a FIFO)."""
    text = read_text(path, "profile", MAX_FILE_BYTES, ProfileError)
    return _parse(text, str(path))


def _parse(text: str, source: str) -> Profile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ProfileError(f"{source}: not valid TOML: nested too deeply") from None
    return Profile(raw, source)


def get(name_or_path) -> Profile:
    """A built-in profile by name, or a user profile by path to its .toml."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    key = str(name_or_path)
    if key in _cache:
        return _cache[key]
    files = _builtin_files()
    if key in files:
        # built-ins are immutable package data: parse once per process
        _cache[key] = _parse(files[key].read_text(), f"profile {key} ({files[key].name})")
        return _cache[key]
    if key.endswith(".toml") or "/" in key:
        return load(key)
    raise ProfileError(f"unknown profile {key!r}; built-in profiles are "
                       f"{', '.join(sorted(files))}, or give a path to a .toml file")
