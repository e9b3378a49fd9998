"""Litmus programs for the x86-TSO checker, and the published known-answer shapes.

A `LitmusProgram` is one small straight-line program per CPU over shared
locations (all zero unless `init` says otherwise), plus an `exists` condition on
the final registers and memory, the way herd7 writes it.  The checker
(`tso.check`) says whether the condition is reachable under x86-TSO.

Instructions (each a tiny value class; `str()` gives the litmus text):

``Store(loc, value)``           ``mov [loc], value`` -- goes to the store buffer
``Load(reg, loc)``              ``mov reg, [loc]`` -- own newest buffered store, else memory
``Fence(name)``                 MFENCE / ``smp_mb()``: waits for an empty store buffer
``Rmw(loc, op, operand, reg)``  a LOCK-prefixed RMW (``xchg``, ``lock xadd``): empty
                                buffer, then reads and writes memory atomically
``Serialize(name)``             a serializing event, e.g. the CR3 write in
                                ``switch_mm_irqs_off()``: empty buffer
``Nop(name)``                   ``barrier()``: a compiler barrier, nothing on the CPU
``SendIpi(target)``             send an IPI (membarrier's ``ipi_mb``) to ``target``
``WaitIpi()``                   block until every IPI this CPU sent has been taken
``SkipIfEq(reg, value, count)`` ``if (reg == value) skip the next count instructions``

The known answers below are the examples of Intel SDM Vol. 3A §8.2.3
("Examples Illustrating the Memory-Ordering Principles"; Examples 8-1 .. 8-10
-- renumbered §10.2.3 / Examples 10-x in the 2023+ editions) and the classic
SB/MP shapes.  Each builder returns a program whose `allowed` says what the SDM
(or the TSO literature) publishes for its condition.  Seed 004 (Alan Stern,
2020-07-17) is the source of "SB with a fence on one side only": "the Store
Buffer pattern having a memory barrier on only one side ... does not guarantee
any ordering".
"""

from __future__ import annotations

__all__ = [
    "Store", "Load", "Fence", "Rmw", "Serialize", "Nop", "SendIpi", "WaitIpi",
    "SkipIfEq", "LitmusProgram",
    "sb", "sb_mfences", "sb_mfence_one_side", "mp",
    "sdm_8_1", "sdm_8_2", "sdm_8_3", "sdm_8_4", "sdm_8_5", "sdm_8_6",
    "sdm_8_7", "sdm_8_8", "sdm_8_9", "sdm_8_10", "known_answers",
]


def note_suffix(note: str) -> str:
    """How an instruction's kernel note is appended to a witness step."""
    return f"  [{note}]" if note else ""


class Store:
    """``mov [loc], value``: enters this CPU's FIFO store buffer."""
    __slots__ = ("loc", "value", "note")

    def __init__(self, loc: str, value, note: str = ""):
        self.loc, self.value, self.note = _name(loc, "location"), value, note

    def __str__(self):
        return f"{self.loc} = {self.value}"


class Load:
    """``mov reg, [loc]``: store forwarding from the own buffer, else memory."""
    __slots__ = ("reg", "loc", "note")

    def __init__(self, reg: str, loc: str, note: str = ""):
        self.reg, self.loc, self.note = _name(reg, "register"), _name(loc, "location"), note

    def __str__(self):
        return f"{self.reg} = {self.loc}"


class Fence:
    """A full barrier: MFENCE, ``smp_mb()`` (``lock; addl $0,-4(%rsp)`` on
    x86-64), ``smp_mb__after_spinlock()`` after the rq lock's LOCK CMPXCHG.
    It can only execute once the store buffer is empty."""
    __slots__ = ("name", "note")

    def __init__(self, name: str = "mfence", note: str = ""):
        self.name, self.note = name, note

    def __str__(self):
        return self.name


