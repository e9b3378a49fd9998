"""How a `pytest --tlbperf` session spreads over pytest-xdist workers.

A comparison pairs the cells of one test on one profile, one per policy
(baseline and candidates), and the adaptive rounds add seeds to both sides
of a comparison the report cannot decide. So the unit of work a worker gets
is that group, not a cell: `ComparisonScheduling` is pytest-xdist's
LoadScopeScheduling with the group as the scope. A worker that has run a
group's last cell plays the group's adaptive rounds at once
(`plugin.TlbperfPlugin._run_ahead`), which keeps the rounds -- two thirds of
the engine's runs of the built-in suites -- spread over the workers instead
of left to the controller after the tests. The worker sends the group --
its cells, the seeds it ran ahead and the comparisons it computed
(`reports.verdicts.computed`) -- with its next test report, so the
controller merges as the run goes, its rounds over the whole report run
nothing and compute no comparison again, and a worker's end carries only
its last group.

The group is read off the node id, on the controller and the workers alike
(the controller collects nothing): `test.py::test_x[<profile>-<policy>...]`
without its `-<policy>`, the id `pytest_generate_tests` gives a cell. A node
id grouped by an `xdist_group` mark (`...@name`, pytest-xdist before pytest
9.2) is scheduled by that name, as `--dist loadgroup` does: pytest 9.2's
structured node ids lost that suffix, so `--dist loadgroup` by marks alone
no longer groups anything (pytest-dev/pytest-xdist#1386), and this
scheduler is what groups a tlbperf session's cells under it too.

Which group goes next matters at the end: the session lasts until the last
group's rounds are done, and the groups of the built-in suites differ by a
hundredfold (a context-switch comparison with its rounds, 2-3 s; a
membarrier litmus one, 0.01 s). The costs are not known before the run, but
a test's cells cost alike on every profile, roughly, so the scheduler learns
them as it goes, by the test and its own parameters (`test_of`: tlb_flush2's
cells with 16 threads cost 3x those with 4): the next group a worker gets is
one of a test not seen yet, else the one the seconds per cell seen so far of
its test expect to take longest.
The heavy groups run early and the light ones fill the end. xdist hands
groups out in collection order, which put a 0.5 s context-switch group on
zen1-epyc last in the runs recorded, and the workers of the built-in suites
went down 0.06-0.52 s apart (0.36 s on average over twelve -n 2 runs); now
0.15-0.28 s apart. Which worker runs a group never changes its results.
"""

from __future__ import annotations

import functools

from .userio import printable


@functools.lru_cache(maxsize=8)
def _longest_first(policies: tuple) -> tuple:
    """The policies' names as node ids print them, longest first (so
    `-mainline_v6_6` is not read as `-mainline`). Once per policy list: asked
    for every node id on the controller and the workers."""
    return tuple(sorted((printable(str(p)) for p in policies), key=len, reverse=True))


def _policy_in(nodeid: str, policies):
    """(index of '[', the parameters, where `-<policy>` starts in them, the
    policy) of a tlbperf cell's node id `test[<profile>-<policy>...]`, else
    None."""
    start = nodeid.find("[")
    if start < 0 or not nodeid.endswith("]"):
        return None
    params = nodeid[start + 1:-1]
    for policy in _longest_first(tuple(policies)):
        for tail in (f"-{policy}-", f"-{policy}"):
            at = params.find(tail)
            if at > 0 and (tail.endswith("-") or at + len(tail) == len(params)):
                return start, params, at, policy
    return None


def comparison_group(nodeid: str, policies) -> str:
    """The scope of `nodeid`: its `xdist_group` name if it carries one, a
    tlbperf cell's test and profile (its id without `-<policy>`), else the
    node id itself (a test of its own)."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid[nodeid.rfind("@") + 1:]
    found = _policy_in(nodeid, policies)
    if found is None:
        return nodeid
    start, params, at, policy = found
    return f"{nodeid[:start]}[{params[:at]}{params[at + len(policy) + 1:]}]"


def test_of(nodeid: str, policies) -> str:
    """What a cell's cost is learned by: its test with the test's own
    parameters, without profile and policy -- `test_tlb_flush2[16]` apart
    from `test_tlb_flush2[4]`, whose cells cost a third as much. A test's
    cells cost alike on every profile, roughly; its parameters change the
    work itself."""
    found = _policy_in(nodeid, policies)
    if found is None:
        return nodeid.partition("[")[0]
    start, params, at, policy = found
    rest = params[at + len(policy) + 2:]
    return f"{nodeid[:start]}[{rest}]" if rest else nodeid[:start]


def scheduler(config, log, policies):
    """pytest-xdist's LoadScopeScheduling by comparison group, the group
    expected longest first."""
    from xdist.scheduler import LoadScopeScheduling

    class ComparisonScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            self._spent = {}            # test -> [seconds, cells] run so far
            self._keys = {}             # node id -> (comparison group, test)

        def _keys_of(self, nodeid: str) -> tuple:
            # asked again for every cell a worker completes, and for every
            # queued group each time a worker gets one
            keys = self._keys.get(nodeid)
            if keys is None:
                keys = self._keys[nodeid] = (comparison_group(nodeid, policies),
                                             test_of(nodeid, policies))
            return keys

        def _split_scope(self, nodeid: str) -> str:
            return self._keys_of(nodeid)[0]

        def _expected(self, scope: str) -> float:
            cells = self.workqueue[scope]
            seconds, seen = self._spent.get(self._keys_of(next(iter(cells)))[1], (0.0, 0))
            return seconds / seen * len(cells) if seen else float("inf")

        def mark_test_complete(self, node, item_index, duration=0):
            # duration: the worker's whole runtest protocol, a group's
            # adaptive rounds included (they run after its last cell)
            spent = self._spent.setdefault(
                self._keys_of(self.registered_collections[node][item_index])[1], [0.0, 0])
            spent[0] += duration
            spent[1] += 1
            super().mark_test_complete(node, item_index, duration)

        def remove_node(self, node):
            """A worker that crashed: its unfinished groups go back on the
            queue without the cell it crashed in, which pytest-xdist then
            reports as failed (as --dist load does). LoadScopeScheduling put
            the whole workload back: a group the worker had finished went
            out again as no test at all, and the worker that got it waited
            for work forever (the session hung), while the cell that crashed
            ran again on every new worker until xdist gave up. The crashed
            worker's finished cells of an unfinished group are lost with it;
            its finished groups reached the controller with its reports."""
            workload = self.assigned_work.pop(node)
            unfinished = [(scope, unit) for scope, unit in workload.items()
                          if not all(unit.values())]
            if not unfinished:
                return None
            crashitem = next(nodeid for nodeid, done in unfinished[0][1].items() if not done)
            unfinished[0][1][crashitem] = True
            for scope, unit in unfinished:
                if not all(unit.values()):
                    self.workqueue[scope] = unit
            for other in self.assigned_work:
                self._reschedule(other)
            return crashitem

        def _assign_work_unit(self, node):
            # xdist hands out the queue's first group: make it the longest
            # expected (the first of equals, so unseen tests go in xdist's order)
            longest = max(self.workqueue, key=self._expected)
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return ComparisonScheduling(config, log)
