"""Value classes a run returns: `Violation` and `Result` (DESIGN §3.8)."""

from __future__ import annotations

from .engine.abi import SEVERITIES, VIOLATION_KINDS


class Violation:
    """One thing the correctness oracle saw go wrong.

    kind: one of VIOLATION_KINDS; severity: 'error', 'silent' or 'hang';
    cpu: where it happened; time_ns: simulated time; trace: the events that led
    to it, oldest first, one line each."""

    __slots__ = ("kind", "severity", "cpu", "time_ns", "trace")

    def __init__(self, kind: str, severity: str, cpu: int, time_ns: int, trace=()):
        if kind not in VIOLATION_KINDS:
            raise ValueError(f"unknown violation kind {kind!r}; kinds are "
                             f"{', '.join(VIOLATION_KINDS)}")
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}; severities are "
                             f"{', '.join(SEVERITIES)}")
        if not isinstance(cpu, int) or not isinstance(time_ns, int):
            raise TypeError("cpu and time_ns are integers")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "cpu", cpu)
        object.__setattr__(self, "time_ns", time_ns)
        object.__setattr__(self, "trace", tuple(str(line) for line in trace))

    def __setattr__(self, name, value):
        raise AttributeError("Violation is read-only")

    def _key(self):
        return (self.kind, self.severity, self.cpu, self.time_ns, self.trace)

    def __eq__(self, other):
        return isinstance(other, Violation) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"Violation({self.kind!r}, {self.severity!r}, cpu={self.cpu}, "
                f"time_ns={self.time_ns})")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "cpu": self.cpu,
                "time_ns": self.time_ns, "trace": list(self.trace)}

    @classmethod
    def from_dict(cls, data: dict) -> "Violation":
        return cls(data["kind"], data["severity"], data["cpu"], data["time_ns"],
                   data.get("trace", ()))

    def format(self) -> str:
        head = f"{self.kind} ({self.severity}) on cpu{self.cpu} at {self.time_ns} ns"
        return "\n".join([head] + [f"    {line}" for line in self.trace])
