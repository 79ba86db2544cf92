"""insert_attention on networks built outside the registry."""

import pytest
import torch
from torch import nn

from devices import needs_values
from tam.layers import AttentionBlock
from tam.models import create_model, insert_attention


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 20, 3, padding=1)
        self.norm = nn.BatchNorm2d(20)

    def forward(self, x):
        return torch.relu(self.norm(self.conv(x)))


class Net(nn.Module):
    """A user's own CNN: channels 8 after ``features.2``, 12 after ``features``, 20 after ``block``."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        )  # fmt: skip
        self.block = Block()
        self.unused = nn.Conv2d(20, 20, 1)
        self.head = nn.Linear(20, 5)

    def forward(self, x):
        return self.head(self.block(self.features(x)).mean(dim=(2, 3)))


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, AttentionBlock)]


@needs_values
@pytest.mark.parametrize("kind", ["tam", "nl", "cc"])
def test_inserts_identity_blocks_with_channels_from_outputs(kind):
    torch.manual_seed(0)
    net = Net().train()
    x = torch.randn(2, 3, 16, 16)
    before = net.eval()(x)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()

    assert insert_attention(net, ["features.2", "block"], kind=kind, heads=2, input_size=(3, 16, 16)) is net
    assert [b.channels for b in _blocks(net)] == [8, 20]
    assert isinstance(net.features[2].attention, AttentionBlock)
    assert isinstance(net.features[2].module, nn.ReLU)
    assert net.training  # the probing pass ran in eval mode, and the mode came back
    for key, value in state.items():  # the probing pass left the BN statistics alone
        assert torch.equal(net.state_dict()[key.replace("block.", "block.module.")], value)
    assert torch.equal(net.eval()(x), before)  # identity at init

    net.train()(x).square().mean().backward()
    assert all(p.grad is not None for name, p in net.named_parameters() if not name.startswith("unused."))


def test_stacks_blocks_and_nested_names():
    net = insert_attention(Net(), ["features", "features.4"], kind="tam", blocks=2, input_size=(3, 16, 16))
    assert [b.channels for b in _blocks(net)] == [12, 12, 12, 12]
    assert isinstance(net.features.module[4].attention, nn.Sequential)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5)


def test_on_a_registry_model():
    model = create_model("preresnet20")
    insert_attention(model, "stages.2.1", kind="nl", input_size=(3, 32, 32))
    assert [b.channels for b in _blocks(model)] == [64]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    ("after", "match"),
    [
        (["features.22"], r"no module named 'features.22'; close matches: \['features.2'"),
        (["blok"], r"no module named 'blok'; close matches: \['block'"),
        (["xyz"], r"no module named 'xyz'; top-level modules: \['features', 'block', 'unused', 'head'\]"),
        ([""], r"no module named ''"),
        ([], r"non-empty list"),
        (["block", "block"], r"repeated: \['block'\]"),
        (["head"], r"'head' outputs \[1, 5\], not a feature map \[B, C, \*S\] with 2 spatial dims like the input"),
        (["unused"], r"\['unused'\] were not called"),
    ],
)
def test_refuses_bad_sites(after, match):
    net = Net()
    with pytest.raises(ValueError, match=match):
        insert_attention(net, after, kind="tam", input_size=(3, 16, 16))
    assert not _blocks(net)


class TinyViT(nn.Module):
    """A ViT in miniature: patches -> tokens ``[B, N, C]`` -> blocks that keep ``[B, N, C]``."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 12, 4, stride=4)
        self.blocks = nn.Sequential(nn.Linear(12, 12), nn.Linear(12, 12))

    def forward(self, x):
        return self.blocks(self.patch(x).flatten(2).transpose(1, 2)).mean(1)


def test_refuses_token_outputs_in_one_line():
    net = TinyViT()
    with pytest.raises(ValueError) as caught:
        insert_attention(net, "blocks.1", kind="tam", input_size=(3, 16, 16))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("after: module 'blocks.1' outputs [1, 16, 12], not a feature map [B, C, *S]")
    assert "token sequence [B, N, C]" in message
    assert not _blocks(net)
    # the patch embedding before the tokens is a feature map, and takes attention
    insert_attention(net, "patch", kind="tam", input_size=(3, 16, 16))
    assert [b.channels for b in _blocks(net)] == [12]


def test_blocks_are_created_in_the_sites_dtype_or_as_told():
    net = Net().double()
    insert_attention(net, "block", kind="tam", input_size=(3, 16, 16))
    assert {p.dtype for p in _blocks(net)[0].parameters()} == {torch.float64}
    net = insert_attention(Net(), "block", kind="tam", input_size=(3, 16, 16), device="meta")
    assert all(p.is_meta for p in _blocks(net)[0].parameters())
