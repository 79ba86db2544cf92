"""tam inside timm, with the real timm: TAM as a ResNet's ``attn_layer``, ``insert_attention`` on a ConvNeXt, a
ViT's tokens refused, one SGD step, state dicts saved and loaded, and the README's timm recipe as written.

Marked ``timm`` (deselected by default; ``scripts/timm_check.sh`` builds a venv with timm and runs them) and
skipped where timm is not importable.
"""

import functools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tam

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.timm

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
TAM8 = functools.partial(tam.TransposedAttention, heads=8)


def _resnet50(attn_layer=None, **kwargs):
    # zero_init_last=False: timm zeroes each residual branch's last BN by default, which would make the
    # identity check below hold whatever the attention layer computed.
    block_args = {"attn_layer": attn_layer} if attn_layer else None
    return timm.create_model("resnet50", num_classes=10, zero_init_last=False, block_args=block_args, **kwargs)


def _attention_layers(model):
    return [m for m in model.modules() if isinstance(m, tam.layers.AttentionBlock)]


def _sgd_step(model, x):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(x), torch.arange(x.shape[0]) % 10)
    loss.backward()
    optimizer.step()
    return loss


def test_resnet50_takes_tam_as_attn_layer_and_is_the_plain_model_at_init():
    torch.manual_seed(0)
    model = _resnet50(TAM8)
    assert len(_attention_layers(model)) == 16  # one per bottleneck: 3 + 4 + 6 + 3
    assert {layer.heads for layer in _attention_layers(model)} == {8}
    plain = _resnet50()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".se." in key for key in missing)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(model.eval()(x), plain.eval()(x))


def test_timm_passes_factory_kwargs_to_tam():
    model = _resnet50(TAM8, device="meta")
    assert _attention_layers(model) and all(p.is_meta for p in model.parameters())
    model = _resnet50(TAM8, dtype=torch.float64)
    assert {p.dtype for layer in _attention_layers(model) for p in layer.parameters()} == {torch.float64}


def test_resnet50_with_tam_trains_one_step_and_round_trips_its_state_dict(tmp_path):
    torch.manual_seed(0)
    model = _resnet50(TAM8)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss = _sgd_step(model, torch.randn(4, 3, 64, 64))
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    for layer in _attention_layers(model):  # BN's γ leaves zero: the block starts to act
        assert layer.bn.weight.abs().sum() > 0
    assert sum(not torch.equal(p, before[name]) for name, p in model.named_parameters()) > len(before) // 2

    torch.save(model.state_dict(), tmp_path / "resnet50_tam.pt")
    restored = _resnet50(TAM8)
    restored.load_state_dict(torch.load(tmp_path / "resnet50_tam.pt", weights_only=True), strict=True)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in restored.state_dict().items())
    # in train mode: after one step, BN's running statistics are still far from the features' (eval would
    # feed the 1e34-sized activations of an untrained network to every layer)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(restored.train()(x), model.train()(x))


def test_insert_attention_on_a_timm_convnext():
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    before = model.eval()(x)
    tam.insert_attention(model, after=["stages.1", "stages.2"], kind="tam", heads=8, input_size=(3, 64, 64))
    assert [layer.channels for layer in _attention_layers(model)] == [80, 160]
    assert torch.equal(model.eval()(x), before)
    assert torch.isfinite(_sgd_step(model, x))
    assert all(p.grad is not None for layer in _attention_layers(model) for p in layer.parameters())


def test_insert_attention_refuses_a_vit_block_in_one_line():
    model = timm.create_model("vit_tiny_patch16_224", num_classes=10)
    with pytest.raises(ValueError) as caught:
        tam.insert_attention(model, after="blocks.3", kind="tam", heads=8)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("after: module 'blocks.3' outputs [1, 197, 192], not a feature map")
    assert not _attention_layers(model)


def test_readme_timm_recipe_runs():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "import timm" in b]
    assert blocks, "the README shows no timm recipe"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
