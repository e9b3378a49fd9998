"""`tlbperf history`: every saved run in git order, one series per (suite
test, profile, policy, metric), and the commits where a series changes
(DESIGN §6, "across commits").

Order: runs are placed by their commit's position in HEAD's history (`git
rev-list --topo-order`), not by file name or save time -- a run saved late
for an old commit lands where that commit is. Runs of commits outside
HEAD's history (another branch, a rebased-away commit) are left out and
listed. Several runs of one commit: the latest one counts.

Value per run: the median of the cell's per-seed values (what a reviewer
reads in a report).

Change points: Apache Otava (incubating, Apache-2.0), the change-point
detector DataStax and MongoDB built for performance CI: e-divisive
(Matteson & James 2014) split over sliding windows, with a Student t-test
as significance test and a merge step that drops weak points (Fleming et
al., "Hunter: Using Change Point Detection to Hunt for Performance
Regressions", ICPE 2023, doi:10.1145/3578244.3583719). It is deterministic
(no permutation test), works on short series, and takes a minimum relative
change, which here is the report's practical threshold (2%), so a history
flags what a report would call a change. A point is flagged at the first
commit of the new level.

Why Otava and not signal-processing-algorithms (MongoDB's e-divisive),
measured here with pip in fresh venvs on Python 3.11: both install and are
Apache-2.0, but signal-processing-algorithms 2.1.6 (last release 2024-12)
requires numpy < 2 and pulls in gevent and structlog, and its significance
test is a random permutation test (a report would need its seed pinned);
apache-otava 0.8.0 (released 2026-05, active) is deterministic and needs
only numpy and scipy at run time. Its pins (numpy == 2.2.0, scipy 1.16 on
Python 3.11) and its service clients (BigQuery, Postgres, Slack) are why it
is an optional extra, `pip install 'pytest-tlbperf[history]'`, not a
dependency of the plugin.
"""

from __future__ import annotations

import statistics

from pytest_tlbperf.errors import TlbperfError
from pytest_tlbperf.metrics import METRICS
from pytest_tlbperf.storage import git_order, run_matches_sha

from .thresholds import DEFAULT_THRESHOLD

MAX_PVALUE = 0.001           # Otava's default significance for a change point
WINDOW = 50                  # Otava's default window (commits)
INSTALL = "pip install 'pytest-tlbperf[history]'"


def _otava():
    try:
        from otava.analysis import compute_change_points
    except ImportError:
        raise TlbperfError(f"tlbperf history finds change points with Apache Otava, which "
                           f"is not installed: {INSTALL}") from None
    return compute_change_points


class ChangePoint:
    """A series changes at run `index` (the first run of the new level)."""

    __slots__ = ("index", "before", "after", "pvalue")

    def __init__(self, index, before, after, pvalue):
        self.index, self.before, self.after, self.pvalue = index, before, after, pvalue

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")


class Series:
    """One (test, profile, policy, metric) across the runs: `values[i]` is
    the median in run i, or None when that run lacks the cell."""

    __slots__ = ("test", "profile", "policy", "metric", "values", "points")

    def __init__(self, test, profile, policy, metric, values):
        self.test, self.profile, self.policy, self.metric = test, profile, policy, metric
        self.values = values
        self.points = []

    @property
    def label(self) -> str:
        return f"{self.test}[{self.profile}] {self.policy}"


def order(runs, cwd=None) -> tuple:
    """(runs in git order, [(run, why)] left out): the latest run of each
    commit of HEAD's history, oldest commit first."""
    shas = git_order(cwd)
    if not shas:
        raise TlbperfError("tlbperf history needs a git work tree: the saved runs are put in "
                           "the order of HEAD's history")
    position = {sha: i for i, sha in enumerate(shas)}
    by_commit, skipped = {}, []
    for run in runs:                      # oldest file first: a later one replaces it
        sha = run.get("commit_sha") or next((s for s in shas if run_matches_sha(run, s)), None)
        if sha not in position:
            skipped.append((run, "its commit is not in HEAD's history"))
            continue
        if sha in by_commit:
            skipped.append((by_commit[sha], "a later run of the same commit replaces it"))
        by_commit[sha] = run
    ordered = [by_commit[sha] for sha in sorted(by_commit, key=position.__getitem__)]
    return ordered, skipped


