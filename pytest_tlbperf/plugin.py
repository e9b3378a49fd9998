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

import json
import time

import pytest

from . import api, policies, profiles
from .errors import TlbperfError
from .fixture import (DEFAULT_METRICS, HOST_POLICY, HOST_PROFILE, HostFixture, HostMachine,
                      ModeledMachine, TlbperfFixture, runner_from_spec, runner_spec)
from .metrics import METRICS
from .session import Session
from .storage import Storage, StorageError, git_commit, git_sha

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
        self.html_path = _get(config, "tlbperf_html")
        self.text_path = _get(config, "tlbperf_text")
        self.exports = _get(config, "tlbperf_export") or []
        max_rounds = _get(config, "tlbperf_max_rounds")
        self.max_rounds = int(max_rounds) if max_rounds is not None else DEFAULTS["max_rounds"]
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
        self.written = []
        self.write_errors = []
        self.thresholds = None
        if self.enabled:
            self._validate()
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
                "backend": self.backend,
                "host": self.host_machine.config.to_dict() if self.host_machine else None}

    def _validate(self):
        """Bad names fail before anything runs, with the offending name."""
        if self.engine not in api.ENGINES:
            raise pytest.UsageError(f"--tlbperf-engine: unknown engine {self.engine!r}")
        if self.fail_on not in FAIL_ON:
            raise pytest.UsageError(f"--tlbperf-fail-on: {self.fail_on!r} is not one of "
                                    f"{', '.join(FAIL_ON)}")
        from .reports.verdicts import Thresholds
        try:
            self.thresholds = Thresholds.parse(self.threshold_specs)
        except ValueError as exc:
            raise pytest.UsageError(f"--tlbperf-threshold: {exc}") from None
        if self.max_rounds < 1:
            raise pytest.UsageError("--tlbperf-max-rounds must be at least 1")
        for item in self.exports:
            fmt, sep, path = str(item).partition("=")
            if not sep or not path or fmt not in FORMATS:
                raise pytest.UsageError(f"--tlbperf-export: {item!r}: expected FORMAT=PATH "
                                        f"with FORMAT one of {', '.join(FORMATS)}")
        try:
            for spec in [self.baseline] + list(self.candidates or ()):
                policies.resolve(spec)
            for prof in self.profiles or ():
                profiles.get(prof)
        except TlbperfError as exc:
            raise pytest.UsageError(str(exc)) from None
        if self.rounds_override is not None and self.rounds_override < 1:
            raise pytest.UsageError("--tlbperf-rounds must be at least 1")
        if self.compare:
            # workers load it too: each cell runs the saved cell's seeds
            try:
                run = self.storage.find(self.compare, on_error=self.storage_errors.append,
                                        cwd=self.config.rootpath)
            except StorageError as exc:
                skipped = "".join(f"\n  skipped: {err}" for err in self.storage_errors)
                raise pytest.UsageError(f"--tlbperf-compare: {exc}{skipped}") from None
            self.reference = run

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
        candidates = self.candidates or [p for p in policies.names() if p != self.baseline]
        return [self.baseline] + [p for p in candidates if p != self.baseline]

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc):
        if "tlbperf_cell" not in metafunc.fixturenames:
            return
        if self.host_machine is not None:
            metafunc.parametrize("tlbperf_cell", [(HOST_PROFILE, HOST_POLICY)], ids=["host"])
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
        runner = self._runner(key)
        if runner is None:
            return None
        return self.session.extend(key, seeds, runner)

    def _judge(self):
        from .reports.verdicts import compare_runs
        run = self.session.to_run("", False)
        refs = [self.reference] if self.reference is not None else []
        return compare_runs(run, refs, self.thresholds)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.enabled:
            return
        if self.is_worker:
            run = self.session.to_run("", False)
            run["engine_seconds"] = self.session.engine_seconds
            run["runners"] = [[list(key), spec] for key, spec in (
                (key, runner_spec(*runner)) for key, runner in
                sorted(self.session.runners.items())) if spec is not None]
            self.config.workeroutput["tlbperf"] = json.dumps(run)
            return
        if not self.session.cells:
            return
        if self.host_machine is not None and exitstatus == pytest.ExitCode.INTERRUPTED:
            # Ctrl-C: the runner stopped mid-window; a run with some cells
            # missing must not be saved, or later compared, as a whole one
            return
        from .reports import adaptive
        from .reports.report import Report
        failing = {c.key for c, *_ in self.session.failures()}
        findings, self.adaptive_log = adaptive.run_rounds(
            self._judge, self._extend, self.max_rounds, self.baseline)
        # seeds added by the adaptive rounds are judged like the tests' own
        self.late_failures = [f for f in self.session.failures() if f[0].key not in failing]
        self.session.options["adaptive_rounds"] = self.adaptive_log
        commit, dirty = git_commit(self.config.rootpath)
        run = self._with_host(self.session.to_run(commit, dirty, git_sha(self.config.rootpath)))
        self.saved = None
        if self.save is not None or self.autosave:
            self.saved = self.storage.save(run, name=self.save or None)
            run = self.storage.load_file(self.saved)       # with its id and name
        self.report = Report(run, [self.reference] if self.reference else [], findings,
                             self.thresholds, adaptive_log=self.adaptive_log)
        self._write(run)
        failed = ((self.fail_on == "regression" and self.report.regressions())
                  or (self.fail_on != "none" and self.late_failures))
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.write_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def _write(self, run):
        from .reports import export, html, text
        outputs = []
        if self.json_path:
            outputs.append((self.json_path, lambda fh: json.dump(run, fh, indent=1,
                                                                 sort_keys=True)))
        if self.text_path:
            outputs.append((self.text_path, lambda fh: fh.write(
                text.render(self.report) + self._host_text(run))))
        if self.html_path:
            outputs.append((self.html_path, lambda fh: fh.write(html.render(self.report))))
        for item in self.exports:
            fmt, _, path = item.partition("=")
            outputs.append((path, lambda fh, fmt=fmt: fh.write(export.FORMATS[fmt](run))))
        for path, write in outputs:
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    write(fh)
            except (OSError, TlbperfError) as exc:
                self.write_errors.append(f"cannot write {path}: {exc}")
                continue
            self.written.append(path)

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
        if not self.enabled or self.is_worker or self.report is None:
            return
        from .reports import text
        tr = terminalreporter
        s = self.session
        report = self.report
        tr.section("tlbperf", sep="=")
        for line in text.render(report, violations=False, command=False).splitlines():
            tr.write_line(line[:WIDTH])
        from .host import report as host_report
        if self.host_machine is not None:
            host_lines = host_report.text(report.run, [self.reference] if self.reference
                                          else [])
        else:       # a model run compared with a host run: say that nothing matches
            host_lines = host_report.comparison(report.run, self.reference) \
                if self.reference else []
        for line in host_lines:
            tr.write_line(line[:WIDTH], yellow=line.startswith("warning"))
        for note in self.host_notes:
            tr.write_line(f"tlbperf: note: {note}", yellow=True)
        if self.reference is not None:
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
                tr.write_line(line)
        for cell, unexpected, lost in self.late_failures:
            kinds = ", ".join(sorted(unexpected | lost))
            tr.write_line(f"tlbperf: FAILED: the adaptive rounds' extra seeds of "
                          f"{cell.test}[{cell.profile}] {cell.policy} found {kinds}", red=True)
        regressions = report.regressions()
        if regressions and self.fail_on == "regression":
            tr.write_line(f"tlbperf: FAILED: {len(regressions)} significant regression"
                          f"{'s' * (len(regressions) != 1)} (--tlbperf-fail-on=regression)",
                          red=True)
        wall = time.time() - s.started
        if s.workers:
            tr.write_line(f"tlbperf: {s.engine_seconds:.1f} s in the engine summed over "
                          f"{s.workers} workers, {wall:.1f} s wall")
        else:
            tr.write_line(f"tlbperf: {s.engine_seconds:.1f} s in the engine, "
                          f"{max(wall - s.engine_seconds, 0):.1f} s elsewhere, of {wall:.1f} s")
        if getattr(self, "saved", None):
            tr.write_line(f"tlbperf: saved run {self.saved.name} in {self.storage.path}")
        for path in self.written:
            tr.write_line(f"tlbperf: wrote {path}")
        for err in self.write_errors:
            tr.write_line(f"tlbperf: error: {err}", red=True)


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
    if plugin.host_machine is not None:
        return plugin.host_machine
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
    if plugin.host_machine is not None:
        return HostFixture(tlb_machine, test, rounds, metrics, plugin.session)
    seeds = plugin.seeds_for((test, tlb_machine.profile.name, tlb_machine.policy_name), rounds)
    return TlbperfFixture(tlb_machine, test, seeds, metrics,
                          kwargs.get("shows", ()), plugin.session, plugin.fail_on)