class Rmw:
    """A locked read-modify-write.  ``op`` is ``"xchg"`` (memory := operand)
    or ``"add"`` (memory += operand, i.e. ``lock xadd``/``lock decl``); the old
    value goes to ``reg`` if one is given.  SDM §8.2.2: locked instructions
    have a total order and are not reordered with loads or stores -- modelled
    as: wait for an empty store buffer, then read and write memory in one step."""
    __slots__ = ("loc", "op", "operand", "reg", "note")

    OPS = ("xchg", "add")

    def __init__(self, loc: str, op: str, operand, reg: str | None = None, note: str = ""):
        if op not in self.OPS:
            raise ValueError(f"Rmw op {op!r} is not one of {', '.join(self.OPS)}")
        self.loc, self.op, self.operand, self.note = _name(loc, "location"), op, operand, note
        self.reg = None if reg is None else _name(reg, "register")

    def apply(self, old):
        return self.operand if self.op == "xchg" else old + self.operand

    def __str__(self):
        text = f"xchg({self.loc}, {self.operand})" if self.op == "xchg" \
            else f"lock xadd({self.loc}, {self.operand})"
        return f"{self.reg} = {text}" if self.reg else text


class Serialize:
    """A serializing event (SDM §8.3): MOV to CR3, IRET, CPUID...  For
    memory ordering it is a full barrier: the store buffer must be empty."""
    __slots__ = ("name", "note")

    def __init__(self, name: str = "write_cr3", note: str = ""):
        self.name, self.note = name, note

    def __str__(self):
        return self.name


class Nop:
    """Something that orders nothing on the CPU: ``barrier()`` only stops the
    compiler.  Kept in programs so they read like the code they mirror."""
    __slots__ = ("name", "note")

    def __init__(self, name: str = "barrier()", note: str = ""):
        self.name, self.note = name, note

    def __str__(self):
        return self.name


class SendIpi:
    """Send an IPI to ``target``.  Sending is *not* modelled as a barrier
    (the weakest choice; the real path -- llist_add()'s LOCK CMPXCHG on the csd
    queue, weak_wrmsr_fence() before an x2APIC ICR write -- is stronger).
    The target takes it between any two of its instructions, or after its
    last one; taking it is a full barrier (interrupt entry + ``ipi_mb()``)."""
    __slots__ = ("target", "note")

    def __init__(self, target: int, note: str = ""):
        if not isinstance(target, int) or isinstance(target, bool) or target < 0:
            raise ValueError(f"SendIpi target must be a CPU number, not {target!r}")
        self.target, self.note = target, note

    def __str__(self):
        return f"ipi(cpu{self.target})"


class WaitIpi:
    """Block until every IPI this CPU sent has been taken by its target
    (``smp_call_function_many(..., wait=1)`` spinning on the csd lock).  The
    wait itself is no barrier: on the initiator it is only a load."""
    __slots__ = ("note",)

    def __init__(self, note: str = ""):
        self.note = note

    def __str__(self):
        return "wait_ipi"


class SkipIfEq:
    """``if (reg == value)`` skip the next ``count`` instructions -- enough
    for membarrier's ``if (p->mm != mm) continue;`` that skips the IPI."""
    __slots__ = ("reg", "value", "count", "note")

    def __init__(self, reg: str, value, count: int, note: str = ""):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"SkipIfEq count must be a positive integer, not {count!r}")
        self.reg, self.value, self.count, self.note = _name(reg, "register"), value, count, note

    def __str__(self):
        return f"if {self.reg} == {self.value}: skip {self.count}"


INSTRUCTIONS = (Store, Load, Fence, Rmw, Serialize, Nop, SendIpi, WaitIpi, SkipIfEq)


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"a {what} name must be an identifier, not {value!r}")
    return value


