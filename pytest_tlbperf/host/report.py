"""What a host run adds to a report, as 80-column text: the kernel's
identity (side by side with the reference run's when two kernels are
compared, with a warning for everything that differs but the kernel), the
counters that were unavailable and why, and the figures of every cell --
a run on one kernel has no comparison of its own to show.

The statistics stay in pytest_tlbperf.reports: a cross-kernel comparison
is the unpaired one (`verdicts.unpaired_findings`), as for any two runs.
"""

from __future__ import annotations

import statistics
import textwrap

from ..metrics import METRICS
from . import identity

WIDTH = 80
# a window where the runner got less of its CPUs than this is flagged
FULL_SHARE = 0.9


def is_host(run) -> bool:
    return (run or {}).get("backend") == "host"


def run_section(run) -> dict:
    return (run or {}).get("host") or {}


def header(run) -> list:
    """The kernel, how the run measured, and the counters it lacked."""
    host = run_section(run)
    ident = host.get("identity") or {}
    settings = host.get("settings") or {}
    lines = [f"host: {identity.summary(ident)}"]
    if settings:
        lines += textwrap.wrap(
            f"host runs: warm-up {settings.get('warmup_ms')} ms, then windows of "
            f"{settings.get('window_ms')} ms (one sample each), on CPUs "
            f"{settings.get('cpus')}", WIDTH)
    for metric, source in sorted((host.get("counters") or {}).items()):
        if source.startswith("unavailable"):
            lines += textwrap.wrap(f"{metric}: {source}", WIDTH, subsequent_indent="  ")
    return lines


def _num(v) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.1f}"


def figures(run) -> list:
    """Per cell: each metric's median over the windows and its range, then
    the share of its CPUs the runner got and the hypervisor's steal."""
    lines = []
    for cell in sorted(run.get("cells", ()), key=lambda c: c["test"]):
        samples = cell["seeds"]
        if not samples:
            continue
        lines += ["", cut(cell["test"])]
        lines += textwrap.wrap(cell.get("workload", ""), WIDTH, initial_indent="  ",
                               subsequent_indent="    ")
        lines.append(f"  {'metric':18} {'median':>10} {'min':>10} {'max':>10}  windows")
        names = [m for m in METRICS if any(m in s["metrics"] for s in samples)]
        for name in names:
            values = [s["metrics"][name] for s in samples if name in s["metrics"]]
            lines.append(f"  {name:18} {_num(statistics.median(values)):>10} "
                         f"{_num(min(values)):>10} {_num(max(values)):>10}  {len(values)}")
        shares = [s["window"]["cpu_share"] for s in samples
                  if (s.get("window") or {}).get("cpu_share") is not None]
        steals = [s["window"]["steal_pct"] for s in samples
                  if (s.get("window") or {}).get("steal_pct") is not None]
        if shares:
            text = f"  CPU share {statistics.median(shares):.0%} (median of windows)"
            if steals:
                text += f", steal {statistics.median(steals):.1f}%"
            low = sum(1 for s in shares if s < FULL_SHARE)
            if low:
                text += f"; {low} of {len(shares)} windows got under {FULL_SHARE:.0%} of " \
                        f"their CPUs (other load, or the hypervisor)"
            lines += textwrap.wrap(text, WIDTH, subsequent_indent="    ")
    return lines


def cut(text, width=WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def comparison(run, reference) -> list:
    """The two kernels side by side, and a warning for each difference
    that is not the kernel. Empty when neither run is a host run."""
    if not is_host(run) and not is_host(reference):
        return []
    if is_host(run) != is_host(reference):
        which = "this run" if is_host(run) else "the reference run"
        return [f"warning: {which} measured the host kernel and the other ran the model: "
                f"their cells do not match, nothing is compared"]
    a = run_section(reference).get("identity") or {}
    b = run_section(run).get("identity") or {}
    ref_label = f"run {reference.get('id') or '?'}"
    lines = ["kernels compared (unpaired: Mann-Whitney U on the windows):"]
    lines += identity.side_by_side(a, b, ref_label, "this run" if not run.get("id")
                                   else f"run {run['id']}", WIDTH)
    for warning in identity.differences(a, b):
        lines += textwrap.wrap(f"warning: {warning}", WIDTH, subsequent_indent="  ")
    sa = run_section(reference).get("settings") or {}
    sb = run_section(run).get("settings") or {}
    for key in ("window_ms", "warmup_ms", "cpus"):
        if sa.get(key) != sb.get(key):
            lines.append(f"warning: host {key} differs: {sa.get(key)} vs {sb.get(key)}")
    return lines


def text(run, references=()) -> list:
    """The whole host section of a text report."""
    if not is_host(run):
        return []
    lines = header(run) + figures(run)
    for ref in references:
        lines += [""] + comparison(run, ref)
    return lines
