"""What a seed grid can tell apart: each cell against Non-local softmax at the same heads, as a 95% interval of
the difference in top-1 error, read as a verdict only from the interval, never from the means alone.

The interval is Welch's t interval over seeds, widened by the test set's binomial error:

- Welch, not a bootstrap over seeds: with 3 seeds a cell has only 10 distinct bootstrap resamples, and a
  percentile interval ignores that the spread itself is estimated from 3 values, so it comes out far too narrow.
  Welch's interval carries that uncertainty in its (Welch–Satterthwaite) degrees of freedom and does not assume
  equal spreads.
- The binomial term: every seed is tested on the same fixed test set, so the seed spread does not contain the
  test set's own sampling error; an error rate p measured on N images has a further variance p(1 − p)/N. Both
  cells' terms are added as if independent, which is conservative: two models err on many of the same images,
  which a paired comparison would cancel.

The smallest difference a budget resolves is the half-width of that interval for two cells that both have the
budget's pooled seed spread, seed count, test-set size and mean error: a true difference smaller than it cannot
give an interval that excludes zero (on average).

Example:
    >>> verdict(compare([30.1, 30.4, 29.9], [32.2, 32.5, 32.0], 10_000, 10_000))  # 2.1 points lower
    'holds'
    >>> verdict(compare([30.1, 30.4, 29.9], [31.2, 31.5, 31.0], 10_000, 10_000))  # 1.1: within the test set's error
    'not resolved at this budget'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tam.analysis.intervals import Difference, mean_std, welch_interval, welch_terms

LEVEL = 0.95
NOT_RESOLVED = "not resolved at this budget"


def binomial_variance(error: float, test_images: int | None) -> float:
    """The variance, in %², of an error rate of ``error`` % measured on ``test_images`` images (0 if unknown)."""
    if not test_images:
        return 0.0
    p = error / 100
    return 1e4 * p * (1 - p) / test_images


def compare(a: list[float], b: list[float], test_images_a: int | None, test_images_b: int | None,
            level: float = LEVEL) -> Difference:
    """``mean(a) − mean(b)`` of two cells' per-seed errors (%), with Welch's ``level`` interval widened by both
    cells' binomial test-set error."""
    known = (binomial_variance(mean_std(a)[0], test_images_a) + binomial_variance(mean_std(b)[0], test_images_b))
    return welch_interval(a, b, level, known_variance=known)


def verdict(difference: Difference) -> str:
    """A claim "the first cell's error ≤ the second's" (e.g. TAM ≥ Non-local in accuracy) from the interval of
    their difference: "holds" when it lies below 0, "fails" above 0, otherwise "not resolved at this budget"."""
    if difference.high is not None and difference.high < 0:
        return "holds"
    if difference.low is not None and difference.low > 0:
        return "fails"
    return NOT_RESOLVED


def reading(difference: Difference) -> str:
    """The interval of an error difference in words: "lower", "higher" or "not resolved at this budget"."""
    return {"holds": "lower", "fails": "higher"}.get(verdict(difference), NOT_RESOLVED)


def pooled_std(groups: list[list[float]]) -> float | None:
    """The pooled sample standard deviation of groups (each weighted by its n − 1); ``None`` without a group
    of two values."""
    dof = sum(len(values) - 1 for values in groups if len(values) > 1)
    if not dof:
        return None
    squares = sum((len(values) - 1) * mean_std(values)[1] ** 2 for values in groups if len(values) > 1)
    return math.sqrt(squares / dof)


@dataclass(frozen=True)
class Resolution:
    """What one budget can resolve: its pooled seed spread, seeds, test-set size, mean error, and the smallest
    difference in top-1 error (points of %) whose interval excludes zero."""

    std: float
    seeds: int
    test_images: int | None
    error: float
    cells: int
    smallest_difference: float


def resolution(groups: list[list[float]], test_images: int | None, level: float = LEVEL) -> Resolution | None:
    """The :class:`Resolution` of a grid from its cells' per-seed errors (%); ``None`` without a cell of ≥ 2
    seeds. ``seeds`` is the smallest seed count among the cells."""
    std = pooled_std(groups)
    if std is None:
        return None
    seeds = min(len(values) for values in groups if len(values) > 1)
    error = sum(sum(values) for values in groups) / sum(len(values) for values in groups)
    each = std**2 / seeds
    half = welch_terms(0.0, [(each, seeds - 1), (each, seeds - 1)], 2 * binomial_variance(error, test_images),
                       level, (seeds, seeds)).high
    return Resolution(std, seeds, test_images, error, sum(len(v) > 1 for v in groups), half)
