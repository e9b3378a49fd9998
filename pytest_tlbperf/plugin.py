"""The pytest plugin (entry point `pytest11: tlbperf`): options, marker,
parametrization, fixtures, terminal summary, saved runs and the pytest-xdist
hand-off. Suites are ordinary tests that use the `tlbperf` fixture; without
--tlbperf they are collected and skipped, so plain `pytest` stays fast.

    @pytest.mark.tlbperf(profiles=["zen1-epyc", "skylake-2s"], shows=["freed_table_walk"])
    def test_kernel_build(tlbperf):
        tlbperf(tp.workloads.kernel_build(), metrics=["ipis", "makespan_ns"])
"""

from __future__ import annotations

import json
import time

import pytest

from . import api, policies, profiles
from .errors import TlbperfError
from .fixture import DEFAULT_METRICS, ModeledMachine, TlbperfFixture
from .metrics import METRICS
from .session import WIDTH, Cell, Session
from .storage import Storage, StorageError, git_commit

DEFAULTS = {"baseline": "mainline", "profiles": ["skylake-2s"], "rounds": 5,
            "engine": "auto", "storage": ".tlbperf", "fail_on": "violation"}
FAIL_ON = ("violation", "none")


def pytest_addoption(parser):
    group = parser.getgroup("tlbperf", "TLB-shootdown / lazy-TLB suites (pytest-tlbperf)")

    def add(flag, ini, help, ini_type=None, **kw):
        group.addoption(flag, dest=ini, help=f"{help} [ini: {ini}]", **kw)
        parser.addini(ini, help=help, type=ini_type, default=None)

    add("--tlbperf", "tlbperf", "run the tlbperf suites (without it they are skipped)",
        ini_type="bool", action="store_true", default=None)
    add("--tlbperf-policy", "tlbperf_policy", "candidate policy: a registered name, "
        "module:Class, or path/to/file.py[:Class]; repeatable (default: every registered "
        "policy)", ini_type="linelist", action="append", metavar="POLICY")
    add("--tlbperf-baseline", "tlbperf_baseline", "policy the candidates are compared "
        "against (default: mainline)", metavar="POLICY")
    add("--tlbperf-profile", "tlbperf_profile", "machine profile, name or .toml path; "
        "repeatable; overrides the suites' own choice", ini_type="linelist", action="append",
        metavar="PROFILE")
    add("--tlbperf-rounds", "tlbperf_rounds", "seeds per cell (default: 5, or the marker's "
        "rounds=)", type=int, metavar="N")
    add("--tlbperf-engine", "tlbperf_engine", "engine: auto, python or native (default: auto)",
        choices=api.ENGINES)
    add("--tlbperf-storage", "tlbperf_storage", "folder of saved runs (default: .tlbperf/)",
        metavar="DIR")
    add("--tlbperf-save", "tlbperf_save", "save this run under NAME (or under the commit "
        "when no NAME is given)", nargs="?", const="", metavar="NAME")
    add("--tlbperf-autosave", "tlbperf_autosave", "save every run, named after the commit",
        ini_type="bool", action="store_true", default=None)
    add("--tlbperf-compare", "tlbperf_compare", "compare with a saved run: its id, name or "
        "commit prefix (default: the latest)", nargs="?", const="latest", metavar="RUN")
    add("--tlbperf-fail-on", "tlbperf_fail_on", "what fails the run: 'violation' (default: "
        "a violation the policy does not declare, or a declared one that is lost) or 'none'",
        choices=FAIL_ON)
    add("--tlbperf-json", "tlbperf_json", "write every sample of this run as JSON to PATH",
        metavar="PATH")


def _get(config, name, default=None):
    """Command line first, then the ini file, then the default."""
    value = config.getoption(name)
    if value is not None:
        return value              # "" is a value: --tlbperf-save with no NAME
    value = config.getini(name)
    return default if value in (None, [], "") else value


