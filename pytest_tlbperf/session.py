"""The results of one `pytest --tlbperf` session: every (test, profile,
policy) cell with its per-seed samples, how its violations are judged, and
the one serializer every output uses (saved runs, --tlbperf-json, the
reports and exports, the xdist transport). Rendering lives in
`pytest_tlbperf.reports`."""

from __future__ import annotations

import statistics
import time

from . import api
from .result import Violation
from .storage import FORMAT, VERSION


class Cell:
    """One (test, profile, policy): the samples of every seed it ran.

    `expected` is what the policy declares for this profile; `shows` what the
    suite test says it can demonstrate; a kind both expected and shown that
    does not appear is *lost* (a strict XPASS: the oracle lost its teeth).
    `nodeid` is the pytest item that made it (how a report's reproduce
    command selects it); `touched` marks a cell run only because the
    candidate's knobs differ from the baseline's on this profile
    (`pytest_tlbperf.selection`). `same_knobs` names the first policy of
    the session (the baseline first) whose effective knobs on this profile
    equal this one's: the engine reads knobs only, so its runs are that
    policy's, run once (`Session.run`), and the report says so."""

    __slots__ = ("test", "profile", "policy", "workload", "engine", "metrics", "samples",
                 "expected", "shows", "rounds", "nodeid", "touched", "same_knobs")

    def __init__(self, test, profile, policy, workload, engine, metrics, samples,
                 expected=(), shows=(), rounds=None, nodeid=None, touched=False,
                 same_knobs=None):
        self.test, self.profile, self.policy = test, profile, policy
        self.workload, self.engine, self.metrics = workload, engine, list(metrics)
        self.samples = samples     # [{"seed", "metrics", "violations", "program_digest"}]
        # seeds the test itself ran: the first look of the adaptive rounds
        self.rounds = len(samples) if rounds is None else rounds
        self.expected, self.shows = frozenset(expected), frozenset(shows)
        self.nodeid, self.touched = nodeid, bool(touched)
        self.same_knobs = same_knobs

    @property
    def key(self):
        return (self.test, self.profile, self.policy)

    def violations(self):
        return [Violation.from_dict(v) for s in self.samples for v in s["violations"]]

    def kinds(self) -> set:
        return {v["kind"] for s in self.samples for v in s["violations"]}

    def unexpected(self) -> set:
        return self.kinds() - self.expected

    def lost(self) -> set:
        return (self.expected & self.shows) - self.kinds()

    def median(self, metric):
        values = [s["metrics"][metric] for s in self.samples if metric in s["metrics"]]
        return statistics.median(values) if values else None

    def to_dict(self) -> dict:
        return {"test": self.test, "profile": self.profile, "policy": self.policy,
                "workload": self.workload, "engine": self.engine, "metrics": self.metrics,
                "expected": sorted(self.expected), "shows": sorted(self.shows),
                "rounds": self.rounds, "nodeid": self.nodeid, "touched": self.touched,
                "same_knobs": self.same_knobs, "seeds": self.samples}

    @classmethod
    def from_dict(cls, d) -> "Cell":
        return cls(d["test"], d["profile"], d["policy"], d.get("workload", ""),
                   d.get("engine", ""), d.get("metrics", ()), d["seeds"],
                   d.get("expected", ()), d.get("shows", ()), d.get("rounds"),
                   d.get("nodeid"), d.get("touched", False), d.get("same_knobs"))


def sample(result) -> dict:
    """One seed of a cell as saved: its metrics, its violations and the
    digest of the program it executed (what pairs it with the same seed of
    another run, across commits)."""
    return {"seed": result.seed, "metrics": dict(result.metrics),
            "violations": [v.to_dict() for v in result.violations],
            "program_digest": result.program_digest}


_first_session = True


def process_started() -> float:
    """When this process started, in time.time()'s terms (Linux: its start
    time in /proc/self/stat, in clock ticks since boot), so the terminal
    summary's start-up includes the interpreter's and pytest's imports;
    elsewhere, or for a second session in one process (pytest.main() called
    again, pytester), now."""
    import os
    global _first_session
    first, _first_session = _first_session, False
    if not first:
        return time.time()
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


