"""The results of one `pytest --tlbperf` session: every (test, profile,
policy) cell with its per-seed samples, how its violations are judged, the
one serializer every output uses (saved runs, --tlbperf-json, the xdist
transport), and the terminal summary."""

from __future__ import annotations

import statistics
import time

from . import api
from .metrics import METRICS
from .result import Violation
from .storage import FORMAT, VERSION

WIDTH = 100


class Cell:
    """One (test, profile, policy): the samples of every seed it ran.

    `expected` is what the policy declares for this profile; `shows` what the
    suite test says it can demonstrate; a kind both expected and shown that
    does not appear is *lost* (a strict XPASS: the oracle lost its teeth)."""

    __slots__ = ("test", "profile", "policy", "workload", "engine", "metrics", "samples",
                 "expected", "shows")

    def __init__(self, test, profile, policy, workload, engine, metrics, samples,
                 expected=(), shows=()):
        self.test, self.profile, self.policy = test, profile, policy
        self.workload, self.engine, self.metrics = workload, engine, list(metrics)
        self.samples = samples     # [{"seed", "metrics", "violations"}]
        self.expected, self.shows = frozenset(expected), frozenset(shows)

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
                "seeds": self.samples}

    @classmethod
    def from_dict(cls, d) -> "Cell":
        return cls(d["test"], d["profile"], d["policy"], d.get("workload", ""),
                   d.get("engine", ""), d.get("metrics", ()), d["seeds"],
                   d.get("expected", ()), d.get("shows", ()))


def sample(result) -> dict:
    return {"seed": result.seed, "metrics": dict(result.metrics),
            "violations": [v.to_dict() for v in result.violations]}


class Session:
    def __init__(self, baseline: str, options: dict):
        self.baseline = baseline
        self.options = options
        self.cells: list = []
        self.profiles: dict = {}     # name -> digest
        self.started = time.time()
        self.engine_seconds = 0.0
        self.workers = 0             # pytest-xdist workers whose cells were merged

    def add(self, cell: Cell, profile_digest: str, seconds: float) -> None:
        self.cells.append(cell)
        self.profiles[cell.profile] = profile_digest
        self.engine_seconds += seconds

    # -- one serializer for every output ---------------------------------
    def to_run(self, commit, dirty) -> dict:
        return {"format": FORMAT, "version": VERSION, "id": "", "name": None,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit,
                "dirty": dirty, "model_version": api.MODEL_VERSION,
                "baseline": self.baseline, "options": self.options,
                "profiles": dict(sorted(self.profiles.items())),
                "engines": sorted({c.engine for c in self.cells}),
                "cells": [c.to_dict() for c in sorted(self.cells, key=lambda c: c.key)]}

    def merge(self, data: dict) -> None:
        """Take cells a worker (pytest-xdist) sent to the controller."""
        self.cells.extend(Cell.from_dict(c) for c in data["cells"])
        self.profiles.update(data["profiles"])
        self.engine_seconds += data.get("engine_seconds", 0.0)
        self.workers += 1

    # -- judging -------------------------------------------------------------
    def failures(self) -> list:
        """[(cell, unexpected kinds, lost kinds)] for cells that fail."""
        return [(c, c.unexpected(), c.lost()) for c in sorted(self.cells, key=lambda c: c.key)
                if c.unexpected() or c.lost()]

    # -- terminal summary ----------------------------------------------------
    def summary_lines(self, reference=None, reference_label="baseline") -> list:
        """Baseline (or a stored run) vs each candidate, per cell and metric:
        medians over seeds, Δ%, and a violation mark (! unexpected,
        x expected, - lost)."""
        cells = {c.key: c for c in self.cells}
        ref = reference if reference is not None else {
            (t, p): c for (t, p, pol), c in cells.items() if pol == self.baseline}
        lines = [f"{'cell':<34}{'policy':<18}{'metric':<21}{reference_label[:9]:>9}"
                 f"{'this':>9} {'Δ%':>8} viol"]
        lines.append("-" * WIDTH)
        for key in sorted(cells):
            test, profile, policy = key
            cell = cells[key]
            if reference is None and policy == self.baseline:
                continue
            base = ref.get((test, profile, policy) if reference is not None else (test, profile))
            name = f"{test}[{profile}]"
            mark = _mark(cell)
            for metric in cell.metrics:
                b = base.median(metric) if base else None
                v = cell.median(metric)
                delta = "" if b in (None, 0) or v is None else f"{(v - b) / b:+.1%}"
                lines.append(f"{_cut(name, 33):<34}{_cut(policy, 17):<18}{_cut(metric, 20):<21}"
                             f"{_num(b):>9}{_num(v):>9} {delta:>8} {mark}")
                name, policy, mark = "", "", ""
        return lines

    def violation_lines(self) -> list:
        lines = []
        for cell in sorted(self.cells, key=lambda c: c.key):
            kinds = cell.kinds()
            if not kinds and not cell.lost():
                continue
            where = f"{cell.test}[{cell.profile}] {cell.policy}"
            for kind in sorted(kinds):
                status = "expected" if kind in cell.expected else "UNEXPECTED"
                first = next(v for v in cell.violations() if v.kind == kind)
                seeds = sum(1 for s in cell.samples
                            if any(v["kind"] == kind for v in s["violations"]))
                lines.append(f"{where}: {kind} ({status}, {seeds}/{len(cell.samples)} seeds)")
                if status != "expected":
                    lines.extend("  " + line for line in first.format().splitlines())
            for kind in sorted(cell.lost()):
                lines.append(f"{where}: {kind} LOST: declared in known_violations but no "
                             f"longer found -- the oracle has lost its teeth")
        return lines


def _mark(cell) -> str:
    if cell.unexpected():
        return "!"
    if cell.lost():
        return "-"
    return "x" if cell.kinds() else ""


def _num(value) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1e7:
        return f"{value:.3g}"
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def _cut(text, width) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