class TlbperfPlugin:
    """Per-session state and the hooks that need it."""

    def __init__(self, config):
        self.config = config
        self.enabled = bool(_get(config, "tlbperf", False))
        self.baseline = _get(config, "tlbperf_baseline", DEFAULTS["baseline"])
        self.candidates = _get(config, "tlbperf_policy") or None
        self.profiles = _get(config, "tlbperf_profile") or None
        rounds = _get(config, "tlbperf_rounds")
        self.rounds_override = int(rounds) if rounds is not None else None
        self.engine = _get(config, "tlbperf_engine", DEFAULTS["engine"])
        self.fail_on = _get(config, "tlbperf_fail_on", DEFAULTS["fail_on"])
        self.storage = Storage(config.rootpath / _get(config, "tlbperf_storage",
                                                      DEFAULTS["storage"]))
        self.save = _get(config, "tlbperf_save")
        self.autosave = bool(_get(config, "tlbperf_autosave", False))
        self.compare = _get(config, "tlbperf_compare")
        self.json_path = _get(config, "tlbperf_json")
        self.is_worker = hasattr(config, "workerinput")
        self.reference = None
        self.storage_errors = []
        self.session = Session(self.baseline, self.options())
        if self.enabled:
            self._validate()

    def options(self) -> dict:
        return {"baseline": self.baseline, "policies": self.candidates,
                "profiles": self.profiles, "rounds": self.rounds_override,
                "engine": self.engine, "fail_on": self.fail_on}

    def _validate(self):
        """Bad names fail before anything runs, with the offending name."""
        if self.engine not in api.ENGINES:
            raise pytest.UsageError(f"--tlbperf-engine: unknown engine {self.engine!r}")
        if self.fail_on not in FAIL_ON:
            raise pytest.UsageError(f"--tlbperf-fail-on: {self.fail_on!r} is not one of "
                                    f"{', '.join(FAIL_ON)}")
        try:
            for spec in [self.baseline] + list(self.candidates or ()):
                policies.resolve(spec)
            for prof in self.profiles or ():
                profiles.get(prof)
        except TlbperfError as exc:
            raise pytest.UsageError(str(exc)) from None
        if self.rounds_override is not None and self.rounds_override < 1:
            raise pytest.UsageError("--tlbperf-rounds must be at least 1")
        if self.compare and not self.is_worker:
            try:
                run = self.storage.find(self.compare, on_error=self.storage_errors.append)
            except StorageError as exc:
                skipped = "".join(f"\n  skipped: {err}" for err in self.storage_errors)
                raise pytest.UsageError(f"--tlbperf-compare: {exc}{skipped}") from None
            self.reference = run

    # -- collection ----------------------------------------------------------
    def policy_list(self) -> list:
        candidates = self.candidates or [p for p in policies.names() if p != self.baseline]
        return [self.baseline] + [p for p in candidates if p != self.baseline]

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc):
        if "tlbperf_cell" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("tlbperf")
        chosen = self.profiles or (marker and marker.kwargs.get("profiles")) \
            or DEFAULTS["profiles"]
        cells = [(prof, pol) for prof in chosen for pol in self.policy_list()]
        metafunc.parametrize("tlbperf_cell", cells, ids=[f"{p}-{pol}" for p, pol in cells])

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items):
        if self.enabled:
            return
        skip = pytest.mark.skip(reason="tlbperf suites run with --tlbperf")
        for item in items:
            if "tlbperf_cell" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)

    # -- end of session -----------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """pytest-xdist controller: take the cells a worker ran."""
        data = getattr(node, "workeroutput", {}).get("tlbperf")
        if data:
            self.session.merge(json.loads(data))

    @pytest.hookimpl
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.enabled:
            return
        if self.is_worker:
            run = self.session.to_run("", False)
            run["engine_seconds"] = self.session.engine_seconds
            self.config.workeroutput["tlbperf"] = json.dumps(run)
            return
        if not self.session.cells:
            return
        commit, dirty = git_commit(self.config.rootpath)
        run = self.session.to_run(commit, dirty)
        self.saved = None
        if self.save is not None or self.autosave:
            self.saved = self.storage.save(run, name=self.save or None)
        if self.json_path:
            with open(self.json_path, "w") as fh:
                json.dump(run, fh, indent=1, sort_keys=True)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if not self.enabled or self.is_worker or not self.session.cells:
            return
        tr = terminalreporter
        s = self.session
        rounds = {len(c.samples) for c in s.cells}
        tr.section("tlbperf", sep="=")
        tr.write_line(f"baseline {self.baseline}; {len(s.cells)} cells, "
                      f"{'/'.join(map(str, sorted(rounds)))} seeds each; engine "
                      f"{', '.join(sorted({c.engine for c in s.cells}))}; medians over seeds")
        for line in s.summary_lines():
            tr.write_line(line[:WIDTH])
        if self.reference is not None:
            ref = {(c.test, c.profile, c.policy): c for c in map(
                Cell.from_dict, self.reference["cells"])}
            label = f"run {self.reference['id']}"
            tr.section(f"tlbperf: compared with saved run {self.reference['id']} "
                       f"({self.reference['commit']})", sep="-")
            for line in s.summary_lines(reference=ref, reference_label=label):
                tr.write_line(line[:WIDTH])
            missing = sorted(set(ref) - {c.key for c in s.cells})
            if missing:
                tr.write_line(f"{len(missing)} cells of run {self.reference['id']} were not "
                              f"run this time")
        for err in self.storage_errors:
            tr.write_line(f"tlbperf: skipped unreadable saved run: {err}", yellow=True)
        lines = s.violation_lines()
        if lines:
            tr.section("tlbperf violations", sep="-")
            for line in lines:
                tr.write_line(line)
        wall = time.time() - s.started
        if s.workers:
            tr.write_line(f"tlbperf: {s.engine_seconds:.1f} s in the engine summed over "
                          f"{s.workers} workers, {wall:.1f} s wall")
        else:
            tr.write_line(f"tlbperf: {s.engine_seconds:.1f} s in the engine, "
                          f"{max(wall - s.engine_seconds, 0):.1f} s elsewhere, of {wall:.1f} s")
        if getattr(self, "saved", None):
            tr.write_line(f"tlbperf: saved run {self.saved.name} in {self.storage.path}")
        if self.json_path:
            tr.write_line(f"tlbperf: wrote {self.json_path}")


