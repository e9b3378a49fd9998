"""How a `pytest --tlbperf` session spreads over pytest-xdist workers.

A comparison pairs the cells of one test on one profile, one per policy
(baseline and candidates), and the adaptive rounds add seeds to both sides
of a comparison the report cannot decide. So the unit of work a worker gets
is that group, not a cell: `ComparisonScheduling` is pytest-xdist's
LoadScopeScheduling with the group as the scope. A worker that has run a
group's last cell plays the group's adaptive rounds at once
(`plugin.TlbperfPlugin._run_ahead`), which keeps the rounds -- two thirds of
the engine's runs of the built-in suites -- spread over the workers instead
of left to the controller after the tests. The worker hands the controller
its seeds and the comparisons it computed (`reports.verdicts.computed`), so
the controller's rounds over the whole report run nothing and compute no
comparison again: they only merge.

The group is read off the node id, on the controller and the workers alike
(the controller collects nothing): `test.py::test_x[<profile>-<policy>...]`
without its `-<policy>`, the id `pytest_generate_tests` gives a cell. A node
id grouped by an `xdist_group` mark (`...@name`, pytest-xdist before pytest
9.2) is scheduled by that name, as `--dist loadgroup` does: pytest 9.2's
structured node ids lost that suffix, so `--dist loadgroup` by marks alone
no longer groups anything (pytest-dev/pytest-xdist#1386), and this
scheduler is what groups a tlbperf session's cells under it too.
"""

from __future__ import annotations

from .userio import printable


def comparison_group(nodeid: str, policies) -> str:
    """The scope of `nodeid`: its `xdist_group` name if it carries one, a
    tlbperf cell's test and profile (its id without `-<policy>`), else the
    node id itself (a test of its own)."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid[nodeid.rfind("@") + 1:]
    start = nodeid.find("[")
    if start < 0 or not nodeid.endswith("]"):
        return nodeid
    params = nodeid[start + 1:-1]
    for policy in sorted((printable(str(p)) for p in policies), key=len, reverse=True):
        for tail in (f"-{policy}-", f"-{policy}"):
            at = params.find(tail)
            if at > 0 and (tail.endswith("-") or at + len(tail) == len(params)):
                return f"{nodeid[:start]}[{params[:at]}{params[at + len(policy) + 1:]}]"
    return nodeid


def scheduler(config, log, policies):
    """pytest-xdist's LoadScopeScheduling by comparison group."""
    from xdist.scheduler import LoadScopeScheduling

    class ComparisonScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return comparison_group(nodeid, policies)

    return ComparisonScheduling(config, log)
