"""Mean ± std over seeds, and Welch's interval for a difference of two means (no SciPy: the Student t quantile
comes from the regularised incomplete beta function, evaluated by its continued fraction).

    welch_interval([0.8, 0.7, 0.9], [0.1, 0.2, 0.0])   # Difference(0.7, low, high, df, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _beta_fraction(a: float, b: float, x: float) -> float:
    # The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1) / (a + b + 2).
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 ≤ x ≤ 1``."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T ≤ t)`` for Student's t with ``df > 0`` degrees of freedom (not necessarily whole)."""
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, by bisection of :func:`t_cdf` to 1e-12."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Difference:
    """``mean(a) − mean(b)`` with its Welch interval at ``level`` (``low``/``high`` None with < 2 values a side)."""

    difference: float
    low: float | None
    high: float | None
    df: float | None
    level: float
    counts: tuple[int, int]

    def verdict(self) -> str:
        """``"> 0"`` or ``"< 0"`` when the interval excludes 0, else ``"not resolved"``."""
        if self.low is not None and self.low > 0:
            return "> 0"
        if self.high is not None and self.high < 0:
            return "< 0"
        return "not resolved"


def welch_interval(a: list[float], b: list[float], level: float = 0.95, *,
                   known_variance: float = 0.0) -> Difference:
    """Welch's ``level`` interval for ``mean(a) − mean(b)`` (unequal variances, Welch–Satterthwaite df).

    ``known_variance`` is a further variance of the difference known exactly (infinite degrees of freedom),
    e.g. a test set's binomial error: it widens the interval and raises the df. With zero spread everywhere
    the interval is the difference itself; with fewer than two values on a side there is no interval.
    """
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    difference = mean_a - mean_b
    if std_a is None or std_b is None:
        return Difference(difference, None, None, None, level, (len(a), len(b)))
    return welch_terms(difference, [(std_a**2 / len(a), len(a) - 1), (std_b**2 / len(b), len(b) - 1)],
                       known_variance, level, (len(a), len(b)))


def welch_terms(difference: float, estimated: list[tuple[float, int]], known: float, level: float,
                counts: tuple[int, int]) -> Difference:
    """The ``level`` interval around ``difference`` whose variance is a sum of terms ``(variance, df)``
    estimated from samples and a ``known`` term (infinite df), with the Welch–Satterthwaite df."""
    total = sum(v for v, _ in estimated) + known
    if total == 0:
        return Difference(difference, difference, difference, math.inf, level, counts)
    denominator = sum(v**2 / df for v, df in estimated)
    df = total**2 / denominator if denominator > 0 else math.inf
    quantile = t_quantile(0.5 + level / 2, df) if math.isfinite(df) else NormalDist().inv_cdf(0.5 + level / 2)
    half = quantile * math.sqrt(total)
    return Difference(difference, difference - half, difference + half, df, level, counts)


def seeds_to_resolve(a: list[float], b: list[float], level: float = 0.95, *, most: int = 100) -> int | None:
    """The fewest values a side whose Welch interval would exclude 0, were ``mean(a) − mean(b)`` and both
    sample stds what these values show (a planning estimate: all three are themselves uncertain).

    ``None`` when not even ``most`` a side would (or the difference is 0, or a side has fewer than two values).
    """
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    difference = mean_a - mean_b
    if std_a is None or std_b is None or difference == 0:
        return None
    for n in range(2, most + 1):
        found = welch_terms(difference, [(std_a**2 / n, n - 1), (std_b**2 / n, n - 1)], 0.0, level, (n, n))
        if found.verdict() != "not resolved":
            return n
    return None
