"""The group-sequential design behind the adaptive rounds (DESIGN §6): how
much of the error rate each look at a comparison may spend, so that looking
at 5, then 10, then 20 seeds -- and stopping as soon as a comparison is
decided -- keeps the stated overall false-positive rate.

Design: Lan-DeMets alpha spending with the O'Brien-Fleming-type spending
function (Lan & DeMets, Biometrika 70 (1983) 659-663),

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)),   t = n / N_max,

the information fraction t being the share of the maximum seeds a look
has. Look k may spend alpha_k = alpha(t_k) - alpha(t_{k-1}); with the
defaults (alpha 0.05, looks at 5, 10, 20 seeds):

    look   seeds   alpha_k
    1      5       0.00009   (the exact signed-rank test cannot reach it:
                              its smallest p with 5 pairs is 0.0625)
    2      10      0.0055
    3      20      0.0444

Because our tests are exact and discrete, the usual recursive boundaries
(which assume a joint normal statistic) are not used: each look's own exact
p is compared with its alpha_k -- a Bonferroni split of alpha across the
looks along the spending function. The union bound makes it valid whatever
the stopping rule: P(some look rejects | no change) <= sum alpha_k = alpha.
It is conservative, since the looks share seeds and are positively
correlated. So that one Benjamini-Hochberg adjustment can still run over a
whole report, a look's p is put on the alpha scale,

    p_seq = min(1, p * alpha / alpha_k),

which is a valid p-value for any stopping rule (P(p_seq <= u) <= sum over
looks of u alpha_k / alpha = u), and p_seq < alpha exactly when p < alpha_k.

A comparison that is not extended (no adaptive rounds, a saved run that
cannot grow) has one look, alpha_1 = alpha and p_seq = p.
"""

from __future__ import annotations

import functools
import math
import statistics

DESIGN = "Lan-DeMets alpha spending, O'Brien-Fleming type, Bonferroni split across looks"
# the first look when a run does not record it (format-1 runs): the plugin's
# default --tlbperf-rounds, the conservative guess for a run that had adaptive rounds
DEFAULT_INITIAL = 5


def next_size(n: int, max_rounds: int) -> int:
    """The next look after n seeds: doubled, capped at max_rounds."""
    return min(max_rounds, max(2 * n, n + 1))


def looks(initial: int, max_rounds) -> list:
    """Seed counts at which a comparison starting at `initial` seeds is
    judged: initial, doubled, ..., max_rounds (just [initial] when the
    adaptive rounds are off)."""
    out = [initial]
    if not max_rounds:
        return out
    while out[-1] < max_rounds:
        out.append(next_size(out[-1], max_rounds))
    return out


@functools.lru_cache(maxsize=1024)
def spent(t: float, alpha: float) -> float:
    """Cumulative alpha spent by information fraction t (O'Brien-Fleming type):
    2 - 2 Phi(z / sqrt(t)) = erfc(z / sqrt(2 t)), z = Phi^-1(1 - alpha / 2).
    The erfc form has no cancellation (2 - 2 Phi loses up to 4e-13 of it at
    t = 1/4) and needs no scipy: every pytest-xdist worker judges its rounds,
    and importing scipy.special costs each of them 0.2 s."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    z = statistics.NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return math.erfc(z / math.sqrt(2.0 * t))


def look_alpha(n: int, initial, max_rounds, alpha: float) -> float:
    """The alpha the look at n seeds may spend, for a comparison whose
    looks are `looks(initial, max_rounds)`; alpha itself for a single look."""
    if not initial or not max_rounds or max_rounds <= initial:
        return alpha
    points = looks(initial, max_rounds)
    total = max(points[-1], n)
    prev = max((p for p in points if p < n), default=0)
    return spent(n / total, alpha) - spent(prev / total, alpha)


def sequential_p(p, alpha_k: float, alpha: float):
    """A look's p on the alpha scale: p * alpha / alpha_k, at most 1."""
    if p is None:
        return None
    return min(1.0, p * alpha / alpha_k)


def table(initial: int, max_rounds, alpha: float) -> list:
    """[(seeds, alpha_k)] of every look, for the report's methodology."""
    return [(n, look_alpha(n, initial, max_rounds, alpha)) for n in looks(initial, max_rounds)]
