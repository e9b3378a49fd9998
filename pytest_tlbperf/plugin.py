"""The pytest plugin (entry point `pytest11: tlbperf`): options, marker,
parametrization, fixtures, adaptive rounds, verdicts and reports, terminal
summary, saved runs and the pytest-xdist hand-off. Suites are ordinary tests
that use the `tlbperf` fixture; without --tlbperf they are collected and
skipped, so plain `pytest` stays fast.

    @pytest.mark.tlbperf(profiles=["zen1-epyc", "skylake-2s"], shows=["freed_table_walk"])
    def test_kernel_build(tlbperf):
        tlbperf(tp.workloads.kernel_build(), metrics=["ipis", "makespan_ns"])
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from . import api, distribute, policies, profiles, selection
from .engine import abi, native
from .errors import TlbperfError
from .fixture import (DEFAULT_METRICS, HOST_POLICY, HOST_PROFILE, HostFixture, HostMachine,
                      ModeledMachine, TlbperfFixture, runner_from_spec, runner_spec)
from .metrics import METRICS
from .session import Session
from .storage import Storage, StorageError, comparability, git_commit, git_sha
from .userio import check_output, printable, printable_lines

# The reports (numpy, scipy, jinja2) are imported when a --tlbperf session
# needs them, not when pytest loads the plugin: every pytest run in an
# environment with pytest-tlbperf installed loads it.

DEFAULTS = {"baseline": "mainline", "profiles": ["skylake-2s"], "rounds": 5,
            "max_rounds": 20, "engine": "auto", "storage": ".tlbperf",
            "fail_on": "violation", "backend": "model", "host_window": 1000,
            "host_warmup": 1000}
BACKENDS = ("model", "host")
FORMATS = ("pytest-benchmark", "pyperf")          # reports.export.FORMATS
# what fails the run, each level including the ones after it: 'regression'
# fails on a significant regression *and* on any violation that fails under
# 'violation' (an undeclared or lost one); 'none' only reports
FAIL_ON = ("regression", "violation", "none")
WIDTH = 100
MAX_ROUNDS = 10_000       # seeds per cell: a bound on a typo's cost, far beyond any use


def pytest_addoption(parser):
    group = parser.getgroup("tlbperf", "TLB-shootdown / lazy-TLB suites (pytest-tlbperf)")

    def add(flag, ini, help, ini_type=None, **kw):
        group.addoption(flag, dest=ini, help=f"{help} [ini: {ini}]", **kw)
        parser.addini(ini, help=help, type=ini_type, default=None)

    add("--tlbperf", "tlbperf", "run the tlbperf suites (without it they are skipped)",
        ini_type="bool", action="store_true", default=None)
    add("--tlbperf-policy", "tlbperf_policy", "candidate policy: a registered name, "
        "module:Class, or path/to/file.py[:Class]; repeatable; the verdict and the exit "
        "status speak about the candidates (default: every registered policy is one)",
        ini_type="linelist", action="append", metavar="POLICY")
    add("--tlbperf-reference", "tlbperf_reference", "with --tlbperf-policy: also run this "
        "policy as a reference row, shown beside the candidates but never counted in the "
        "verdict or the exit status; 'all' for every registered policy; repeatable "
        "(default: none)", ini_type="linelist", action="append", metavar="POLICY|all")
    add("--tlbperf-baseline", "tlbperf_baseline", "policy the candidates are compared "
        "against (default: mainline)", metavar="POLICY")
    add("--tlbperf-profile", "tlbperf_profile", "machine profile, name or .toml path; "
        "repeatable; overrides the suites' own choice", ini_type="linelist", action="append",
        metavar="PROFILE")
    add("--tlbperf-extra-profile", "tlbperf_extra_profile", "also run every suite test on "
        "this profile, beside its own ones; repeatable", ini_type="linelist",
        action="append", metavar="PROFILE")
    add("--tlbperf-touched-profiles", "tlbperf_touched_profiles", "where a candidate's "
        "effective knobs (after configure()) differ from the baseline's on a profile in a "
        "way none of a suite test's own profiles shows: 'run' the test there too "
        "(default), or only 'list' the profile in the summary",
        choices=selection.TOUCHED_MODES)
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
    add("--tlbperf-compare", "tlbperf_compare", "compare with a saved run: its id, name, "
        "commit prefix, or a git name of its commit (main or another branch: its merge-base "
        "with HEAD; HEAD~1; a tag) (default: the latest); each cell runs the saved cell's "
        "seeds, so the comparison is paired where the programs match", nargs="?",
        const="latest", metavar="RUN")
    add("--tlbperf-fail-on", "tlbperf_fail_on", "what fails the run: 'violation' (default: "
        "a violation the policy does not declare, or a declared one that is lost), "
        "'regression' (a significant regression beyond the threshold, and every violation "
        "'violation' fails on) or 'none'", choices=FAIL_ON)
    add("--tlbperf-threshold", "tlbperf_threshold", "practical threshold in percent: a "
        "change whose whole confidence interval is within +/- it is 'no change', one "
        "beyond it can be a regression or improvement (default: 2); METRIC=PERCENT sets "
        "one metric; repeatable", ini_type="linelist", action="append",
        metavar="[METRIC=]PERCENT")
    add("--tlbperf-max-rounds", "tlbperf_max_rounds", "most seeds per cell: comparisons "
        "still inconclusive after the tests get their seeds doubled, baseline and "
        "candidate alike, up to N (default: 20; N <= --tlbperf-rounds turns it off)",
        type=int, metavar="N")
    add("--tlbperf-json", "tlbperf_json", "write every sample of this run as JSON to PATH",
        metavar="PATH")
    add("--tlbperf-html", "tlbperf_html", "write the regression report as one "
        "self-contained HTML file to PATH", metavar="PATH")
    add("--tlbperf-text", "tlbperf_text", "write the regression report as 80-column text "
        "(ready for an LKML reply) to PATH", metavar="PATH")
    add("--tlbperf-export", "tlbperf_export", "export the samples for other tools: "
        "pytest-benchmark=PATH (read by 'pytest-benchmark compare') or pyperf=PATH (read "
        "by 'python -m pyperf compare_to'); repeatable", ini_type="linelist",
        action="append", metavar="FORMAT=PATH")
    add("--tlbperf-backend", "tlbperf_backend", "what the suites run on: 'model' (the "
        "modeled machine, default) or 'host' (the running kernel: the workloads with a "
        "host form, one sample per measured window)", choices=BACKENDS)
    add("--tlbperf-host-cpus", "tlbperf_host_cpus", "host backend: the CPUs runs may use, "
        "as a cpulist such as 0-3,8 (default: every online CPU this process may run on)",
        metavar="LIST")
    add("--tlbperf-host-window", "tlbperf_host_window", "host backend: one window in ms, "
        "one sample (default: 1000, as will-it-scale; 1..10000)", metavar="MS")
    add("--tlbperf-host-warmup", "tlbperf_host_warmup", "host backend: warm-up before the "
        "first window in ms (default: 1000; 0..60000)", metavar="MS")


def _get(config, name, default=None):
    """Command line first, then the ini file, then the default."""
    value = config.getoption(name)
    if value is not None:
        return value              # "" is a value: --tlbperf-save with no NAME
    try:
        value = config.getini(name)
    except (ValueError, pytest.UsageError) as exc:   # a bool one that is no truth value
        raise pytest.UsageError(f"ini option {name}: {exc}") from None
    return default if value in (None, [], "") else value


def _flag(name) -> str:
    return "--" + name.replace("_", "-")


def _int_option(config, name, default=None):
    """An integer option (--tlbperf-rounds or ini tlbperf_rounds = N) from 1
    to MAX_ROUNDS; anything else is a usage error naming the option."""
    value = _get(config, name)
    if value is None:
        return default
    where = f"{_flag(name)} / ini {name}"
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        raise pytest.UsageError(f"{where}: {value!r} is not an integer") from None
    if not 1 <= number <= MAX_ROUNDS:
        raise pytest.UsageError(f"{where}: {number} is out of range 1..{MAX_ROUNDS}")
    return number


def project_root(config) -> Path:
    """The folder pytest would have taken as rootdir had it known this
    plugin's options.

    pytest finds its rootdir (and ini file) before it loads plugins, so it
    takes the value of `--tlbperf-html /elsewhere/r.html` -- written with a
    space -- for a test path once that file exists, and roots the session at
    a common ancestor: runs were saved to /elsewhere/../.tlbperf as
    0001_unknown.json, outside the repository. Asked again with the test
    paths as finally parsed, pytest's own rule gives the intended folder.
    (`determine_setup` is pytest-internal: on a pytest whose signature
    differs, its rootdir is used.)"""
    try:
        from _pytest.config.findpaths import determine_setup
        root = determine_setup(inifile=config.option.inifilename,
                               override_ini=config.option.override_ini,
                               args=list(config.option.file_or_dir or ()),
                               rootdir_cmd_arg=config.option.rootdir or None,
                               invocation_dir=config.invocation_params.dir)[0]
    except Exception:             # noqa: BLE001 - another pytest: keep its rootdir
        return config.rootpath
    if root != config.rootpath:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"pytest-tlbperf: pytest took an option's value for a test path and chose "
            f"rootdir {config.rootpath} (ini file {config.inipath}); its test paths give "
            f"{root}, where tlbperf keeps its runs. Write path options as "
            f"--tlbperf-html=PATH so that pytest reads the right ini file"), stacklevel=2)
    return root


def storage_path(config, root: Path) -> Path:
    """--tlbperf-storage DIR relative to where pytest was run (as any
    command-line path, in both spellings), ini tlbperf_storage relative to
    the ini file, and the default `.tlbperf` in the project root."""
    value = config.getoption("tlbperf_storage")
    if value is not None:
        return config.invocation_params.dir / Path(value).expanduser()
    value = config.getini("tlbperf_storage")
    if value:
        base = config.inipath.parent if config.inipath else root
        return base / Path(value).expanduser()
    return root / DEFAULTS["storage"]


class TlbperfPlugin:
    """Per-session state and the hooks that need it."""

    def __init__(self, config):
        self.config = config
        self.enabled = bool(_get(config, "tlbperf", False))
        self.baseline = _get(config, "tlbperf_baseline", DEFAULTS["baseline"])
        self.candidates = _get(config, "tlbperf_policy") or None
        self.profiles = _get(config, "tlbperf_profile") or None
        self.rounds_override = _int_option(config, "tlbperf_rounds") if self.enabled else None
        self.engine = _get(config, "tlbperf_engine", DEFAULTS["engine"])
        self.fail_on = _get(config, "tlbperf_fail_on", DEFAULTS["fail_on"])
        self.root = project_root(config) if self.enabled else config.rootpath
        self.storage = Storage(storage_path(config, self.root))
        self.save = _get(config, "tlbperf_save")
        self.autosave = bool(_get(config, "tlbperf_autosave", False))
        self.compare = _get(config, "tlbperf_compare")
        self.json_path = _get(config, "tlbperf_json")
        self.html_path = _get(config, "tlbperf_html")
        self.text_path = _get(config, "tlbperf_text")
        self.exports = _get(config, "tlbperf_export") or []
        self.max_rounds = _int_option(config, "tlbperf_max_rounds", DEFAULTS["max_rounds"]) \
            if self.enabled else DEFAULTS["max_rounds"]
        self.threshold_specs = _get(config, "tlbperf_threshold") or []
        self.is_worker = hasattr(config, "workerinput")
        self.backend = _get(config, "tlbperf_backend", DEFAULTS["backend"])
        self.host_machine = None
        self.host_notes = []
        self.reference = None
        self.storage_errors = []
        self.report = None
        self.adaptive_log = []
        self.late_failures = []
        self._group_of = {}           # pytest-xdist worker: node id -> comparison group,
        self._group_left = {}         # ... group -> its items still to run,
        self._outbox = []             # ... the groups it judged, as JSON, for the next report,
        self._sent = set()            # ... and the cells they held
        self._preparing = False       # pytest-xdist controller: the HTML report loads
        self._frozen = False          # the heap is frozen (_freeze_heap)
        self._judged = False          # pytest-xdist worker: has run a group's rounds
        self.written = []
        self.write_errors = []
        self.saved = None
        self.save_error = None
        self.interrupted = False
        self.failure_reasons = []
        self.thresholds = None
        self._init_selection(config)
        if self.enabled:
            self._validate()
            self._validate_selection()
            if self.backend not in BACKENDS:
                raise pytest.UsageError(f"--tlbperf-backend: {self.backend!r} is not one of "
                                        f"{', '.join(BACKENDS)}")
            if self.backend == "host":
                self._validate_host()
        self.session = Session(HOST_POLICY if self.host_machine else self.baseline,
                               self.options())

    def options(self) -> dict:
        args = list(self.config.invocation_params.args)
        return {"baseline": self.baseline, "policies": self.candidates,
                "profiles": self.profiles, "rounds": self.rounds_override,
                "max_rounds": self.max_rounds, "engine": self.engine,
                "fail_on": self.fail_on,
                "thresholds": self.thresholds.to_dict() if self.thresholds else None,
                "command": ["pytest"] + [str(a) for a in args],
                "invocation_dir": str(self.config.invocation_params.dir),
                # the host backend measures the running kernel, not the policies
                "candidates": None if self.host_machine else self.roles.candidates
                if self.enabled and self.candidates else self.candidates,
                "references": [] if self.host_machine else self.references(),
                "touched": self.touched_log,
                "backend": self.backend,
                "host": self.host_machine.config.to_dict() if self.host_machine else None}

    def _validate(self):
        """Bad names fail before anything runs, with the offending name."""
        if self.engine not in api.ENGINES:
            raise pytest.UsageError(f"--tlbperf-engine: unknown engine {self.engine!r}")
        if self.fail_on not in FAIL_ON:
            raise pytest.UsageError(f"--tlbperf-fail-on: {self.fail_on!r} is not one of "
                                    f"{', '.join(FAIL_ON)}")
        from .reports.thresholds import Thresholds
        try:
            self.thresholds = Thresholds.parse(self.threshold_specs)
        except ValueError as exc:
            raise pytest.UsageError(f"--tlbperf-threshold: {exc}") from None
        for item in self.exports:
            fmt, sep, path = str(item).partition("=")
            if not sep or not path or fmt not in FORMATS:
                raise pytest.UsageError(f"--tlbperf-export: {item!r}: expected FORMAT=PATH "
                                        f"with FORMAT one of {', '.join(FORMATS)}")
        self._validate_outputs()
        if not self.is_worker:      # the controller checked them before starting it
            self._validate_policies()
        if self.compare:
            # workers load it too: each cell runs the saved cell's seeds
            try:
                run = self.storage.find(self.compare, on_error=self.storage_errors.append,
                                        cwd=self.root)
            except StorageError as exc:
                skipped = "".join(f"\n  skipped: {err}" for err in self.storage_errors
                                  if err is not exc)
                raise pytest.UsageError(f"--tlbperf-compare: {exc}{skipped}") from None
            self.reference = run

    def _validate_outputs(self):
        """Every report path is writable before the run starts: a typo must
        not throw a long run's results away at its end."""
        if self.is_worker:
            return
        outputs = [("--tlbperf-json", self.json_path), ("--tlbperf-html", self.html_path),
                   ("--tlbperf-text", self.text_path)]
        outputs += [(f"--tlbperf-export {str(item).partition('=')[0]}",
                     str(item).partition("=")[2]) for item in self.exports]
        for what, path in outputs:
            problem = path and check_output(path, what)
            if problem:
                raise pytest.UsageError(problem)

    def _validate_policies(self):
        """Each policy imports, constructs and configures on every profile
        the run may use, and can run on the chosen engine -- one usage error
        before anything runs, not a failure in every cell."""
        try:
            chosen = [profiles.get(p) for p in self.profiles or profiles.names()]
            for spec in [self.baseline] + list(self.candidates or ()):
                try:
                    policy = policies.resolve(spec)
                    for prof in chosen:
                        policy.knobs(prof)
                except KeyboardInterrupt:   # pytest ends silently here: say where it was
                    sys.stderr.write(printable(f"tlbperf: interrupted while loading policy "
                                               f"{spec}") + "\n")
                    raise
                if self.engine == "native" and policy.has_python_hooks():
                    raise pytest.UsageError(
                        f"--tlbperf-engine native: policy {spec} defines should_flush_cpu, "
                        f"a Python hook the native engine cannot call; use "
                        f"--tlbperf-engine python or auto")
        except TlbperfError as exc:
            raise pytest.UsageError(str(exc)) from None
        if self.engine == "native" and not native.available():
            raise pytest.UsageError("--tlbperf-engine native: the native engine is not built "
                                    "in this installation (no C compiler when it was "
                                    "installed?); use --tlbperf-engine python or auto")

    # -- candidates, references and the profiles their knobs touch ---------------
    def _init_selection(self, config):
        self.reference_specs = _get(config, "tlbperf_reference") or []
        self.extra_profiles = _get(config, "tlbperf_extra_profile") or []
        self.touched_mode = _get(config, "tlbperf_touched_profiles", "run")
        self._roles = None
        self.touched_log = []          # selection.touched's entries, with the test
        self.added = set()             # (test function, profile, policy) run because touched

    def _validate_selection(self):
        """Bad reference names or extra profiles fail before anything runs."""
        if self.touched_mode not in selection.TOUCHED_MODES:
            raise pytest.UsageError(f"--tlbperf-touched-profiles: {self.touched_mode!r} is "
                                    f"not one of {', '.join(selection.TOUCHED_MODES)}")
        try:
            for spec in self.reference_specs:
                if spec != "all":
                    policies.resolve(spec)
            for prof in self.extra_profiles:
                profiles.get(prof)
        except TlbperfError as exc:
            raise pytest.UsageError(str(exc)) from None

    def references(self) -> list:
        return self.roles.references if self.enabled and self.candidates else []

    @property
    def roles(self) -> selection.Roles:
        # made on first use: without --tlbperf, pytest loads this plugin but
        # needs no policy imported
        if self._roles is None:
            self._roles = selection.Roles(self.baseline, self.candidates,
                                          self.reference_specs)
        return self._roles

    def profiles_of(self, metafunc) -> tuple:
        """(profiles, touched entries) of one suite test: the profiles it
        runs on for every policy, and `selection.touched`'s entries -- the
        ADDED ones run the baseline and that candidate there too."""
        marker = metafunc.definition.get_closest_marker("tlbperf")
        chosen = list(self.profiles or (marker and marker.kwargs.get("profiles"))
                      or DEFAULTS["profiles"])
        if not self.enabled:
            return chosen, []
        chosen += [p for p in self.extra_profiles if p not in chosen]
        try:
            entries = selection.touched(chosen, self.roles, selection.universe(chosen),
                                        self.touched_mode, fixed=bool(self.profiles))
        except TlbperfError as exc:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: {exc}") from None
        return chosen, entries

    def seeds_for(self, key, rounds) -> list:
        """The seeds cell `key` = (test, profile, policy) runs: the saved
        run's seeds of the same cell under --tlbperf-compare (so the two
        can be paired seed by seed), else 0 .. rounds - 1."""
        if self.reference is not None:
            for cell in self.reference["cells"]:
                if (cell["test"], cell["profile"], cell["policy"]) == key:
                    seeds = sorted({s["seed"] for s in cell["seeds"]
                                    if isinstance(s.get("seed"), int) and s["seed"] >= 0})
                    if seeds:
                        return seeds
        return list(range(rounds))

    def _validate_host(self):
        """--tlbperf-backend=host: the runner exists, the CPUs and windows
        make sense, and nothing else runs the workloads at the same time."""
        from . import host
        reason = host.unavailable()
        if reason:
            raise pytest.UsageError(f"--tlbperf-backend=host: {reason}")
        if self.is_worker or getattr(self.config.option, "numprocesses", None):
            raise pytest.UsageError("--tlbperf-backend=host measures this machine: run it "
                                    "without pytest-xdist's -n, or the workers' runs would "
                                    "measure each other")
        try:
            config = host.HostConfig(
                cpus=_get(self.config, "tlbperf_host_cpus"),
                window_ms=_get(self.config, "tlbperf_host_window", DEFAULTS["host_window"]),
                warmup_ms=_get(self.config, "tlbperf_host_warmup", DEFAULTS["host_warmup"]))
        except TlbperfError as exc:
            raise pytest.UsageError(f"--tlbperf-backend=host: {exc}") from None
        lo, hi = host.runner.BOUNDS["windows"]
        if self.rounds_override is not None and not lo <= self.rounds_override <= hi:
            raise pytest.UsageError(f"--tlbperf-rounds: with the host backend a round is a "
                                    f"window, {lo}..{hi} per test, not {self.rounds_override}")
        self.host_machine = HostMachine(config, host.machine_identity())
        if self.candidates or self.profiles:
            self.host_notes.append("--tlbperf-policy and --tlbperf-profile choose modeled "
                                   "machines; the host backend measures the running kernel "
                                   "on this machine, so they were not used")

    # -- collection ----------------------------------------------------------
    def policy_list(self) -> list:
        return self.roles.policies()

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc):
        if "tlbperf_cell" not in metafunc.fixturenames:
            return
        if self.host_machine is not None:
            metafunc.parametrize("tlbperf_cell", [(HOST_PROFILE, HOST_POLICY)], ids=["host"])
            return
        marker = metafunc.definition.get_closest_marker("tlbperf")
        if marker is not None and self.enabled:
            check_marker(marker, metafunc.definition.nodeid)
        chosen, entries = self.profiles_of(metafunc)
        cells = [(prof, pol) for prof in chosen for pol in self.policy_list()]
        name = metafunc.function.__name__
        for entry in entries:
            self.touched_log.append(dict(entry, test=name))
            if entry["status"] != selection.ADDED:
                continue
            for pol in (self.baseline, entry["policy"]):
                if (entry["spec"], pol) not in cells:
                    cells.append((entry["spec"], pol))
                    self.added.add((name, entry["spec"], pol))
        metafunc.parametrize("tlbperf_cell", cells,
                             ids=[printable(f"{p}-{pol}") for p, pol in cells])

    @pytest.hookimpl(tryfirst=True)     # before -k / -m select among the built-ins
    def pytest_collection_modifyitems(self, session, items):
        if self.enabled:
            if not items and self.config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR:
                items[:] = self._builtin_suite_items(session)
            return
        skip = pytest.mark.skip(reason="tlbperf suites run with --tlbperf")
        for item in items:
            if "tlbperf_cell" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)

    def _builtin_suite_items(self, session) -> list:
        """`pytest --tlbperf` where there is nothing to collect -- no test
        path given, nothing found (an empty folder holding my_rfc.py) --
        runs the built-in suites, as `--pyargs pytest_tlbperf.suites` would
        (DESIGN 5). Test paths, when given, are taken as they are."""
        spec = importlib.util.find_spec("pytest_tlbperf.suites")
        path = Path(next(iter(spec.submodule_search_locations)))
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"tlbperf: no tests here; running the built-in suites "
                          f"(pytest_tlbperf.suites, {path})")
        # as an initial path, the suites get the node ids `--pyargs` gives them
        # (test_madvise.py::...), not ones relative to an unrelated rootdir
        session._initialpaths = frozenset(getattr(session, "_initialpaths", ())) | {path}
        node = session.config.hook.pytest_collect_directory(path=path, parent=session)
        return [] if node is None else list(session.genitems(node))

    @pytest.hookimpl
    def pytest_collection_finish(self, session):
        self.session.startup_seconds = time.time() - self.session.process_started
        if self.enabled:
            self._freeze_heap()
        if self.enabled and self.is_worker:
            # how many items of each comparison group this worker holds: the
            # scheduler sends a group whole, so its last one here is its last
            policies = self.policy_list()
            for item in session.items:
                # read off the id the controller schedules by, kept by the
                # id the cells record
                group = distribute.comparison_group(item.nodeid, policies)
                self._group_of[_nodeid(item)] = group
                self._group_left[group] = self._group_left.get(group, 0) + 1

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_protocol(self, item, nextitem):
        """On a pytest-xdist worker, after a comparison group's last cell:
        its adaptive rounds, run ahead (`_run_ahead`)."""
        result = yield
        if self.enabled and self.is_worker and not self.interrupted:
            group = self._group_of.get(_nodeid(item))
            left = self._group_left.get(group, 0) - 1
            self._group_left[group] = left
            if left == 0:
                self._run_ahead(group)
        return result

    # -- end of session -----------------------------------------------------------
    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config, log):
        """pytest-xdist controller: -n N (--dist load unless given) and
        --dist loadgroup hand out a comparison's cells together
        (`distribute`); any other --dist is pytest-xdist's."""
        dist = config.getvalue("dist")
        explicit = any(str(a).startswith(("--dist", "-d")) for a in
                       config.invocation_params.args)
        if not self.enabled or self.host_machine is not None or not (
                dist == "loadgroup" or (dist == "load" and not explicit)):
            return None
        return distribute.scheduler(config, log, self.policy_list())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report):
        """pytest-xdist: a worker sends the comparison groups whose rounds it
        has played since its last report with the next one (a TestReport's
        extra attributes travel with it), and the controller takes them
        there. The worker's end then carries only its last group, not the
        whole of its run: 3 MB of JSON made the last worker's last test
        0.06-0.08 s from the controller's taking it, now 0.01 s."""
        if self.is_worker and self._outbox:
            report.tlbperf, self._outbox = self._outbox, []
            try:
                return (yield)
            finally:
                del report.tlbperf
        parts = getattr(report, "tlbperf", None)
        if parts is not None and self.enabled and not self.is_worker:
            del report.tlbperf
            self._take(parts)
        return (yield)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """pytest-xdist controller: take the rest of what a worker ran."""
        parts = getattr(node, "workeroutput", {}).get("tlbperf")
        if parts:
            self._take(parts)
        elif self.enabled:
            self._freeze_heap()

    def _take(self, parts) -> None:
        """pytest-xdist controller: merge what a worker sent (`_ship`), and
        keep the comparisons it computed for this session's judgements.
        What it took lives to the end: frozen (`_freeze_heap`), the full
        collections its growth sets off during the run walk none of it."""
        for text in parts:
            data = json.loads(text)
            self.session.merge(data)
            if data.get("comparisons"):
                from .reports import verdicts
                verdicts.preload(data["comparisons"])
        self._freeze_heap()

    def _ship(self, cells, spare=()) -> dict:
        """A pytest-xdist worker's cells for the controller, with their
        runners' descriptions, the seeds it ran ahead for them and the
        comparisons it computed since it last shipped."""
        cells = sorted(cells, key=lambda c: c.key)
        self._sent.update(c.key for c in cells)
        runners = []
        for cell in cells:
            runner = self.session.runners.get(cell.key)
            spec = runner_spec(*runner) if runner is not None else None
            if spec is not None:
                runners.append([list(cell.key), spec])
        verdicts = sys.modules.get(f"{__package__}.reports.verdicts")    # it judged rounds
        return {"cells": [c.to_dict() for c in cells], "spare": list(spare),
                "comparisons": verdicts.computed() if verdicts else {}, "runners": runners}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node):
        """pytest-xdist controller, first worker up: load the HTML report's
        template and modules (0.3 s) in a thread. From here on the
        controller's own thread only waits for events, and this worker
        waits for the others to collect. Loaded later, when the first worker
        ends, the work fell between the last one's end and the report: the
        workers end 0.1-0.3 s apart.

        The heap is frozen first (`_freeze_heap`): the controller collects
        nothing, so this is its collection's end. Unfrozen, the modules
        loaded next set off a full collection of all of pytest's heap
        (0.02-0.07 s, measured at 3f11f73)."""
        if self.enabled and not self._frozen:
            self._freeze_heap()
        if self.enabled and self.html_path and not self._preparing:
            self._preparing = True
            threading.Thread(target=_prepare_html, daemon=True,
                             name="tlbperf-prepare-html").start()

    def _runner(self, key):
        """The (machine, workload) of a cell: the one the fixture used in
        this process, or one rebuilt from a pytest-xdist worker's
        description; None when neither exists."""
        runner = self.session.runners.get(key)
        if runner is None and key in self.session.runner_specs:
            try:
                runner = runner_from_spec(self.session.runner_specs[key])
            except TlbperfError:
                return None
            self.session.runners[key] = runner
        return runner

    def _extend(self, key, seeds):
        """adaptive.run_rounds' callback: more seeds for one cell, or None.
        A cell whose test failed on a violation is not extended: the run
        fails anyway, and its performance is not the question."""
        cell = self.session.find(key)
        if cell is None or cell.unexpected() or cell.lost():
            return None
        return self.session.extend(key, seeds, lambda: self._runner(key))

    def _judge(self, cells=None):
        """The report's findings as the cells stand (with `cells`, of those
        only: a worker's comparison group), timed as statistics."""
        from .reports.verdicts import compare_runs
        started = time.perf_counter()
        run = self.session.to_run("", False, cells=cells)
        refs = [self.reference] if self.reference is not None else []
        try:
            return compare_runs(run, refs, self.thresholds)
        finally:
            self.session.stats_seconds += time.perf_counter() - started

    # tryfirst: under pytest-xdist the controller's rounds and reports run
    # while the workers end their own sessions, before DSession.
    # pytest_sessionfinish tells them to exit and waits
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.enabled:
            return
        self._freeze_heap()
        if self.is_worker:
            # the cells not shipped with a report yet, and the worker's end
            run = self.session.to_run("", False, cells=[])      # profiles and options
            run.update(self._ship([c for c in self.session.cells if c.key not in self._sent]))
            run["timing"] = {"engine": self.session.engine_seconds, "runs": self.session.runs,
                             "statistics": self.session.stats_seconds,
                             "startup": self.session.startup_seconds,
                             "wall": time.time() - self.session.process_started}
            self.config.workeroutput["tlbperf"] = [*self._outbox, json.dumps(run)]
            return
        if not self.session.cells:
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.interrupted = True       # Ctrl-C: no more seeds, nothing half saved
            return
        try:
            self._finish(session)
        except KeyboardInterrupt:
            self.interrupted = True
            session.exitstatus = pytest.ExitCode.INTERRUPTED

    def _freeze_heap(self) -> None:
        """Move what the heap holds now out of the garbage collector's sight
        (gc.freeze, which only splices lists): at collection's end (modules,
        items), after a pytest-xdist worker's first rounds (numpy and the
        statistics, which the serial session loads only at its end), and
        once the tests are done (every cell). The pytest-xdist controller,
        which collects nothing, freezes when its first worker is up and again
        after each part of a worker's cells it takes (`_take`). Each full
        collection after that walks only what came since. Measured before
        this (`-n 2`, the built-in suites): the workers made 3-4 full
        collections of 0.03-0.05 s in their run, another in the last one's
        hand-over, one in the controller's merge before its report, and
        pytest's two at unconfigure (unraisableexception) in every process.
        Objects made later are collected as ever; a frozen one that dies in
        a cycle waits for `_thaw`, which gives them back at cleanup (modules
        and items live to the end anyway)."""
        self._frozen = True
        gc.freeze()

    def _thaw(self) -> None:
        """config cleanup, after pytest's own (registered first, so run
        last): an in-process run (pytester) leaves the heap as it found it."""
        if self._frozen:
            self._frozen = False
            gc.unfreeze()

    def _run_ahead(self, group) -> None:
        """A pytest-xdist worker's adaptive rounds for one comparison group
        (`distribute`). The controller decides the rounds over the whole
        report (Benjamini-Hochberg needs every comparison), but their seeds
        are the next integers and a seed's sample is a function of the cell
        alone, so the worker that ran the group can run them first: it plays
        the rounds on this group's comparisons, then keeps the seeds it
        added as spares, not in its cells. The controller takes a spare when
        its own rounds ask for that seed and runs any other itself, so the
        result is the serial one whatever the worker guessed."""
        from .reports import adaptive
        cells = [c for c in self.session.cells if self._group_of.get(c.nodeid) == group]
        if not cells:
            return
        had = {c.key: len(c.samples) for c in cells}
        adaptive.run_rounds(lambda: self._judge(cells), self._extend, self.max_rounds,
                            self.baseline)
        spare = []
        for cell in cells:
            if len(cell.samples) > had[cell.key]:
                spare.append([list(cell.key), cell.samples[had[cell.key]:]])
                del cell.samples[had[cell.key]:]
        # the group is done here: it goes with this worker's next report
        self._outbox.append(json.dumps(self._ship(cells, spare)))
        if not self._judged:
            self._judged = True
            self._freeze_heap()

    def _finish(self, session):
        from .reports import adaptive
        from .reports.report import Report
        failing = {c.key for c, *_ in self.session.failures()}
        judge, extend = self._with_progress()
        findings, self.adaptive_log = adaptive.run_rounds(
            judge, extend, self.max_rounds, self.baseline, progress=self._say)
        # seeds added by the adaptive rounds are judged like the tests' own;
        # a reference policy's never fail the run
        self.late_failures = [f for f in self.session.failures() if f[0].key not in failing
                              and self.roles.role(f[0].policy) != selection.REFERENCE]
        self.session.options["adaptive_rounds"] = self.adaptive_log
        self.session.policy_info = self._policy_info()
        commit, dirty = git_commit(self.root)
        run = self._with_host(self.session.to_run(commit, dirty, git_sha(self.root)))
        self.report = Report(run, [self.reference] if self.reference else [], findings,
                             self.thresholds, adaptive_log=self.adaptive_log)
        self._write(run)        # the reports first: a failed save must not lose them
        self._save(run)
        self.failure_reasons = self._failure_reasons()
        failed = bool(self.failure_reasons)
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if (self.write_errors or self.save_error) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def _save(self, run):
        if self.save is None and not self.autosave:
            return
        try:
            self.saved = self.storage.save(run, name=self.save or None)
        except StorageError as exc:
            self.save_error = str(exc)

    def _say(self, message: str) -> None:
        """A progress line while the session ends (adaptive rounds)."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
            tr.line("")             # after the last test's dots and [100%]
        tr.write_line(printable(message))

    def _with_progress(self, every: float = 2.0):
        """(judge, extend) for the adaptive rounds, saying what they do: the
        statistics of every comparison, then more seeds, can take many
        seconds after the last test's dot. A line before each judgement,
        and one every `every` seconds while seeds run."""
        started = last = time.monotonic()
        cells = seeds = judged = 0

        def judge():
            nonlocal judged
            judged += 1
            self._say(f"tlbperf: judging the comparisons{' again' * (judged > 1)} "
                      f"({time.monotonic() - started:.0f} s)")
            return self._judge()

        def extend(key, wanted):
            nonlocal last, cells, seeds
            added = self._extend(key, wanted)
            if added:
                cells, seeds = cells + 1, seeds + added
            now = time.monotonic()
            if now - last >= every:
                last = now
                self._say(f"tlbperf: adaptive rounds: {seeds} more seeds in {cells} cells "
                          f"({now - started:.0f} s)")
            return added
        return judge, extend

    def _failure_reasons(self) -> list:
        """Why this plugin fails the run, one line each: a candidate's
        significant regression under --tlbperf-fail-on=regression, a
        violation the adaptive rounds' extra seeds found."""
        from .reports import text
        out = []
        if self.fail_on != "none":
            for cell, unexpected, lost in self.late_failures:
                out.append(f"the adaptive rounds' extra seeds of {cell.test}[{cell.profile}] "
                           f"{cell.policy} found {', '.join(sorted(unexpected | lost))}")
        regressions = self.report.regressions()
        if regressions and self.fail_on == "regression":
            first = regressions[0]
            more = (f" (and {len(regressions) - 1} more, listed above)"
                    if len(regressions) > 1 else "")
            out.append(f"{len(regressions)} significant regression"
                       f"{'s' * (len(regressions) != 1)} of "
                       f"{', '.join(sorted({f.policy for f in regressions}))} "
                       f"(--tlbperf-fail-on=regression): {first.test}[{first.profile}] "
                       f"{first.metric} {text.change(first)}{more}")
        return out

    @pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_closing_line(self, session, exitstatus):
        """After pytest's own summary line ('2 passed in 3 s', green: every
        test passed), end a run this plugin failed on a red line that says
        why."""
        result = yield
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.enabled and not self.is_worker and self.failure_reasons:
            for reason in self.failure_reasons:
                tr.write_line(f"tlbperf: FAILED: {reason}", red=True, bold=True)
        return result

    def _policy_info(self) -> dict:
        """What the report shows of each policy of the run: its docstring and
        its knobs on every profile (`selection.describe`)."""
        names = {c.policy for c in self.session.cells}
        specs = [p for p in self.roles.policies() if p in names]
        named = list(self.profiles or ()) + list(self.extra_profiles)
        out = {}
        for spec in specs:
            try:
                out[spec] = selection.describe(spec, named)
            except TlbperfError:
                continue             # e.g. a policy file that has gone since
        return out

    def _write(self, run):
        started = time.perf_counter()
        try:
            self._write_reports(run)
        finally:
            self.session.report_seconds += time.perf_counter() - started

    def _write_reports(self, run):
        from .reports import export, html, text
        outputs = []
        if self.json_path:
            outputs.append((self.json_path, lambda fh: json.dump(run, fh, indent=1,
                                                                 sort_keys=True)))
        if self.text_path:
            outputs.append((self.text_path, lambda fh: fh.write(
                text.render(self.report) + self._host_text(run))))
        if self.html_path:
            outputs.append((self.html_path, lambda fh: html.write(self.report, fh)))
        for item in self.exports:
            fmt, _, path = item.partition("=")
            outputs.append((path, lambda fh, fmt=fmt: fh.write(export.FORMATS[fmt](run))))
        for path, write in outputs:
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    write(fh)
            except (OSError, TlbperfError) as exc:
                self.write_errors.append(f"cannot write {path}: "
                                         f"{getattr(exc, 'strerror', None) or exc}")
                continue
            self.written.append(path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo):
        """Ctrl-C in the middle of the engine can land where CPython 3.11
        records no line number: the traceback entry's tb_lineno is None
        (Python prints "line -1"), and pytest's report of the interrupt then
        fails with a TypeError and a raw traceback of its own. Such entries
        say nothing anyway: drop them before pytest formats the rest."""
        try:
            excinfo.traceback = excinfo.traceback.filter(_has_line)
        except Exception:       # noqa: BLE001 - another pytest: leave it as it is
            pass

    def _with_host(self, run) -> dict:
        """A host run says so, and carries the kernel's identity, how it
        measured and where each counter came from (or why it is missing)."""
        if self.host_machine is None:
            return run
        m = self.host_machine
        return dict(run, backend="host", host={
            "identity": m.identity, "settings": m.config.to_dict(), "counters": m.counters})

    def _host_text(self, run) -> str:
        from .host import report as host_report
        lines = host_report.text(run, [self.reference] if self.reference else [])
        return "\n".join([""] + lines) + "\n" if lines else ""

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if self.enabled and not self.is_worker and self.interrupted:
            terminalreporter.write_line("tlbperf: interrupted: no adaptive rounds were run, "
                                        "no report written and nothing saved", yellow=True)
        if not self.enabled or self.is_worker or self.report is None:
            return
        summary_started = time.perf_counter()
        from .reports import text
        tr = terminalreporter
        s = self.session
        report = self.report
        tr.section("tlbperf", sep="=")
        for line in text.render(report, violations=False, command=False).splitlines():
            tr.write_line(printable(line)[:WIDTH])
        from .host import report as host_report
        if self.host_machine is not None:
            host_lines = host_report.text(report.run, [self.reference] if self.reference
                                          else [])
        else:       # a model run compared with a host run: say that nothing matches
            host_lines = host_report.comparison(report.run, self.reference) \
                if self.reference else []
        for line in host_lines:
            tr.write_line(printable(line)[:WIDTH], yellow=line.startswith("warning"))
        for note in self.host_notes:
            tr.write_line(f"tlbperf: note: {note}", yellow=True)
        if self.reference is not None:
            for warning in comparability(self.session.to_run("", False), self.reference):
                tr.write_line(f"tlbperf: warning: {warning}", yellow=True)
            ref = {(c["test"], c["profile"], c["policy"]) for c in self.reference["cells"]}
            missing = sorted(ref - {c.key for c in s.cells})
            if missing:
                tr.write_line(f"{len(missing)} cells of run {self.reference['id']} were not "
                              f"run this time")
        stuck = [f for f in report.findings if f.design == "paired"
                 and f.verdict == "inconclusive" and 0 < len(f.seeds) < self.max_rounds]
        if stuck:
            tr.write_line(f"tlbperf: {len(stuck)} inconclusive comparison"
                          f"{'s' * (len(stuck) != 1)} kept {'its' if len(stuck) == 1 else 'their'}"
                          f" seeds (failed cell, or custom workload under xdist)", yellow=True)
        for err in self.storage_errors:
            tr.write_line(f"tlbperf: skipped unreadable saved run: {err}", yellow=True)
        lines = text.violation_lines(report, width=WIDTH)
        if lines:
            tr.section("tlbperf violations", sep="-")
            for line in lines:
                tr.write_line(printable(line))
        s.report_seconds += time.perf_counter() - summary_started
        tr.write_line(s.breakdown())
        for path in self.written:
            tr.write_line(f"tlbperf: wrote {path}")
        if self.saved:
            tr.write_line(f"tlbperf: saved run {self.saved.name} in {self.storage.path}")
        if self.save_error:
            tr.write_line(f"tlbperf: error: the run was not saved: {self.save_error}"
                          f"{'; the reports above were written' if self.written else ''}",
                          red=True)
        for err in self.write_errors:
            tr.write_line(f"tlbperf: error: {err}", red=True)
        for reason in self.failure_reasons:
            tr.write_line(f"tlbperf: FAILED: {reason}", red=True)