# -- registration, marker, fixtures ------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tlbperf(profiles=None, rounds=None, metrics=None, shows=None): a tlbperf "
        "suite test: the profiles where its question matters, seeds per cell, the metrics "
        "its summary shows, the violation kinds it can demonstrate")
    plugin = TlbperfPlugin(config)
    config.pluginmanager.register(plugin, "tlbperf-session")
    config._tlbperf = plugin


@pytest.fixture
def tlbperf_cell(request):
    """(profile, policy) of the current cell, set by the plugin's parametrization."""
    return request.param


@pytest.fixture
def tlb_machine(tlbperf_cell, request):
    """The modeled machine of this cell: `.run(workload, seed)`, `.knobs`,
    `.profile`, `.policy`."""
    plugin = request.config._tlbperf
    profile, policy = tlbperf_cell
    return ModeledMachine(profile, policy, plugin.engine)


@pytest.fixture
def tlbperf(tlb_machine, request):
    """`tlbperf(workload, metrics=None)` runs the workload on this cell's
    machine for every seed, records the samples and judges violations."""
    plugin = request.config._tlbperf
    marker = request.node.get_closest_marker("tlbperf")
    kwargs = marker.kwargs if marker else {}
    rounds = plugin.rounds_override or kwargs.get("rounds") or \
        int(request.config.getini("tlbperf_rounds") or DEFAULTS["rounds"])
    metrics = kwargs.get("metrics") or DEFAULT_METRICS
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise pytest.UsageError(f"{request.node.nodeid}: unknown metric(s) {unknown}; "
                                f"metrics are {', '.join(METRICS)}")
    params = {k: v for k, v in getattr(request.node, "callspec", None).params.items()
              if k != "tlbperf_cell"} if hasattr(request.node, "callspec") else {}
    test = request.node.originalname + (
        "[" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "]" if params else "")
    return TlbperfFixture(tlb_machine, test, range(rounds), metrics,
                          kwargs.get("shows", ()), plugin.session, plugin.fail_on)
