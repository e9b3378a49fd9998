"""Practical thresholds (DESIGN §6): how large a change must be, per metric,
before a significant one is a regression or an improvement. Parsed from
`--tlbperf-threshold` before anything runs, so this imports no numpy: the
pytest-xdist controller checks the option before it starts its workers.
"""

from __future__ import annotations

from pytest_tlbperf.metrics import METRICS

DEFAULT_THRESHOLD = 0.02           # 2%: the practical threshold of DESIGN §6


class Thresholds:
    """Practical thresholds as fractions (0.02 = 2%): a default and
    per-metric overrides. Parsed from option values such as
    ["2", "flush_latency_ns_p99=5"] (percent), where a bare number sets the
    default and METRIC=PERCENT one metric."""

    __slots__ = ("default", "per_metric")

    def __init__(self, default=DEFAULT_THRESHOLD, per_metric=None):
        per_metric = dict(per_metric or {})
        for name, value in [("default", default)] + list(per_metric.items()):
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"threshold for {name}: {value!r} is not a fraction in "
                                 f"[0, 1)")
        unknown = sorted(set(per_metric) - set(METRICS))
        if unknown:
            raise ValueError(f"threshold for unknown metric(s) {', '.join(unknown)}; "
                             f"metrics are {', '.join(METRICS)}")
        self.default, self.per_metric = float(default), per_metric

    @classmethod
    def parse(cls, specs) -> "Thresholds":
        if isinstance(specs, str):
            specs = [specs]
        default, per_metric = DEFAULT_THRESHOLD, {}
        for spec in specs or ():
            for item in str(spec).replace(",", " ").split():
                name, sep, value = item.rpartition("=")
                try:
                    percent = float(value.rstrip("%"))
                except ValueError:
                    raise ValueError(f"threshold {item!r}: expected PERCENT or "
                                     f"METRIC=PERCENT") from None
                if sep:
                    per_metric[name] = percent / 100
                else:
                    default = percent / 100
        return cls(default, per_metric)

    def __call__(self, metric: str) -> float:
        return self.per_metric.get(metric, self.default)

    def to_dict(self) -> dict:
        return {"default": self.default, "per_metric": dict(sorted(self.per_metric.items()))}

    @classmethod
    def from_dict(cls, data) -> "Thresholds":
        return cls(data["default"], data.get("per_metric"))

    def describe(self) -> str:
        extra = "".join(f", {m} {v:.3g}%" for m, v in
                        ((m, 100 * v) for m, v in sorted(self.per_metric.items())))
        return f"{100 * self.default:.3g}%{extra}"