# -- registration, marker, fixtures ------------------------------------------------
def _prepare_html() -> None:
    """reports.html.prepare in a thread: an error there is met again, and
    reported, where the report is written."""
    try:
        from .reports import html
        html.prepare()
    except Exception:       # whatever it is: see the docstring
        pass


def _freeze_at_exit() -> None:
    """Keep the interpreter's last collection off the heap a --tlbperf session
    leaves: it walks and frees every object, 0.2-0.3 s measured in each of the
    controller and the workers, and the controller waits for its workers'
    exit before its own summary. The kernel takes the pages back at once. Only
    finalizers of objects in cycles are skipped, which CPython never promises
    at exit; every report and saved run is closed before this point."""
    gc.freeze()


def _one_blas_thread(config) -> None:
    """OPENBLAS_NUM_THREADS=1 for a --tlbperf session that has not set it,
    put back at cleanup; the pytest-xdist workers this process spawns
    inherit it. tlbperf's statistics never call BLAS, but each copy of
    OpenBLAS that numpy and scipy load starts a thread per CPU, less one,
    and each spins on its CPU for about 0.1 s before it sleeps. Serially
    that takes CPUs the session leaves idle; under -n every process loads
    them (the controller two copies, each worker one) and they take CPU
    from the other workers: -n 2 of the built-in suites was 0.08-0.26 s
    slower in three alternated runs. A process that loaded numpy earlier (a
    conftest importing it) keeps its threads; its workers still get one.
    joblib's loky workers cap the same variable (joblib/joblib#940)."""
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    config.add_cleanup(lambda: os.environ.pop("OPENBLAS_NUM_THREADS", None))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tlbperf(profiles=None, rounds=None, metrics=None, shows=None): a tlbperf "
        "suite test: the profiles where its question matters, seeds per cell, the metrics "
        "its summary shows, the violation kinds it can demonstrate")
    plugin = TlbperfPlugin(config)
    config.pluginmanager.register(plugin, "tlbperf-session")
    config._tlbperf = plugin
    if plugin.enabled:
        # before pytest's plugins add theirs (this hook runs first), so that
        # it runs after their cleanups: unraisableexception's collects
        config.add_cleanup(plugin._thaw)
        _one_blas_thread(config)
        # atexit, not unconfigure: in-process runs (pytester) keep collecting
        atexit.unregister(_freeze_at_exit)
        atexit.register(_freeze_at_exit)