class LitmusProgram:
    """One litmus test: ``threads[cpu]`` is CPU ``cpu``'s instructions.

    ``init``: initial memory (locations not named start at 0; registers start
    at 0 as in herd).  ``condition``: the ``exists`` clause, a dict of register
    or location name -> value (registers are read at the end, locations are
    final memory).  ``allowed``: the published answer for the condition, if
    any (True = allowed/reachable, False = forbidden).  ``observer``: the CPU
    whose result shows the condition (reported as the violation's cpu).
    Register names are global (unique across CPUs) so a condition can say
    ``r1 = 0 /\\ r2 = 0`` as the threads on the list do."""

    __slots__ = ("name", "threads", "init", "condition", "allowed", "source", "observer",
                 "locations", "registers", "_reg_slot", "_loc_slot")

    def __init__(self, name: str, threads, init=None, condition=None, allowed=None,
                 source: str = "", observer: int = 0):
        self.name = name
        self.threads = tuple(tuple(code) for code in threads)
        if not self.threads:
            raise ValueError(f"{name}: a litmus program needs at least one CPU")
        self.source = source
        self.allowed = allowed
        ncpu = len(self.threads)
        if not (isinstance(observer, int) and 0 <= observer < ncpu):
            raise ValueError(f"{name}: observer cpu{observer} does not exist")
        self.observer = observer

        locations = list(dict.fromkeys(init or ()))
        registers = []
        reg_slot = {}
        for cpu, code in enumerate(self.threads):
            mine = []
            for pc, ins in enumerate(code):
                where = f"{name}: cpu{cpu} instruction {pc} ({ins!s})"
                if not isinstance(ins, INSTRUCTIONS):
                    raise TypeError(f"{name}: cpu{cpu} instruction {pc} is not an "
                                    f"instruction: {ins!r}")
                loc = getattr(ins, "loc", None)
                if loc is not None and loc not in locations:
                    locations.append(loc)
                reg = ins.reg if isinstance(ins, (Load, Rmw)) else None
                if reg is not None:
                    owner = reg_slot.get(reg)
                    if owner is not None and owner[0] != cpu:
                        raise ValueError(f"{where}: register {reg} already belongs to "
                                         f"cpu{owner[0]}; register names are global")
                    if owner is None:
                        reg_slot[reg] = (cpu, len(mine))
                        mine.append(reg)
                if isinstance(ins, SkipIfEq):
                    if pc + ins.count >= len(code):
                        raise ValueError(f"{where}: skips past the end of the thread")
                if isinstance(ins, SendIpi) and not (0 <= ins.target < ncpu and ins.target != cpu):
                    raise ValueError(f"{where}: no other CPU {ins.target} to send an IPI to")
            registers.append(tuple(mine))
        # a SkipIfEq may test a register nobody loads (it is then 0): give it a slot
        for cpu, code in enumerate(self.threads):
            for ins in code:
                if isinstance(ins, SkipIfEq) and ins.reg not in reg_slot:
                    reg_slot[ins.reg] = (cpu, len(registers[cpu]))
                    registers[cpu] += (ins.reg,)
        clash = set(reg_slot) & set(locations)
        if clash:
            raise ValueError(f"{name}: {', '.join(sorted(clash))} used both as register "
                             f"and location")
        self.locations = tuple(locations)
        self.registers = tuple(registers)
        self._reg_slot = reg_slot
        self._loc_slot = {loc: i for i, loc in enumerate(self.locations)}
        self.init = {loc: (init or {}).get(loc, 0) for loc in self.locations}
        self.condition = dict(condition or {})
        for key in self.condition:
            if key not in reg_slot and key not in self._loc_slot:
                raise ValueError(f"{name}: condition names {key!r}, which is neither a "
                                 f"register nor a location of the program")

    def reg_slot(self, reg: str) -> tuple[int, int]:
        """(cpu, index) of a register in `tso.State.regs`."""
        return self._reg_slot[reg]

    def loc_slot(self, loc: str) -> int:
        return self._loc_slot[loc]

    def condition_text(self, condition=None) -> str:
        cond = self.condition if condition is None else condition
        return " /\\ ".join(f"{k} = {v}" for k, v in cond.items()) or "true"

    def format(self) -> str:
        """The program as a herd-style table, one column per CPU."""
        cols = [[f"cpu{cpu}"] + [str(ins) for ins in code]
                for cpu, code in enumerate(self.threads)]
        width = [max(len(line) for line in col) for col in cols]
        rows = max(len(col) for col in cols)
        lines = [self.name + (f"  ({self.source})" if self.source else "")]
        lines.append("{ " + "; ".join(f"{k}={v}" for k, v in self.init.items()) + " }")
        for i in range(rows):
            cells = [(col[i] if i < len(col) else "").ljust(w) for col, w in zip(cols, width)]
            lines.append(" " + " | ".join(cells).rstrip())
        lines.append(f"exists ({self.condition_text()})")
        return "\n".join(lines)

    def __repr__(self):
        return f"<LitmusProgram {self.name}: {len(self.threads)} CPUs>"


# --- known answers ------------------------------------------------------------
# Register names follow the SDM where it names them (r1..r6), else herd's.

def sb() -> LitmusProgram:
    """SB, store buffering = SDM Example 8-3 ("Loads May Be Reordered with
    Older Stores", §8.2.3.4): r1 = 0 /\\ r2 = 0 is allowed."""
    return LitmusProgram(
        "SB", [[Store("x", 1), Load("r1", "y")],
               [Store("y", 1), Load("r2", "x")]],
        condition={"r1": 0, "r2": 0}, allowed=True,
        source="Intel SDM Vol. 3A §8.2.3.4, Example 8-3")


