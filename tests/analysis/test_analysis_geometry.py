"""The statistics on their own: ranks with ties, Spearman's ρ, row entropy, effective rank."""

import math

import pytest
import torch

from tam.analysis.geometry import (
    average_ranks,
    effective_rank,
    is_constant,
    logit_spread,
    rank_correlation,
    row_entropy,
)


def test_ranks_share_ties():
    assert average_ranks(torch.tensor([10.0, 30.0, 20.0, 30.0])).tolist() == [1.0, 3.5, 2.0, 3.5]


def test_rank_correlation_matches_the_textbook_formula():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 50, generator=generator, dtype=torch.float64)
    rx, ry = x.argsort().argsort().double(), y.argsort().argsort().double()  # no ties: plain ranks
    n = x.shape[-1]
    expected = 1 - 6 * ((rx - ry) ** 2).sum(-1) / (n * (n * n - 1))
    torch.testing.assert_close(rank_correlation(x, y), expected)


def test_monotone_gives_one_and_reversed_gives_minus_one():
    x = torch.linspace(1, 5, 20)
    assert rank_correlation(x, x.exp()).item() == pytest.approx(1.0)
    assert rank_correlation(x, -x).item() == pytest.approx(-1.0)


def test_a_flat_map_follows_nothing():
    received = 1 / 64 + 1e-9 * torch.arange(64.0, dtype=torch.float64)  # round-off of a uniform map
    assert is_constant(received)
    assert rank_correlation(received, torch.arange(64.0)).item() == 0.0


def test_row_entropy_is_one_when_uniform_and_zero_when_one_hot():
    uniform = torch.full((2, 5, 16), 1 / 16)
    one_hot = torch.eye(16)[:5].expand(2, 5, 16)
    torch.testing.assert_close(row_entropy(uniform, 16), torch.ones(2, 5))
    torch.testing.assert_close(row_entropy(one_hot, 16), torch.zeros(2, 5))
    signed = torch.tensor([[0.5, -0.5]])  # scale maps: the spread of |w|
    assert row_entropy(signed, 2).item() == pytest.approx(1.0)


def test_row_entropy_counts_only_the_keys_a_query_sees():
    cross = torch.zeros(1, 1, 25)
    cross[..., :9] = 1 / 9  # a 5×5 grid: a row and a column hold 9 keys
    assert row_entropy(cross, 9).item() == pytest.approx(1.0)
    assert row_entropy(cross, 25).item() == pytest.approx(math.log(9) / math.log(25))


def test_logit_spread_recovers_the_std_of_softmax_logits_on_the_support():
    logits = torch.randn(3, 4, 20, dtype=torch.float64) * 2.5
    torch.testing.assert_close(logit_spread(torch.softmax(logits, -1)), logits.std(-1, unbiased=False))
    cross = torch.zeros(1, 10, dtype=torch.float64)
    cross[0, :4] = torch.softmax(logits[0, 0, :4], -1)  # zeros off the support are skipped
    torch.testing.assert_close(logit_spread(cross), logits[0, 0, :4].std(unbiased=False)[None])


def test_effective_rank_of_rank_one_and_flat_spectra():
    assert effective_rank(torch.tensor([3.0, 0.0, 0.0])).item() == pytest.approx(1.0)
    assert effective_rank(torch.tensor([2.0, 2.0, 2.0, 2.0])).item() == pytest.approx(4.0)