@pytest.fixture
def tlbperf_cell(request):
    """(profile, policy) of the current cell, set by the plugin's parametrization."""
    return request.param


@pytest.fixture
def tlb_machine(tlbperf_cell, request):
    """The modeled machine of this cell: `.run(workload, seed)`, `.knobs`,
    `.profile`, `.policy`."""
    plugin = request.config._tlbperf
    if plugin.host_machine is not None:
        return plugin.host_machine
    profile, policy = tlbperf_cell
    try:
        return ModeledMachine(profile, policy, plugin.engine)
    except TlbperfError as exc:        # e.g. configure() fails on a marker's profile
        pytest.fail(printable_lines(str(exc)), pytrace=False)


@pytest.fixture
def tlbperf(tlb_machine, request):
    """`tlbperf(workload, metrics=None)` runs the workload on this cell's
    machine for every seed, records the samples and judges violations."""
    plugin = request.config._tlbperf
    marker = request.node.get_closest_marker("tlbperf")
    kwargs = marker.kwargs if marker else {}
    rounds = plugin.rounds_override or kwargs.get("rounds") or DEFAULTS["rounds"]
    metrics = kwargs.get("metrics") or DEFAULT_METRICS
    params = {k: v for k, v in getattr(request.node, "callspec", None).params.items()
              if k != "tlbperf_cell"} if hasattr(request.node, "callspec") else {}
    test = printable(request.node.originalname + (
        "[" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "]" if params else ""))
    if plugin.host_machine is not None:
        return HostFixture(tlb_machine, test, rounds, metrics, plugin.session)
    seeds = plugin.seeds_for((test, tlb_machine.profile.name, tlb_machine.policy_name), rounds)
    profile_spec, policy_spec = request.getfixturevalue("tlbperf_cell")
    # a reference policy's violations are reported, never fail the run
    fail_on = "none" if plugin.roles.role(policy_spec) == selection.REFERENCE \
        else plugin.fail_on
    added = (request.node.originalname, profile_spec, policy_spec) in plugin.added
    try:
        same = selection.same_knobs(policy_spec, profile_spec, plugin.roles.policies())
    except TlbperfError:
        same = None                   # configure() fails: tlb_machine has said so
    return TlbperfFixture(tlb_machine, test, seeds, metrics, kwargs.get("shows", ()),
                          plugin.session, fail_on, nodeid=_nodeid(request.node),
                          touched=added, same_knobs=same)


