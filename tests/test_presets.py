"""The ``icip2022`` preset builds the thesis code's blocks and networks exactly: checked against the written-out
reference of that code (``authors_reference``), float64, with the same weights under its names."""

import math

import pytest
import torch

import authors_reference as authors
import tam
from tam.presets import PRESETS, apply_preset

PRESET = "icip2022"


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Attention weights of a trained size and BN scales away from the identity init, as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in module.modules():
            if isinstance(block, tam.layers.AttentionBlock):
                for conv in (block.theta, block.phi, block.g, block.z):
                    weight = torch.randn(conv.weight.shape, generator=generator, dtype=conv.weight.dtype)
                    conv.weight.copy_(weight * 0.3)
            if isinstance(block, torch.nn.modules.batchnorm._BatchNorm):
                block.weight.copy_(torch.rand(block.weight.shape, generator=generator, dtype=block.weight.dtype) + 0.5)
                block.bias.copy_(torch.randn(block.bias.shape, generator=generator, dtype=block.bias.dtype) * 0.1)


BLOCK_CASES = [
    (kind, heads, normalization, geometry, pos)
    for kind in ("tam", "nl")
    for heads in (1, 2, 8)
    for normalization in ("scale", "softmax")
    for geometry in ("full", "magnitude", "direction")
    for pos in (False, True)
    if not (kind == "tam" and normalization == "softmax" and geometry == "magnitude")
]


