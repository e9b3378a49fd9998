"""Adaptive rounds: more seeds for the comparisons a report cannot decide.

Where it runs, and why: after every test has run (in the plugin's
`pytest_sessionfinish`, on the controller under pytest-xdist), because only
then are all comparisons known, and the Benjamini-Hochberg adjustment --
hence whether a comparison is `inconclusive` -- depends on all of them. A
test cannot know that on its own.

How: judge the report; for every *paired* comparison that is inconclusive
and has fewer than `max_rounds` seeds, extend both of its cells -- the
candidate and the baseline of that (test, profile) -- to the same new seed
count, through the same `ModeledMachine.run` path the fixture used. Repeat
until no inconclusive comparison can grow. Pairing is preserved because
both sides run the same new seeds (seed i of the workload is seed i for
every policy), and the result is deterministic because the seeds are the
next integers after those already run, the engine is deterministic per
seed, and the report's statistics are exact (no resampling): the same
session always ends with the same seeds in every cell, whatever the test
order or the number of xdist workers.

The schedule doubles the seeds (5 -> 10 -> 20 by default), and the looks
form a group-sequential design with a stated overall error rate
(`sequential`: Lan-DeMets O'Brien-Fleming-type alpha spending, split across
the looks): each look's p is judged against the alpha that look may spend,
so stopping early on a lucky look cannot inflate the false-positive rate.
Comparisons identical on every seed so far are inconclusive until enough
seeds bound the share of seeds on which they differ (`verdicts.verdict`),
so they grow too.

Comparisons against a saved run are not extended: the saved side cannot
grow, and their verdict uses what both runs hold (one look).
"""

from __future__ import annotations

from . import stats, verdicts
from .sequential import next_size

DEFAULT_MAX_ROUNDS = 20


def plan(findings, max_rounds: int, baseline: str) -> dict:
    """{(test, profile, policy): seeds wanted} for the cells of every paired
    inconclusive finding that can still grow. Both sides of a comparison
    are listed with the same target, so they stay paired."""
    wanted = {}
    for f in findings:
        if (f.design != stats.PAIRED or f.verdict != verdicts.INCONCLUSIVE
                or f.reference != baseline):
            continue
        n = len(f.seeds)
        if n == 0 or n >= max_rounds:
            continue
        target = next_size(n, max_rounds)
        for policy in (f.policy, baseline):
            key = (f.test, f.profile, policy)
            wanted[key] = max(wanted.get(key, 0), target)
    return wanted


def run_rounds(judge, extend, max_rounds: int, baseline: str, progress=None) -> tuple:
    """Extend cells until no inconclusive paired comparison can grow.

    judge() -> the report's findings as the cells stand; extend(key, seeds)
    -> how many seeds it added to cell `key` to reach `seeds` (0 if it had
    them), or None if that cell cannot be extended (its comparison then
    stays as it is). Stops when a round adds no seed. Returns the final
    findings and a log [(round, cells grown, seed counts wanted)]."""
    log = []
    stuck = set()
    step = 0
    while True:
        findings = judge()
        wanted = {k: v for k, v in plan(findings, max_rounds, baseline).items()
                  if k not in stuck}
        if not wanted:
            return findings, log
        step += 1
        grew = 0
        for key, seeds in sorted(wanted.items()):
            added = extend(key, seeds)
            if added is None:
                stuck.add(key)
            elif added:
                grew += 1
        if not grew:
            return findings, log
        log.append((step, grew, sorted(set(wanted.values()))))
        if progress:
            progress(f"tlbperf: adaptive round {step}: {grew} cells extended to "
                     f"{'/'.join(map(str, sorted(set(wanted.values()))))} seeds")