def _nodeid(item) -> str:
    """The item's node id as the serial run has it: under `--dist
    loadgroup` pytest-xdist's workers append '@' and the names of its
    xdist_group marks (xdist/remote.py, WorkerInteractor)."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
             for m in item.iter_markers("xdist_group")}
    suffix = "@" + "_".join(sorted(names)) if names else ""
    nodeid = item.nodeid
    return nodeid[:-len(suffix)] if suffix and nodeid.endswith(suffix) else nodeid


def _has_line(entry) -> bool:
    try:
        entry.lineno                    # tb_lineno - 1: a TypeError when it is None
    except TypeError:
        return False
    return True


# -- the marker --------------------------------------------------------------------
def check_marker(marker, nodeid: str) -> None:
    """@pytest.mark.tlbperf(...)'s arguments, checked when the test is
    collected: a bad one is a collection error naming the test and the
    argument, not a crash in every cell."""
    def bad(message):
        pytest.fail(f"{nodeid}: @pytest.mark.tlbperf: {message}", pytrace=False)

    kwargs = marker.kwargs
    unknown = set(kwargs) - {"profiles", "rounds", "metrics", "shows"}
    if unknown or marker.args:
        bad(f"unknown argument(s) {', '.join(sorted(unknown)) or repr(marker.args)}; it "
            f"takes profiles=, rounds=, metrics=, shows=")
    for key, known, what in (("metrics", METRICS, "metrics"),
                             ("shows", abi.VIOLATION_KINDS, "violation kinds")):
        values = kwargs.get(key)
        if values is None:
            continue
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            bad(f"{key}= must be a list of names, got {values!r}")
        unknown = [v for v in values if v not in known]
        if unknown:
            bad(f"{key}=: unknown {what} {', '.join(map(repr, unknown))}; {what} are "
                f"{', '.join(known)}")
    names = kwargs.get("profiles")
    if names is not None:
        if isinstance(names, str) or not all(isinstance(v, str) for v in names) or not names:
            bad(f"profiles= must be a non-empty list of profile names or .toml paths, got "
                f"{names!r}")
        for name in names:
            try:
                profiles.get(name)
            except TlbperfError as exc:
                bad(f"profiles=: {exc}")
    rounds = kwargs.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int)
                               or not 1 <= rounds <= MAX_ROUNDS):
        bad(f"rounds= must be an integer from 1 to {MAX_ROUNDS}, got {rounds!r}")
