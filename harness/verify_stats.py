"""Is a figure's change real? Welch's t-test on the repeats, and the noise floor.

Why Welch's t-test. A baseline has few samples per figure (``--repeat 3`` gives 3 before
and 3 after). A rank test cannot speak at that size: Mann-Whitney U with 3 against 3 has
20 equally likely orderings, so its smallest two-sided p-value is 2/20 = 0.1 and it never
reaches 0.05, however large the shift; an exact permutation test of the means has the
same 20 splits. Welch's t-test uses the values, not just their order, so a shift of a few
standard deviations is significant with 3 against 3, and it does not assume the two sides
scatter alike (PVE 8 and PVE 9 may well differ in spread; Student's t would assume they
do not). Its weakness is the normality it assumes: with tiny spreads (a figure that is a
fixed timer plus a poll) a shift of a fraction of a poll interval can come out
"significant". Hence the second condition: a change counts only when it is both
significant (two-sided p < alpha, 0.05 by default) and larger than the noise floor of
harness/compare.py (max(abs_s, rel x before): one poll, one CRM round). A side with a
single sample has no spread to test with; such a figure falls back to harness/compare.py's
rule (beyond the floor widened by three standard deviations of the other side).

The t distribution's tail comes from the regularized incomplete beta function
(Numerical Recipes' continued fraction), so no SciPy is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

ALPHA = 0.05
_EPS, _TINY, _ITERATIONS = 3e-14, 1e-300, 300


def welch(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float]:
    """(t, degrees of freedom, two-sided p) of Welch's t-test; each side needs 2 or more
    samples. Two sides without spread: p is 0 when the means differ, else 1."""
    if len(before) < 2 or len(after) < 2:
        raise ValueError(f"Welch's t-test needs 2 samples a side, got {len(before)} and "
                         f"{len(after)}")
    mean_b, mean_a = statistics.fmean(before), statistics.fmean(after)
    vb, va = statistics.variance(before) / len(before), statistics.variance(after) / len(after)
    if vb + va == 0:
        return (math.copysign(math.inf, mean_a - mean_b) if mean_a != mean_b else 0.0,
                float(len(before) + len(after) - 2), 0.0 if mean_a != mean_b else 1.0)
    t = (mean_a - mean_b) / math.sqrt(vb + va)
    df = (vb + va) ** 2 / (vb ** 2 / (len(before) - 1) + va ** 2 / (len(after) - 1))
    return t, df, t_two_sided_p(t, df)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2, 0.5, df / (df + t * t)))


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _fraction(a, b, x) / a
    return 1.0 - front * _fraction(b, a, 1.0 - x) / b


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), at most _ITERATIONS terms."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _ITERATIONS + 1):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    return h  # converged as far as it goes: the p-value's later digits do not matter