class Session:
    """Every cell of one `pytest --tlbperf` session.

    `runners` maps a cell key to the (ModeledMachine, Workload) that made it,
    in this process; `runner_specs` to a JSON description of them received
    from a pytest-xdist worker. Both serve the adaptive rounds, which run
    more seeds of a cell after the tests; neither is saved. `spare` holds
    the samples a worker ran ahead for the adaptive rounds (`plugin.
    TlbperfPlugin._run_ahead`): {cell key: {seed: sample}}, used instead of
    running that seed again.

    Where this process's time went, for the terminal summary (`breakdown`):
    `engine_seconds` inside the engine's run loop, `stats_seconds` judging
    comparisons, `startup_seconds` from the process's start to the end of
    collection, `report_seconds` writing reports; `worker_seconds` holds
    each pytest-xdist worker's own figures."""

    RUNS_KEPT = 1 << 14         # results kept for policies with equal knobs (Session.run)

    def __init__(self, baseline: str, options: dict):
        self.baseline = baseline
        self.options = options
        self.cells: list = []
        self.profiles: dict = {}     # name -> digest
        self.started = time.time()
        self.process_started = process_started()
        self.startup_seconds = 0.0   # process start to the end of collection
        self.engine_seconds = 0.0
        self.runs = 0                # engine runs made (not taken from Session.run's cache)
        self.stats_seconds = 0.0
        self.report_seconds = 0.0    # writing the reports and the terminal summary
        self.workers = 0             # pytest-xdist workers whose cells were merged
        self.worker_seconds: list = []
        self.runners: dict = {}
        self.runner_specs: dict = {}
        self.spare: dict = {}
        self.policy_info: dict = {}  # policy -> selection.describe(), for the reports
        self._runs: dict = {}        # ModeledMachine.run_key -> (engine, sample)
        self._by_key: dict = {}      # cell key -> first cell with it (find),
        self._indexed = 0            # ... made of self.cells[:_indexed]

    def add(self, cell: Cell, profile_digest: str, seconds: float = 0.0, runner=None) -> None:
        """Record a cell; `seconds` is engine time not already counted by
        `run` (the host backend's measuring)."""
        self.cells.append(cell)
        self.profiles[cell.profile] = profile_digest
        self.engine_seconds += seconds
        if runner is not None:
            self.runners[cell.key] = runner

    def find(self, key):
        # the adaptive rounds look a cell up per seed they add: index the
        # cells as they come in (cells are only ever appended)
        for cell in self.cells[self._indexed:]:
            self._by_key.setdefault(cell.key, cell)
        self._indexed = len(self.cells)
        return self._by_key.get(key)

    def run(self, machine, workload, seed: int) -> tuple:
        """(engine, sample) of one seed on a ModeledMachine. A run is a
        function of the profile, the knobs, the engine and the program
        (`ModeledMachine.run_key`), never of the policy's name: a policy
        whose knobs equal another's on this profile -- the RAR RFC on a part
        without RAR, a candidate that changes nothing there --
        gets that policy's result instead of running it again."""
        key = machine.run_key(workload, seed)
        hit = self._runs.get(key) if key is not None else None
        if hit is None:
            result = machine.run(workload, seed=seed)
            self.engine_seconds += result.engine_seconds
            self.runs += 1
            hit = (result.engine, sample(result))
            if key is not None:
                self._runs[key] = hit
                if len(self._runs) > self.RUNS_KEPT:
                    del self._runs[next(iter(self._runs))]
        return hit[0], dict(hit[1])

    def extend(self, key, seeds: int, runner) -> int:
        """Run cell `key` on the next seeds until it has `seeds` of them, with
        `runner()` -> (machine, workload) or None; returns how many were
        added, or None when a seed must run and there is no runner. A seed
        a worker already ran (`spare`) is taken from there, without asking
        for the runner (rebuilding one configures its policy again)."""
        cell = self.find(key)
        spare = self.spare.get(key, {})
        first = max((s["seed"] for s in cell.samples), default=-1) + 1
        wanted = range(first, first + max(seeds - len(cell.samples), 0))
        machine = workload = None
        if any(seed not in spare for seed in wanted):
            made = runner()
            if made is None:
                return None
            machine, workload = made
        for seed in wanted:
            found = spare.pop(seed, None)
            cell.samples.append(found if found is not None
                                else self.run(machine, workload, seed)[1])
        return len(wanted)

    def breakdown(self, now=None) -> str:
        """Where the wall time went, one line: serial, this process's; under
        pytest-xdist, the workers' figures summed, then the controller's."""
        wall = (now or time.time()) - self.process_started

        def share(x):
            return f"{x:.1f} s ({x / wall:.0%})" if wall > 0 else f"{x:.1f} s"
        if not self.worker_seconds:
            other = wall - self.engine_seconds - self.stats_seconds - self.startup_seconds \
                - self.report_seconds
            return (f"tlbperf: {wall:.1f} s wall: engine {share(self.engine_seconds)} "
                    f"({self.runs} runs), "
                    f"statistics {share(self.stats_seconds)}, collection and start-up "
                    f"{share(self.startup_seconds)}, reports {share(self.report_seconds)}, "
                    f"other {share(max(other, 0.0))}")
        w = self.worker_seconds

        def total(what):
            return sum(t.get(what, 0.0) for t in w)
        walls = "/".join(f"{t.get('wall', 0.0):.1f}" for t in w)
        return (f"tlbperf: {wall:.1f} s wall with {len(w)} workers: engine "
                f"{total('engine'):.1f} s ({total('runs'):.0f} runs), statistics "
                f"{total('statistics'):.1f} s, collection and start-up "
                f"{total('startup'):.1f} s summed over the workers ({walls} s each, start "
                f"to end); controller: engine {share(self.engine_seconds)} ({self.runs} "
                f"runs), statistics {share(self.stats_seconds)}, reports "
                f"{share(self.report_seconds)}")

    # -- one serializer for every output ---------------------------------
    def to_run(self, commit, dirty, commit_sha=None, cells=None) -> dict:
        """The run as saved; with `cells`, of those cells only (a pytest-xdist
        worker judging one comparison group)."""
        cells = self.cells if cells is None else cells
        return {"format": FORMAT, "version": VERSION, "id": "", "name": None,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit,
                "commit_sha": commit_sha, "dirty": dirty, "model_version": api.MODEL_VERSION,
                "baseline": self.baseline, "options": self.options,
                "profiles": dict(sorted(self.profiles.items())),
                "engines": sorted({c.engine for c in cells}),
                "policies": self.policy_info,
                "cells": [c.to_dict() for c in sorted(cells, key=lambda c: c.key)]}

    def merge(self, data: dict) -> None:
        """Take what a pytest-xdist worker sent the controller: the cells of
        each comparison group as its rounds end, with the descriptions of
        their runners and the samples it ran ahead for them; at its end, the
        rest, its profiles, options and timing."""
        self.cells.extend(Cell.from_dict(c) for c in data["cells"])
        for key, spec in data.get("runners", ()):
            self.runner_specs[tuple(key)] = spec
        for key, samples in data.get("spare", ()):
            self.spare.setdefault(tuple(key), {}).update((s["seed"], s) for s in samples)
        if "timing" not in data:
            return
        self.profiles.update(data["profiles"])
        self.worker_seconds.append(data["timing"] or {})
        # the profiles a worker added for a candidate's knobs: workers collect,
        # the controller does not
        touched = self.options.setdefault("touched", [])
        for entry in (data.get("options") or {}).get("touched", ()):
            if entry not in touched:
                touched.append(entry)
        self.workers += 1

    # -- judging -------------------------------------------------------------
    def failures(self) -> list:
        """[(cell, unexpected kinds, lost kinds)] for cells that fail."""
        return [(c, c.unexpected(), c.lost()) for c in sorted(self.cells, key=lambda c: c.key)
                if c.unexpected() or c.lost()]