def sb_mfences() -> LitmusProgram:
    """SB+mfences: MFENCE on both sides forbids r1 = 0 /\\ r2 = 0
    (SDM §8.2.5: MFENCE orders the store before it with the load after it)."""
    return LitmusProgram(
        "SB+mfences", [[Store("x", 1), Fence("mfence"), Load("r1", "y")],
                       [Store("y", 1), Fence("mfence"), Load("r2", "x")]],
        condition={"r1": 0, "r2": 0}, allowed=False,
        source="Intel SDM Vol. 3A §8.2.3.4 + §8.2.5 (MFENCE)")


def sb_mfence_one_side() -> LitmusProgram:
    """SB with MFENCE on cpu0 only: still allowed.  Seed 004 (Stern): "the
    Store Buffer pattern having a memory barrier on only one side ... does not
    guarantee any ordering" -- cpu1's load passes its own buffered store."""
    return LitmusProgram(
        "SB+mfence+po", [[Store("x", 1), Fence("mfence"), Load("r1", "y")],
                         [Store("y", 1), Load("r2", "x")]],
        condition={"r1": 0, "r2": 0}, allowed=True,
        source="seed 004, Alan Stern 2020-07-17")


def mp() -> LitmusProgram:
    """MP, message passing: forbidden on TSO with no fence at all -- stores
    are not reordered with stores, nor loads with loads (Example 8-1)."""
    return LitmusProgram(
        "MP", [[Store("x", 1), Store("y", 1)],
               [Load("r1", "y"), Load("r2", "x")]],
        condition={"r1": 1, "r2": 0}, allowed=False, observer=1,
        source="Intel SDM Vol. 3A §8.2.3.2 (MP is Example 8-1's shape)")


def sdm_8_1() -> LitmusProgram:
    """SDM Example 8-1, "Stores Are Not Reordered with Other Stores"
    (§8.2.3.2, "Neither Loads Nor Stores Are Reordered with Like Operations"):
    r1 = 1 /\\ r2 = 0 is not allowed."""
    return LitmusProgram(
        "SDM 8-1", [[Store("x", 1), Store("y", 1)],
                    [Load("r1", "y"), Load("r2", "x")]],
        condition={"r1": 1, "r2": 0}, allowed=False, observer=1,
        source="Intel SDM Vol. 3A §8.2.3.2, Example 8-1")


def sdm_8_2() -> LitmusProgram:
    """SDM Example 8-2, "Stores Are Not Reordered With Older Loads"
    (§8.2.3.3; load buffering, LB): r1 = 1 /\\ r2 = 1 is not allowed."""
    return LitmusProgram(
        "SDM 8-2", [[Load("r1", "x"), Store("y", 1)],
                    [Load("r2", "y"), Store("x", 1)]],
        condition={"r1": 1, "r2": 1}, allowed=False,
        source="Intel SDM Vol. 3A §8.2.3.3, Example 8-2")


def sdm_8_3() -> LitmusProgram:
    """SDM Example 8-3, "Loads May Be Reordered with Older Stores" (§8.2.3.4):
    r1 = 0 /\\ r2 = 0 is allowed.  The same program as `sb()`."""
    prog = sb()
    return LitmusProgram("SDM 8-3", prog.threads, condition=prog.condition, allowed=True,
                         source="Intel SDM Vol. 3A §8.2.3.4, Example 8-3")


def sdm_8_4() -> LitmusProgram:
    """SDM Example 8-4, "Loads Are not Reordered with Older Stores to the Same
    Location" (§8.2.3.4): r1 = 0 is not allowed."""
    return LitmusProgram(
        "SDM 8-4", [[Store("x", 1), Load("r1", "x")]],
        condition={"r1": 0}, allowed=False,
        source="Intel SDM Vol. 3A §8.2.3.4, Example 8-4")