@pytest.mark.parametrize(("kind", "heads", "normalization", "geometry", "pos"), BLOCK_CASES)
def test_preset_block_computes_the_thesis_codes_block(kind, heads, normalization, geometry, pos):
    channels, spatial = 16, (4, 5)
    layer = tam.create_attention(kind, channels, preset=PRESET, heads=heads, normalization=normalization,
                                 geometry=geometry, pos_encoding="sincos" if pos else None).double()
    assert layer.embed_channels == (channels // 2 if heads == 1 else channels)
    _randomise(layer)
    x = torch.randn(3, channels, *spatial, dtype=torch.float64)
    params = authors.authors_block_state_dict(layer.state_dict())
    expected = authors.stack(params, "", x, blocks=1, positional=pos, kind=kind, heads=heads,
                             softmax=normalization == "softmax", geometry=geometry)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        actual = layer(x.contiguous(memory_format=memory_format))
        assert (actual - expected).abs().max() / expected.abs().max() <= 1e-10, memory_format


def test_the_one_combination_tam_refuses_is_named():
    # The thesis code would run a softmax over keys of width 1 (constant; Wφ gets no gradient): tam refuses it.
    with pytest.raises(ValueError, match="normalization='softmax' needs keys of width ≥ 2"):
        tam.create_attention("tam", 16, preset=PRESET, normalization="softmax", geometry="magnitude")


@pytest.mark.parametrize("normalization", ["scale", "softmax"])
def test_a_stack_adds_the_positions_once_at_its_input(normalization):
    stack = tam.create_attention("tam", 16, blocks=2, heads=2, preset=PRESET, normalization=normalization,
                                 pos_encoding="sincos").double()
    _randomise(stack)
    x = torch.randn(2, 16, 4, 4, dtype=torch.float64)
    expected = authors.stack(authors.authors_block_state_dict(stack.state_dict()), "", x, blocks=2, positional=True,
                             kind="tam", heads=2, softmax=normalization == "softmax", geometry="full")
    assert (stack(x) - expected).abs().max() / expected.abs().max() <= 1e-10


NETWORK_CASES = [
    ("tam", 1, "scale", "full", False),
    ("tam", 8, "softmax", "direction", True),
    ("nl", 2, "scale", "magnitude", True),
    ("nl", 8, "softmax", "full", False),
]


@pytest.mark.parametrize(("kind", "heads", "normalization", "geometry", "pos"), NETWORK_CASES)
def test_preset_preresnet56_computes_the_thesis_codes_network(kind, heads, normalization, geometry, pos):
    torch.manual_seed(0)
    model = tam.create_model("preresnet56", attention=kind, attention_blocks=(1, 2, 1), heads=heads,
                             normalization=normalization, geometry=geometry,
                             pos_encoding="sincos" if pos else None, preset=PRESET).double()
    _randomise(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = authors.preresnet(authors.authors_state_dict(model.state_dict()), x, depth=56, blocks=(1, 2, 1),
                                 positional=pos, kind=kind, heads=heads, softmax=normalization == "softmax",
                                 geometry=geometry)
    actual = model(x)
    assert (actual - expected).abs().max() / expected.abs().max() <= 1e-10


def test_default_preresnet_differs_from_the_thesis_code_only_by_its_shortcut():
    """The reference reads the shortcut from the raw input: tam's default (preactivated) is another network,
    so the comparison above can fail."""
    torch.manual_seed(0)
    model = tam.create_model("preresnet20").double()
    _randomise(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = authors.preresnet(authors.authors_state_dict(model.state_dict()), x, depth=20)
    assert (model(x) - expected).abs().max() / expected.abs().max() > 1e-3
    raw = tam.create_model("preresnet20", shortcut_input="raw").double()
    raw.load_state_dict(model.state_dict())
    assert (raw(x) - expected).abs().max() / expected.abs().max() <= 1e-10


# Parameters of the thesis code's PreResNets with one block per stage (its --num-block1..3 1), counted there:
# E = C/2 with one head, E = C per stage with eight.
THESIS_PARAMS = {
    ("preresnet56", 1): 763_354, ("preresnet56", 8): 935_386,
    ("preresnet110", 1): 1_319_770, ("preresnet110", 8): 1_491_802,
    ("preresnet164", 1): 1_876_186, ("preresnet164", 8): 2_048_218,
}


@pytest.mark.parametrize(("name", "heads"), list(THESIS_PARAMS))
def test_preset_parameter_counts(name, heads):
    model = tam.create_model(name, attention="tam", attention_blocks=(1, 1, 1), heads=heads, preset=PRESET)
    assert sum(p.numel() for p in model.parameters()) == THESIS_PARAMS[name, heads]
    plain = sum(p.numel() for p in tam.create_model(name).parameters())
    widths = (64, 128, 256)  # bottleneck stages: 4 × (16, 32, 64)
    embed = [c // 2 if heads == 1 else c for c in widths]
    assert THESIS_PARAMS[name, heads] == plain + sum(4 * c * e + 2 * c for c, e in zip(widths, embed))


def test_embed_width_c_per_stage_adds_172032_parameters_to_preresnet56():
    assert THESIS_PARAMS["preresnet56", 8] - THESIS_PARAMS["preresnet56", 1] == 172_032
    default = tam.create_model("preresnet56", attention="tam", attention_blocks=(1, 1, 1), heads=8)
    assert sum(p.numel() for p in default.parameters()) == THESIS_PARAMS["preresnet56", 1]


@pytest.mark.parametrize("geometry", ["full", "magnitude", "direction"])
@pytest.mark.parametrize("heads", [1, 2, 8])
def test_with_the_preset_non_local_scale_is_tam_scale_times_sqrt_d(heads, geometry):
    t = tam.create_attention("tam", 16, preset=PRESET, heads=heads, geometry=geometry).double()
    n = tam.create_attention("nl", 16, preset=PRESET, heads=heads, geometry=geometry, normalization="scale").double()
    n.load_state_dict(t.state_dict())
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    ratio = n.attention_map(x) / t.attention_map(x)
    d = t.head_channels
    torch.testing.assert_close(ratio, torch.full_like(ratio, math.sqrt(d)), rtol=1e-12, atol=0)
    # tam's own convention: the two are one function.
    shell = dict(heads=heads, embed_channels=t.embed_channels, geometry=geometry)
    t0, n0 = tam.TransposedAttention(16, **shell), tam.NonLocal(16, normalization="scale", **shell)
    n0.load_state_dict(t0.state_dict())
    torch.testing.assert_close(n0.double().attention_map(x), t0.double().attention_map(x), rtol=1e-12, atol=0)


@pytest.mark.parametrize("heads", [1, 8])
def test_with_the_preset_non_local_softmax_is_unchanged(heads):
    preset = tam.create_attention("nl", 16, preset=PRESET, heads=heads, geometry="direction").double()
    plain = tam.NonLocal(16, heads=heads, embed_channels=preset.embed_channels, geometry="direction").double()
    _randomise(preset)
    plain.load_state_dict(preset.state_dict())
    x = torch.randn(2, 16, 4, 5, dtype=torch.float64)
    # Only the direction's ε differs (0 against 1e-6): a relative change of order 1e-6 / ‖q‖.
    torch.testing.assert_close(preset(x), plain(x), rtol=1e-5, atol=1e-5)
    plain_full = tam.NonLocal(16, heads=heads, embed_channels=preset.embed_channels).double()
    preset_full = tam.create_attention("nl", 16, preset=PRESET, heads=heads).double()
    preset_full.load_state_dict(preset.state_dict())
    plain_full.load_state_dict(preset.state_dict())
    assert torch.equal(preset_full(x), plain_full(x))


def test_preset_sets_what_its_table_says():
    options = apply_preset(PRESET, {"heads": 8}, model="preresnet56", kind="nl")
    assert options == {"heads": 8, "shortcut_input": "raw", "classifier_init": "kaiming",
                       "pos_encoding_placement": "input", "direction_eps": 0.0, "scale_divisor": "sqrt_n",
                       "embed_ratio": 1.0}
    tam_options = apply_preset(PRESET, {}, kind="tam")
    assert tam_options["scale_softmax_logits"] is False and tam_options["magnitude_scale_width"] == "head"
    assert tam_options["embed_ratio"] == 0.5
    # Their Wide ResNet reads the shortcut from the preactivated input, as tam does; other kinds keep theirs.
    assert apply_preset(PRESET, {}, model="wrn16_8", kind="cc") == {"shortcut_input": "preactivated",
                                                                     "classifier_init": "kaiming"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: tam.create_model("preresnet56", attention="tam", preset=PRESET, embed_channels=32),
     "preset 'icip2022' sets the embed width"),
    (lambda: tam.create_model("preresnet56", attention="nl", normalization="scale", preset=PRESET,
                              scale_divisor="sqrt_nd"),
     r"preset 'icip2022' sets scale_divisor='sqrt_n'; drop scale_divisor='sqrt_nd' or the preset"),
    (lambda: tam.create_model("preresnet56", preset=PRESET, shortcut_input="preactivated"),
     "preset 'icip2022' sets shortcut_input='raw'"),
    (lambda: tam.create_attention("tam", 16, preset=PRESET, heads=8, embed_ratio=0.5),
     "preset 'icip2022' sets embed_ratio=1.0"),
    (lambda: tam.create_model("preresnet56", preset="thesis"), r"preset must be one of \('icip2022',\)"),
    (lambda: tam.create_attention("tam", 16, preset="icip"), "preset must be one of"),
])
def test_contradicting_options_and_unknown_names_are_refused_in_one_line(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_explicit_options_that_agree_with_the_preset_are_accepted():
    model = tam.create_model("preresnet20", attention="nl", heads=2, preset=PRESET, shortcut_input="raw",
                             scale_divisor="sqrt_n", embed_ratio=1.0)
    assert model.stages[1].attention.embed_channels == 32
    assert set(PRESETS) == {PRESET}
