"""Maps out of models: blocks and their inputs, query positions, and blocked extraction (acceptance 3)."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tam.analysis import attention_blocks, block_statistics, capture_inputs, gather_maps, map_blocks, query_positions
from tam.analysis.maps import key_grid, key_support
from tam.layers import CrissCross, NonLocal, TransposedAttention
from tam.models import create_model


class LargestTensor(TorchDispatchMode):
    """Records the most elements any op's output had while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_capture_finds_every_block_and_its_input():
    torch.manual_seed(0)
    model = create_model("preresnet20", num_classes=10, attention="cc", attention_blocks=(0, 2, 1))
    logits, inputs = capture_inputs(model.train(), torch.randn(3, 3, 32, 32))
    assert model.training  # restored
    names = [name for name, _ in attention_blocks(model)]
    assert names == ["stages.1.attention.0", "stages.1.attention.1", "stages.2.attention"]
    assert [tuple(inputs[n].shape) for n in names] == [(3, 32, 16, 16), (3, 32, 16, 16), (3, 64, 8, 8)]
    assert logits.shape == (3, 10)


def test_query_positions_are_the_nearest_grid_cells():
    assert query_positions((16, 16), [(0.5, 0.5), (0, 0), (1, 1), (0.2, 0.75)]) == [8 * 16 + 8, 0, 255, 3 * 16 + 11]


@pytest.mark.parametrize("query_block, max_elements", [(7, 1 << 24), (64, 1), (1000, 1 << 24)])
def test_blocks_cover_the_whole_map_once(query_block, max_elements):
    torch.manual_seed(0)
    block = NonLocal(8, heads=2).eval()
    x = torch.randn(3, 8, 6, 7)
    whole = block.attention_map(x)
    seen = torch.zeros_like(whole)
    for images, queries, weights in map_blocks(block, x, query_block=query_block, max_elements=max_elements):
        assert weights.shape[2] <= query_block
        seen[images][:, :, queries] += weights
    torch.testing.assert_close(seen, whole)


def test_criss_cross_and_subsampled_keys_keep_their_grids():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7)
    cross = CrissCross(8)
    weights = gather_maps(cross, x, [0, 12])
    assert weights.shape == (2, 1, 2, 35) and (weights > 0).sum(-1).eq(5 + 7 - 1).all()
    assert key_support(cross, (5, 7)) == 11
    pooled = NonLocal(8, subsample=True)
    assert gather_maps(pooled, x, [3]).shape == (2, 1, 1, 3 * 4) and key_grid(pooled, (5, 7)) == (3, 4)


def test_maps_of_a_56x56_input_never_form_more_than_one_query_block():
    torch.manual_seed(0)
    model = create_model("preresnet18", num_classes=200, attention="nl", attention_blocks=(1, 0, 0, 0), heads=2)
    _, inputs = capture_inputs(model, torch.randn(2, 3, 56, 56))
    (name, block), = attention_blocks(model)
    x = inputs[name]
    n = 56 * 56
    assert x.shape[2:] == (56, 56)
    with LargestTensor() as mode:
        stats = block_statistics(name, block, x, query_block=256)
        gather_maps(block, x, query_positions((56, 56), [(0.5, 0.5), (0.1, 0.9)]))
    assert mode.largest <= 2 * 2 * 256 * n < n * n  # B·h·query_block·N: one block, never N×N
    assert stats.received.shape == (2, 2, n)
    with LargestTensor() as whole:  # the check would see a whole map
        block.attention_map(x[:1, :, :, :])
    assert whole.largest >= n * n


def test_tam_statistics_on_a_model_include_its_spectrum():
    torch.manual_seed(0)
    model = create_model("preresnet20", num_classes=10, attention="tam", attention_blocks=(0, 1, 1), heads=4)
    _, inputs = capture_inputs(model, torch.randn(2, 3, 32, 32))
    for name, block in attention_blocks(model):
        assert isinstance(block, TransposedAttention)
        summary = block_statistics(name, block, inputs[name]).summary()
        assert summary["keys"] == inputs[name].shape[2] * inputs[name].shape[3]
        assert len(summary["singular_values"]) == 4 and len(summary["magnitude_correlation"]["per_head"]) == 4
