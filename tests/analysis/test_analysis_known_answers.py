"""Acceptance 1: statistics on constructed inputs whose answer is known.

The blocks get identity projections, ``q = x[:d]`` and ``k = x[d:]``, so the input *is* the queries and keys.
"""

import pytest
import torch

from tam.analysis import block_statistics, gather_maps
from tam.layers import NonLocal, TransposedAttention

D, N = 8, 256


def identity_block(cls, **options):
    block = cls(2 * D, embed_channels=D, **options)
    eye, zero = torch.eye(D), torch.zeros(D, D)
    with torch.no_grad():
        block.theta.weight.copy_(torch.cat([eye, zero], 1)[..., None])
        block.phi.weight.copy_(torch.cat([zero, eye], 1)[..., None])
    return block.double().eval()


@pytest.fixture(scope="module")
def one_direction():
    """Every query and key points along one unit vector ``u``; the key norms run from 0.5 to 3, shuffled."""
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(D, 1, generator=generator, dtype=torch.float64)
    u = u / u.norm()
    norms = torch.linspace(0.5, 3.0, N, dtype=torch.float64)[torch.randperm(N, generator=generator)]
    return torch.cat([u.expand(D, N), u * norms], 0)[None], norms


@pytest.fixture(scope="module")
def random_directions():
    """Isotropic queries; keys with random directions and norms drawn independently (log-uniform over e^±1)."""
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(4, D, N, generator=generator, dtype=torch.float64)
    directions = torch.randn(4, D, N, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    norms = torch.empty(4, 1, N, dtype=torch.float64).uniform_(-1, 1, generator=generator).exp()
    return torch.cat([q, directions * norms], 1)


@pytest.mark.parametrize("geometry", ["full", "magnitude"])
def test_softmax_weight_rises_with_the_key_norm(one_direction, geometry):
    x, norms = one_direction
    stats = block_statistics("nl", identity_block(NonLocal, geometry=geometry), x, query_block=100)
    torch.testing.assert_close(stats.magnitude[0, 0], norms)
    assert stats.magnitude_correlation().item() == pytest.approx(1.0)
    order = norms.argsort()
    assert (stats.received[0, 0, order].diff() > 0).all()


def test_direction_geometry_does_not_follow_the_norm(one_direction):
    x, _ = one_direction
    stats = block_statistics("nl", identity_block(NonLocal, geometry="direction"), x, query_block=100)
    torch.testing.assert_close(stats.received, torch.full_like(stats.received, 1 / N))  # one direction: flat
    assert stats.magnitude_correlation().item() == 0.0
    assert stats.entropy.item() == pytest.approx(1.0)


def test_softmax_leans_on_magnitude_and_scale_on_direction(random_directions):
    softmax = block_statistics("nl", identity_block(NonLocal), random_directions)
    scale = block_statistics("nl", identity_block(NonLocal, normalization="scale"), random_directions)
    direction = block_statistics("nl", identity_block(NonLocal, geometry="direction"), random_directions)
    assert softmax.magnitude_correlation().mean() > 0.9
    assert softmax.direction_correlation().mean().abs() < 0.3
    assert scale.magnitude_correlation().mean().abs() < 0.1
    assert scale.direction_correlation().mean() > 0.8
    assert direction.magnitude_correlation().mean().abs() < 0.1
    assert direction.direction_correlation().mean() > 0.8
    assert softmax.logit_spread.mean() > 1 and scale.logit_spread is None  # past the linear regime of exp


def test_implied_tam_weights_equal_the_non_local_scale_map(random_directions):
    torch.manual_seed(0)
    tam = TransposedAttention(2 * D, heads=2).double()
    non_local = NonLocal(2 * D, heads=2, normalization="scale").double()
    non_local.load_state_dict(tam.state_dict())
    x = random_directions[:2].unflatten(-1, (16, 16))
    queries = [0, 17, 255]
    q = torch.einsum("ec,bcn->ben", tam.theta.weight[..., 0], x.flatten(2)).unflatten(1, (2, D // 2))
    k = torch.einsum("ec,bcn->ben", tam.phi.weight[..., 0], x.flatten(2)).unflatten(1, (2, D // 2))
    direct = torch.einsum("bhdq,bhdn->bhqn", q[..., queries], k) / (N * D // 2) ** 0.5  # s·q_i·k_j
    torch.testing.assert_close(tam.attention_map(x, queries), direct)
    torch.testing.assert_close(gather_maps(tam, x, queries, query_block=2), direct)
    torch.testing.assert_close(non_local.attention_map(x, queries), direct)
    tam_stats = block_statistics("tam", tam, x, query_block=64)
    nl_stats = block_statistics("nl", non_local, x)
    torch.testing.assert_close(tam_stats.received, nl_stats.received)
    assert tam_stats.singular_values.shape == (2, 2, D // 2) and nl_stats.singular_values is None


def test_tam_softmax_has_only_its_d_by_d_map(random_directions):
    stats = block_statistics("tam", identity_block(TransposedAttention, normalization="softmax"), random_directions)
    assert stats.received is None and stats.singular_values.shape == (4, 1, D)
    summary = stats.summary()
    assert "magnitude_correlation" not in summary and 1 <= summary["effective_rank"]["mean"] <= D
