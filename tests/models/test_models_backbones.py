"""Every registered model × every attention kind: shapes, gradients, memory format, compile; published sizes."""

import pytest
import torch
from torch import nn

from devices import needs_values, without_default_device
from tam.layers import AttentionBlock
from tam.models import create_model, list_models, model_info

KINDS = [None, "tam", "nl", "cc"]


def _switch_attention_on(model: nn.Module) -> None:
    """Give every attention block's output BN γ = 1, so that attention changes the output and gets gradients."""
    for block in model.modules():
        if isinstance(block, AttentionBlock):
            for m in block.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    nn.init.ones_(m.weight)


def _build(name, kind):
    """The model with one attention block per stage, switched on, and a small input.

    The models are fully convolutional up to a global pool, so an input whose last stage is 2×2 tests every
    layer at a fraction of the cost of the native size (checked once per model in ``test_native_input_size``).
    """
    torch.manual_seed(0)
    stages = model_info(name).num_stages
    model = create_model(name, num_classes=7, attention=kind, attention_blocks=(1,) * stages if kind else None)
    _switch_attention_on(model)
    return model, torch.randn(2, 3, 2**stages, 2**stages)


@needs_values
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name, kind):
    model, x = _build(name, kind)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@needs_values
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list_models())
def test_channels_last_matches_contiguous(name, kind):
    # Float64: in float32 either layout differs from the exact result by up to 1e-4 relative in the deepest
    # models. Train mode: batch statistics keep an untrained deep model with attention switched on finite.
    model, x = _build(name, kind)
    model, x = model.double(), x.double()
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


@pytest.mark.parametrize("name", list_models())
def test_native_input_size(name):
    info = model_info(name)
    model = create_model(name)
    assert len(model.stages) == info.num_stages
    assert model.num_classes == info.num_classes == model.fc.out_features
    assert model.attention is None and model.attention_blocks == (0,) * info.num_stages
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, *info.input_size))
    side = info.input_size[-1] // 2 ** (info.num_stages - 1)  # 8×8 for CIFAR, 7×7 for Tiny-ImageNet
    assert features.shape == (2, model.num_features, side, side)
    assert model.forward_head(features).shape == (2, info.num_classes)


@needs_values
def test_torch_compile_smoke():
    model, x = _build("preresnet20", "tam")
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with without_default_device():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


@needs_values
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tam", "nl", "cc"])
def test_torch_compile_inductor(kind):
    model, x = _build("preresnet20", kind)
    model.eval()
    with torch.no_grad(), without_default_device():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("name", "millions", "tolerance"),
    [
        ("preresnet20", 0.272, 0.0005),
        ("preresnet56", 0.590, 0.0005),
        ("preresnet164", 1.70, 0.01),  # He et al. 2016, Table 3
        ("wrn16_8", 11.0, 0.05),  # Zagoruyko & Komodakis 2016, Table 4
        ("wrn28_10", 36.5, 0.05),
    ],
)
def test_published_parameter_counts(name, millions, tolerance):
    params = sum(p.numel() for p in create_model(name, num_classes=10).parameters())
    assert abs(params / 1e6 - millions) <= tolerance, params


@needs_values
def test_kaiming_fan_out_init():
    torch.manual_seed(0)
    conv = create_model("wrn16_8").stages[2][1].conv2  # 512 -> 512, 3×3: fan-out 4608
    assert conv.weight.std().item() == pytest.approx((2 / 4608) ** 0.5, rel=0.02)


def test_dropout_option():
    model = create_model("wrn16_8", drop_rate=0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3] * 6
    assert not any(isinstance(m, nn.Dropout) for m in create_model("wrn16_8").modules())