def sdm_8_5() -> LitmusProgram:
    """SDM Example 8-5, "Intra-Processor Forwarding is Allowed" (§8.2.3.5):
    r2 = 0 /\\ r4 = 0 is allowed, with r1 = r3 = 1 forwarded from each CPU's
    own store buffer before either store is globally visible."""
    return LitmusProgram(
        "SDM 8-5", [[Store("x", 1), Load("r1", "x"), Load("r2", "y")],
                    [Store("y", 1), Load("r3", "y"), Load("r4", "x")]],
        condition={"r1": 1, "r2": 0, "r3": 1, "r4": 0}, allowed=True,
        source="Intel SDM Vol. 3A §8.2.3.5, Example 8-5")


def sdm_8_6() -> LitmusProgram:
    """SDM Example 8-6, "Stores Are Transitively Visible" (§8.2.3.6, WRC):
    r1 = 1 /\\ r2 = 1 /\\ r3 = 0 is not allowed."""
    return LitmusProgram(
        "SDM 8-6", [[Store("x", 1)],
                    [Load("r1", "x"), Store("y", 1)],
                    [Load("r2", "y"), Load("r3", "x")]],
        condition={"r1": 1, "r2": 1, "r3": 0}, allowed=False, observer=2,
        source="Intel SDM Vol. 3A §8.2.3.6, Example 8-6")


def sdm_8_7() -> LitmusProgram:
    """SDM Example 8-7, "Stores Are Seen in a Consistent Order by Other
    Processors" (§8.2.3.7, IRIW): r1 = 1 /\\ r2 = 0 /\\ r3 = 1 /\\ r4 = 0 is
    not allowed."""
    return LitmusProgram(
        "SDM 8-7", [[Store("x", 1)],
                    [Store("y", 1)],
                    [Load("r1", "x"), Load("r2", "y")],
                    [Load("r3", "y"), Load("r4", "x")]],
        condition={"r1": 1, "r2": 0, "r3": 1, "r4": 0}, allowed=False, observer=2,
        source="Intel SDM Vol. 3A §8.2.3.7, Example 8-7")


def sdm_8_8() -> LitmusProgram:
    """SDM Example 8-8, "Locked Instructions Have a Total Order" (§8.2.3.8):
    r3 = 1 /\\ r4 = 0 /\\ r5 = 1 /\\ r6 = 0 is not allowed.  (The SDM's
    registers r1/r2 start at 1 and receive the old 0; here xchg writes 1.)"""
    return LitmusProgram(
        "SDM 8-8", [[Rmw("x", "xchg", 1, reg="r1")],
                    [Rmw("y", "xchg", 1, reg="r2")],
                    [Load("r3", "x"), Load("r4", "y")],
                    [Load("r5", "y"), Load("r6", "x")]],
        condition={"r3": 1, "r4": 0, "r5": 1, "r6": 0}, allowed=False, observer=2,
        source="Intel SDM Vol. 3A §8.2.3.8, Example 8-8")


def sdm_8_9() -> LitmusProgram:
    """SDM Example 8-9, "Loads Are not Reordered with Locks" (§8.2.3.9): SB
    with XCHG in place of the stores; r2 = 0 /\\ r4 = 0 is not allowed --
    a locked RMW is a full barrier."""
    return LitmusProgram(
        "SDM 8-9", [[Rmw("x", "xchg", 1, reg="r1"), Load("r2", "y")],
                    [Rmw("y", "xchg", 1, reg="r3"), Load("r4", "x")]],
        condition={"r2": 0, "r4": 0}, allowed=False,
        source="Intel SDM Vol. 3A §8.2.3.9, Example 8-9")


def sdm_8_10() -> LitmusProgram:
    """SDM Example 8-10, "Stores Are not Reordered with Locks" (§8.2.3.9):
    r2 = 1 /\\ r3 = 0 is not allowed."""
    return LitmusProgram(
        "SDM 8-10", [[Rmw("x", "xchg", 1, reg="r1"), Store("y", 1)],
                     [Load("r2", "y"), Load("r3", "x")]],
        condition={"r2": 1, "r3": 0}, allowed=False, observer=1,
        source="Intel SDM Vol. 3A §8.2.3.9, Example 8-10")


def known_answers() -> tuple[LitmusProgram, ...]:
    """Every shape above; each has `allowed` set to its published answer."""
    return (sb(), sb_mfences(), sb_mfence_one_side(), mp(),
            sdm_8_1(), sdm_8_2(), sdm_8_3(), sdm_8_4(), sdm_8_5(), sdm_8_6(),
            sdm_8_7(), sdm_8_8(), sdm_8_9(), sdm_8_10())