def build(runs, metric=None, policy=None) -> list:
    """Every series of the ordered runs, filtered by metric and policy."""
    keys = {}
    for run in runs:
        for cell in run["cells"]:
            if policy and cell["policy"] != policy:
                continue
            for m in cell.get("metrics", ()):
                if metric and m != metric:
                    continue
                keys.setdefault((cell["test"], cell["profile"], cell["policy"], m), None)
    out = []
    for test, profile, pol, m in sorted(keys):
        values = []
        for run in runs:
            cell = next((c for c in run["cells"] if (c["test"], c["profile"], c["policy"])
                         == (test, profile, pol)), None)
            vals = [s["metrics"][m] for s in (cell or {}).get("seeds", ())
                    if m in s["metrics"]]
            values.append(statistics.median(vals) if vals else None)
        out.append(Series(test, profile, pol, m, values))
    return out


def detect(series, threshold=DEFAULT_THRESHOLD, max_pvalue=MAX_PVALUE) -> list:
    """Otava's change points of one series (missing runs skipped), at least
    `threshold` relative change each."""
    compute = _otava()
    present = [(i, v) for i, v in enumerate(series.values) if v is not None]
    if len(present) < 3:
        return []
    values = [float(v) for _, v in present]
    points, _ = compute(values, window_len=WINDOW, max_pvalue=max_pvalue,
                        min_magnitude=threshold)
    out = []
    for cp in points:
        k = int(cp.index)
        out.append(ChangePoint(present[k][0], float(cp.stats.mean_1), float(cp.stats.mean_2),
                               float(cp.stats.pvalue)))
    return out


class History:
    """Everything `tlbperf history` prints: the runs in git order, their
    series and change points."""

    def __init__(self, runs, cwd=None, metric=None, policy=None,
                 threshold=DEFAULT_THRESHOLD):
        if metric and metric not in METRICS:
            raise TlbperfError(f"--metric: unknown metric {metric!r}; metrics are "
                               f"{', '.join(METRICS)}")
        self.runs, self.skipped = order(runs, cwd)
        self.threshold = threshold
        self.series = build(self.runs, metric, policy)
        if policy and not self.series:
            raise TlbperfError(f"--policy: no saved run has policy {policy!r}")
        for s in self.series:
            s.points = detect(s, threshold)

    def commit(self, index) -> str:
        return str(self.runs[index].get("commit", "?"))

    def changes(self) -> list:
        """[(series, change point)] in commit order."""
        return sorted(((s, p) for s in self.series for p in s.points),
                      key=lambda sp: (sp[1].index, sp[0].metric, sp[0].label))


def render_text(history) -> str:
    import textwrap

    from . import text
    lines = textwrap.wrap(
        f"tlbperf history: {len(history.runs)} runs in git order, {len(history.series)} "
        f"series; change points by Apache Otava (e-divisive + t-test, p < {MAX_PVALUE:g}, "
        f"change >= {history.threshold:.0%})", text.WIDTH)
    for i, run in enumerate(history.runs):
        lines.append(f"  {i + 1:3d}  {history.commit(i):28s} run {run.get('id', '?')}")
    for run, why in history.skipped:
        lines.append(f"  left out: run {run.get('id', '?')} ({run.get('commit', '?')}): {why}")
    changes = history.changes()
    lines.append("")
    if not changes:
        lines.append("no change points")
    for s, p in changes:
        lines.append(text.cut(f"{history.commit(p.index)}: {s.metric} "
                              f"{text.pct(p.ratio)}% ({text.num(p.before)} -> "
                              f"{text.num(p.after)} {METRICS[s.metric].unit}, p "
                              f"{text.pvalue(p.pvalue)})", text.WIDTH))
        lines.append(text.cut(f"    {s.label}", text.WIDTH))
    return "\n".join(lines) + "\n"


def render_html(history) -> str:
    """One self-contained page: per metric a trend plot (each series
    relative to its first value) with the change points marked."""
    from . import html
    return html.render_history(history)
