"""create_model: attention placement and counts, identity at init, interchangeable kinds, clear errors."""

import pytest
import torch

from devices import needs_values
from tam.layers import AttentionBlock
from tam.models import create_model, list_models, model_info


def _attention_blocks(model):
    return [m for m in model.modules() if isinstance(m, AttentionBlock)]


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_list_models():
    assert list_models() == [
        "preresnet20", "preresnet32", "preresnet44", "preresnet56", "preresnet110", "preresnet164",
        "preresnet18", "preresnet34", "preresnet50", "wrn16_8", "wrn28_10",
    ]  # fmt: skip
    assert list_models("wrn*") == ["wrn16_8", "wrn28_10"]
    assert model_info("preresnet18").input_size == (3, 56, 56)
    assert model_info("preresnet18").num_classes == 200


def test_cifar_depths_as_in_the_thesis_code():
    def units(name):
        return [len(stage) for stage in create_model(name).stages]

    assert units("preresnet20") == [3, 3, 3]  # basic: (20 - 2) / 6
    assert units("preresnet44") == [4, 4, 4]  # bottleneck from 44 up: (44 - 2) // 9
    assert units("preresnet164") == [18, 18, 18]
    assert create_model("preresnet56").num_features == 256


@pytest.mark.parametrize(
    ("name", "blocks"), [("preresnet20", (1, 2, 0)), ("preresnet18", (0, 1, 3, 1)), ("preresnet56", (2, 0, 1))]
)
@pytest.mark.parametrize("kind", ["tam", "nl", "cc"])
def test_attention_count_and_placement(name, blocks, kind):
    model = create_model(name, attention=kind, attention_blocks=blocks, heads=2)
    assert len(_attention_blocks(model)) == sum(blocks)
    assert model.attention == kind and model.attention_blocks == blocks
    for stage, count in zip(model.stages, blocks):
        names = [n for n, _ in stage.named_children()]
        if count:
            assert names[-2] == "attention"  # right before the last residual unit
            assert len(_attention_blocks(stage.attention)) == count
        else:
            assert "attention" not in names


def test_default_placement_is_one_block_per_stage_but_the_first():
    assert create_model("preresnet56", attention="tam").attention_blocks == (0, 1, 1)
    assert create_model("preresnet18", attention="nl").attention_blocks == (0, 1, 1, 1)


@pytest.mark.parametrize("name", ["preresnet20", "preresnet18"])
def test_kinds_have_interchangeable_state_dicts(name):
    options = dict(attention_blocks=(1,) * model_info(name).num_stages, heads=2, embed_channels=8)
    models = {kind: create_model(name, attention=kind, **options) for kind in ("tam", "nl", "cc")}
    assert len({_params(m) for m in models.values()}) == 1
    for source in models.values():
        for target in models.values():
            target.load_state_dict(source.state_dict(), strict=True)


@needs_values
@pytest.mark.parametrize("kind", ["tam", "nl", "cc"])
@pytest.mark.parametrize("name", ["preresnet20", "preresnet50"])
def test_attention_is_the_identity_at_init(name, kind):
    torch.manual_seed(0)
    plain = create_model(name)
    stages = model_info(name).num_stages
    attended = create_model(name, attention=kind, attention_blocks=(1,) * stages, heads=2)
    missing, unexpected = attended.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".attention." in key for key in missing)
    x = torch.randn(2, 3, 2**stages, 2**stages)
    for train in (True, False):
        plain.train(train), attended.train(train)
        with torch.no_grad():
            assert torch.equal(attended(x), plain(x))


def test_backbone_options():
    model = create_model("preresnet20", num_classes=100, in_chans=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 100)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(name="preresnet57"), ValueError, r"unknown model 'preresnet57'.*'preresnet56'.*preresnet20, preresnet32"),
        (dict(name="resnet50"), ValueError, r"Available models: preresnet20.*wrn28_10"),
        (dict(attention="sam"), ValueError, r"attention must be None or one of \('tam', 'nl', 'cc'"),
        (dict(attention="tam", attention_blocks=(1, 1)), ValueError, r"3 non-negative ints, one per stage"),
        (dict(attention="tam", attention_blocks=(0, -1, 1)), ValueError, r"non-negative ints"),
        (dict(attention="tam", attention_blocks=(0, 1.0, 1)), ValueError, r"non-negative ints"),
        (dict(attention="tam", attention_blocks=3), ValueError, r"one per stage"),
        (dict(heads=2), ValueError, r"unexpected options \['heads'\].*need an attention kind, one of \('tam'"),
        (dict(num_clases=10), ValueError, r"unexpected options \['num_clases'\].*num_classes"),
        (dict(attention_blocks=(0, 1, 1)), ValueError, r"needs an attention kind"),
        (dict(attention="tam", attention_blocks=(0, 1, 1), hedas=2), TypeError, r"unknown option.*'hedas'.*heads"),
    ],
)
def test_errors_name_what_exists(kwargs, error, match):
    kwargs = {"name": "preresnet20", **kwargs}
    with pytest.raises(error, match=match):
        create_model(kwargs.pop("name"), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_classes=0), "num_classes must be ≥ 1"),
        (dict(in_chans=0), "in_chans must be ≥ 1"),
        (dict(drop_rate=1.5), r"drop_rate must be in \[0, 1\)"),
    ],
)
def test_bad_backbone_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("preresnet20", **kwargs)
