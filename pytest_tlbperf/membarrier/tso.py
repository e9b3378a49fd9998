"""An explicit-state checker for x86-TSO, with IPIs (DESIGN §6, last bullet).

The machine is the operational x86-TSO of Sewell, Sarkar, Owens, Zappa Nardelli
and Myreen ("x86-TSO: A Rigorous and Usable Programmer's Model for x86
Multiprocessors", CACM 2010), which matches the Intel SDM Vol. 3A §8.2.2 rules
and every example of §8.2.3:

* each CPU has a FIFO store buffer; a store enters it;
* a load reads the CPU's newest buffered store to that location if there is
  one (store forwarding, SDM Example 8-5), else memory;
* the oldest buffered store may drain to memory at any time -- a
  nondeterministic step of its own;
* MFENCE/``smp_mb()``, a LOCK-prefixed RMW and a serializing event (the CR3
  write) can only execute with an empty store buffer; the RMW then reads and
  writes memory in one step, bypassing the buffer;
* an IPI is taken by its target between any two of the target's instructions
  (or after its last), once it was sent; interrupt entry plus ``ipi_mb()`` is a
  full barrier, so the target takes it only with an empty store buffer.
  ``wait_ipi`` blocks until every IPI its CPU sent has been taken.

`check()` explores every interleaving breadth-first over hashable `State`s
with a visited set -- so it terminates and counts distinct states -- and keeps,
for each reachable final state (registers + memory, all buffers drained), the
first, hence shortest, interleaving that reaches it.  Nothing but the stdlib.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .litmus import (Fence, LitmusProgram, Load, Nop, Rmw, SendIpi, Serialize, SkipIfEq,
                     Store, WaitIpi, note_suffix)

__all__ = ["State", "FinalState", "Outcome", "initial_state", "successors", "check",
           "StateLimitExceeded", "DEFAULT_MAX_STATES"]

#: a litmus test the size of the membarrier scenarios needs a few thousand;
#: the limit only turns a runaway program into an error instead of a hang
DEFAULT_MAX_STATES = 2_000_000


class StateLimitExceeded(RuntimeError):
    """The program has more states than `check(max_states=...)` allows."""


class State(NamedTuple):
    """One machine state.  Everything is a tuple, so states hash and compare."""
    pcs: tuple        # next instruction per CPU
    regs: tuple       # per CPU: register values, in LitmusProgram.registers[cpu] order
    bufs: tuple       # per CPU: store buffer, oldest first: ((loc, value), ...)
    mem: tuple        # value per location, in LitmusProgram.locations order
    ipis: frozenset   # IPIs sent and not yet taken: {(sender, target)}


def initial_state(prog: LitmusProgram) -> State:
    return State(pcs=(0,) * len(prog.threads),
                 regs=tuple((0,) * len(regs) for regs in prog.registers),
                 bufs=((),) * len(prog.threads),
                 mem=tuple(prog.init[loc] for loc in prog.locations),
                 ipis=frozenset())


def _put(tup: tuple, i: int, value) -> tuple:
    return tup[:i] + (value,) + tup[i + 1:]


def _set_reg(prog: LitmusProgram, regs: tuple, reg: str, value) -> tuple:
    cpu, i = prog.reg_slot(reg)
    return _put(regs, cpu, _put(regs[cpu], i, value))


def _get_reg(prog: LitmusProgram, regs: tuple, reg: str):
    cpu, i = prog.reg_slot(reg)
    return regs[cpu][i]


def successors(prog: LitmusProgram, st: State):
    """Yield ``(step, next_state)`` for every transition enabled in `st`.

    `step` is the readable line a witness is made of."""
    for cpu, code in enumerate(prog.threads):
        buf = st.bufs[cpu]

        # The oldest buffered store reaches memory: may happen at any time.
        if buf:
            (loc, value), rest = buf[0], buf[1:]
            yield (f"cpu{cpu}: drain {loc}={value}",
                   st._replace(bufs=_put(st.bufs, cpu, rest),
                               mem=_put(st.mem, prog.loc_slot(loc), value)))

        # A pending IPI is taken.  Interrupt entry + ipi_mb() is a full barrier,
        # so it waits for an empty buffer; it is taken even if this CPU has
        # finished its program or is itself spinning in wait_ipi.  All IPIs
        # pending for this CPU are handled in one go, as
        # flush_smp_call_function_queue() runs the whole csd list.
        senders = sorted(s for s, t in st.ipis if t == cpu)
        if senders and not buf:
            who = ", ".join(f"cpu{s}" for s in senders)
            yield (f"cpu{cpu}: IPI from {who} taken: ipi_mb() (full barrier)",
                   st._replace(ipis=frozenset(p for p in st.ipis if p[1] != cpu)))

        pc = st.pcs[cpu]
        if pc == len(code):
            continue
        ins = code[pc]
        note = note_suffix(ins.note)
        advanced = _put(st.pcs, cpu, pc + 1)

        if isinstance(ins, Store):
            yield (f"cpu{cpu}: store {ins.loc}={ins.value} -> buffer{note}",
                   st._replace(pcs=advanced,
                               bufs=_put(st.bufs, cpu, buf + ((ins.loc, ins.value),))))

        elif isinstance(ins, Load):
            # newest buffered store to the location wins (SDM Example 8-4/8-5)
            forwarded = [v for loc, v in buf if loc == ins.loc]
            if forwarded:
                value, how = forwarded[-1], " (forwarded from own store buffer)"
            else:
                value, how = st.mem[prog.loc_slot(ins.loc)], ""
            yield (f"cpu{cpu}: load {ins.reg}={ins.loc} -> {value}{how}{note}",
                   st._replace(pcs=advanced, regs=_set_reg(prog, st.regs, ins.reg, value)))

        elif isinstance(ins, (Fence, Serialize)):
            if not buf:
                kind = "serializing" if isinstance(ins, Serialize) else "full barrier"
                yield (f"cpu{cpu}: {ins.name} ({kind}){note}", st._replace(pcs=advanced))

        elif isinstance(ins, Rmw):
            if not buf:
                slot = prog.loc_slot(ins.loc)
                old = st.mem[slot]
                new = ins.apply(old)
                regs = st.regs if ins.reg is None else _set_reg(prog, st.regs, ins.reg, old)
                got = f", {ins.reg} <- {old}" if ins.reg else ""
                yield (f"cpu{cpu}: locked {ins.op} {ins.loc}: {old} -> {new}{got}{note}",
                       st._replace(pcs=advanced, regs=regs, mem=_put(st.mem, slot, new)))

        elif isinstance(ins, Nop):
            yield f"cpu{cpu}: {ins.name}{note}", st._replace(pcs=advanced)

        elif isinstance(ins, SendIpi):
            yield (f"cpu{cpu}: send IPI -> cpu{ins.target}{note}",
                   st._replace(pcs=advanced, ipis=st.ipis | {(cpu, ins.target)}))

        elif isinstance(ins, WaitIpi):
            if not any(s == cpu for s, _ in st.ipis):
                yield f"cpu{cpu}: wait_ipi returns{note}", st._replace(pcs=advanced)

        elif isinstance(ins, SkipIfEq):
            value = _get_reg(prog, st.regs, ins.reg)
            if value == ins.value:
                yield (f"cpu{cpu}: {ins.reg} == {ins.value}: skip {ins.count}{note}",
                       st._replace(pcs=_put(st.pcs, cpu, pc + 1 + ins.count)))
            else:
                yield (f"cpu{cpu}: {ins.reg} == {value} != {ins.value}: fall through{note}",
                       st._replace(pcs=advanced))

        else:  # LitmusProgram validated the instruction types
            raise TypeError(f"cpu{cpu}: cannot execute {ins!r}")


def _is_final(prog: LitmusProgram, st: State) -> bool:
    return (all(pc == len(code) for pc, code in zip(st.pcs, prog.threads))
            and not any(st.bufs))


class FinalState:
    """Registers and memory at the end of one execution."""

    __slots__ = ("regs", "mem")

    def __init__(self, regs: tuple, mem: tuple):
        self.regs = regs   # ((name, value), ...) cpu by cpu
        self.mem = mem     # ((location, value), ...)

    @classmethod
    def of(cls, prog: LitmusProgram, st: State) -> "FinalState":
        regs = tuple((name, value)
                     for names, values in zip(prog.registers, st.regs)
                     for name, value in zip(names, values))
        return cls(regs, tuple(zip(prog.locations, st.mem)))

    def __getitem__(self, name: str):
        for key, value in self.regs + self.mem:
            if key == name:
                return value
        raise KeyError(name)

    def matches(self, condition: dict) -> bool:
        return all(self[k] == v for k, v in condition.items())

    def _key(self):
        return (self.regs, self.mem)

    def __eq__(self, other):
        return isinstance(other, FinalState) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        regs = " ".join(f"{k}={v}" for k, v in self.regs)
        mem = " ".join(f"{k}={v}" for k, v in self.mem)
        return f"{regs} ; {mem}" if regs else mem

    def __repr__(self):
        return f"FinalState({self})"


class Outcome:
    """What `check()` found: every reachable final state with one witness
    interleaving each, the number of distinct states explored, and the
    interleavings that got stuck (a ``wait_ipi`` nobody answers) if any."""

    __slots__ = ("program", "finals", "states_explored", "deadlocks")

    def __init__(self, program: LitmusProgram, finals: dict, states_explored: int,
                 deadlocks: tuple = ()):
        self.program = program
        self.finals = finals                  # FinalState -> tuple of step lines
        self.states_explored = states_explored
        self.deadlocks = deadlocks

    @property
    def final_states(self) -> tuple:
        return tuple(self.finals)

    def values(self, *names: str) -> set:
        """The reachable combinations of some registers/locations, as tuples."""
        return {tuple(fs[n] for n in names) for fs in self.finals}

    def _condition(self, condition):
        return self.program.condition if condition is None else condition

    def reachable(self, condition: dict | None = None) -> bool:
        """Is the condition (default: the program's ``exists``) reachable?"""
        cond = self._condition(condition)
        return any(fs.matches(cond) for fs in self.finals)

    def witness(self, condition: dict | None = None) -> tuple:
        """The (shortest) interleaving reaching the condition; () if none."""
        cond = self._condition(condition)
        best = [w for fs, w in self.finals.items() if fs.matches(cond)]
        return min(best, key=len) if best else ()

    def __repr__(self):
        return (f"<Outcome {self.program.name}: {len(self.finals)} final states, "
                f"{self.states_explored} states explored>")


def _path(parent: dict, st: State) -> tuple:
    steps = []
    while parent[st] is not None:
        st, step = parent[st]
        steps.append(step)
    return tuple(reversed(steps))


def check(program: LitmusProgram, max_states: int = DEFAULT_MAX_STATES) -> Outcome:
    """Explore every x86-TSO execution of `program` (breadth first)."""
    start = initial_state(program)
    parent = {start: None}            # the visited set, and how we got there
    queue = deque([start])
    finals: dict = {}
    deadlocks = []
    while queue:
        st = queue.popleft()
        stuck = True
        for step, nxt in successors(program, st):
            stuck = False
            if nxt not in parent:
                parent[nxt] = (st, step)
                if len(parent) > max_states:
                    raise StateLimitExceeded(f"{program.name}: more than {max_states} states")
                queue.append(nxt)
        if _is_final(program, st):
            fs = FinalState.of(program, st)
            if fs not in finals:      # BFS: the first witness is a shortest one
                finals[fs] = _path(parent, st)
        elif stuck:
            deadlocks.append(_path(parent, st))
    return Outcome(program, finals, len(parent), tuple(deadlocks))
