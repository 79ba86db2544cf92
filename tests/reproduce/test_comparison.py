"""tam.reproduce.comparison and the table's statistics, on known answers: hand-computed intervals, the binomial
error, a budget's smallest resolvable difference, and a seeded synthetic grid with a known difference."""

import json
import math
import random
import re

import pytest

from tam.reproduce.comparison import (NOT_RESOLVED, binomial_variance, compare, pooled_std, reading, resolution,
                                      verdict)
from tam.reproduce.table import collect, markdown


def test_welch_interval_and_binomial_term_by_hand():
    # a − b = −3; each side's variance of the mean 1/3; Welch df = (2/3)² / (2 (1/3)² / 2) = 4; t(0.975, 4) = 2.776445
    difference = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], None, None)
    assert difference.difference == pytest.approx(-3.0) and difference.df == pytest.approx(4.0)
    assert difference.high == pytest.approx(-3.0 + 2.776445 * math.sqrt(2 / 3), abs=1e-5)
    assert verdict(difference) == "holds" and reading(difference) == "lower"

    # 36% error on 2,000 images: p(1 − p)/N = 0.36 · 0.64 / 2000 = 1.152e-4, i.e. 1.152 %²
    assert binomial_variance(36.0, 2000) == pytest.approx(1.152)
    assert binomial_variance(36.0, None) == 0.0
    # With the binomial term: variance 2/3 + 2 · (binomial of each side's mean error), df raised accordingly.
    widened = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 100, 100)
    known = binomial_variance(2.0, 100) + binomial_variance(5.0, 100)
    df = (2 / 3 + known) ** 2 / (2 * (1 / 3) ** 2 / 2)
    assert widened.df == pytest.approx(df)
    assert widened.high - widened.difference > difference.high - difference.difference


def test_verdicts_come_from_the_interval_not_the_means():
    lower_means_but_wide = compare([30.0, 33.0, 27.0], [31.0, 31.5, 30.5], 10_000, 10_000)
    assert lower_means_but_wide.difference < 0 and verdict(lower_means_but_wide) == NOT_RESOLVED
    worse = compare([35.0, 35.1, 34.9], [30.0, 30.1, 29.9], 10_000, 10_000)
    assert verdict(worse) == "fails" and reading(worse) == "higher"
    assert compare([30.0], [31.0], 10_000, 10_000).low is None  # one seed: no interval, never a verdict
    assert verdict(compare([30.0], [31.0], 10_000, 10_000)) == NOT_RESOLVED


def test_pooled_std_and_resolution_by_hand():
    assert pooled_std([[1.0, 3.0], [5.0, 7.0]]) == pytest.approx(math.sqrt(2))
    assert pooled_std([[1.0], [2.0]]) is None
    # std √2, 2 seeds: each mean's variance 1, df = 2² / (2 · 1² / 1) = 2, t(0.975, 2) = 4.302653
    found = resolution([[1.0, 3.0], [5.0, 7.0]], None)
    assert found.seeds == 2 and found.cells == 2 and found.error == pytest.approx(4.0)
    assert found.smallest_difference == pytest.approx(4.302653 * math.sqrt(2), abs=1e-5)
    # More seeds and a larger test set resolve less: the term of the test set alone at 10,000 images and 25%
    # error is 1.96 · √(2 · 0.1875) = 1.2 points when the seeds agree exactly.
    exact = resolution([[25.0, 25.0, 25.0], [25.0, 25.0, 25.0]], 10_000)
    assert exact.smallest_difference == pytest.approx(1.959964 * math.sqrt(2 * 0.1875), abs=1e-5)


def test_interval_covers_a_known_difference_at_its_level():
    # Seeded synthetic grids: cell a's error is 1.0 point below b's, seed spread 0.5, 3 seeds, no test-set term.
    rng = random.Random(0)
    trials, covered, resolved = 400, 0, 0
    for _ in range(trials):
        a = [30.0 + rng.gauss(0, 0.5) for _ in range(3)]
        b = [31.0 + rng.gauss(0, 0.5) for _ in range(3)]
        difference = compare(a, b, None, None)
        covered += difference.low <= -1.0 <= difference.high
        resolved += verdict(difference) == "holds"
    assert 0.92 <= covered / trials <= 0.99  # Welch's 95% interval holds its level (slightly conservative)
    assert verdict(compare([30.0] * 3, [30.0] * 3, 10_000, 10_000)) == NOT_RESOLVED
    assert 0.2 < resolved / trials < 0.9  # 1 point is near this setting's resolution (~1.3): sometimes resolved


def _synthetic_grid(root, errors, test_images):
    for cell, per_seed in errors.items():
        attention, _, heads = cell.partition("-h")
        for seed, error in enumerate(per_seed):
            run = root / cell / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "results.json").write_text(json.dumps({
                "attention": attention, "heads": int(heads or 1), "final_top1": 100 - error, "final_top5": 99.0,
                "final_test_images": test_images, "params": 1000, "train_images_per_s": 100.0}))
            (run / "config.yaml").write_text("attention_options: {}\n")
    return collect({cell: root / cell for cell in errors})


def test_table_states_intervals_verdicts_and_resolution_of_a_synthetic_grid(tmp_path):
    rng = random.Random(1)
    errors = {"nl-h1": [31.0 + rng.gauss(0, 0.2) for _ in range(3)],    # TAM 1 head: 2 points better, resolved
              "tam-h1": [29.0 + rng.gauss(0, 0.2) for _ in range(3)],
              "nl-h8": [30.0 + rng.gauss(0, 0.2) for _ in range(3)],    # TAM 8 heads: equal, not resolved
              "tam-h8": [30.0 + rng.gauss(0, 0.2) for _ in range(3)],
              "none": [30.5 + rng.gauss(0, 0.2) for _ in range(3)]}   # no cost.json yet: step time and memory "—"
    rows = _synthetic_grid(tmp_path / "new", errors, 10_000)
    old = _synthetic_grid(tmp_path / "old", {"nl-h1": [30.0, 31.0], "tam-h1": [30.5, 31.5]}, 2_000)
    table = markdown("synthetic", "cpu", rows, tmp_path / "new", old)
    assert "1 head(s): TAM ≥ Non-local in accuracy **holds**" in table
    assert "8 head(s): TAM ≥ Non-local in accuracy **not resolved at this budget**" in table
    expected = compare(errors["tam-h1"], errors["nl-h1"], 10_000, 10_000)
    assert f"| tam-h1 | {sum(errors['tam-h1']) / 3:.2f} ± " in table
    assert f"{expected.difference:+.2f} [{expected.low:+.2f}, {expected.high:+.2f}] | lower |" in table
    new, earlier = (float(x) for x in re.findall(r"resolve[sd]:? \*\*([\d.]+) points", table))
    assert new == pytest.approx(resolution(list(errors.values()), 10_000).smallest_difference, abs=0.005)
    assert earlier == pytest.approx(resolution([[30.0, 31.0], [30.5, 31.5]], 2_000).smallest_difference, abs=0.005)
    assert f"this one's is {new / earlier:.2f}× that" in table
    assert re.search(r"^\| none \|(?:[^|]*\|){7} — \| — \|", table, flags=re.M)
