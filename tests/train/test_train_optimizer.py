"""build_optimizer: the recipe's SGD, with weight decay on every parameter or on weight matrices only."""

import torch
from torch import nn

from tam.train.config import TrainConfig
from tam.train.optimizer import build_optimizer


def model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_the_thesis_recipe_decays_every_parameter():
    net = model()
    opt = build_optimizer(net, TrainConfig(lr=0.2, momentum=0.8, nesterov=True, weight_decay=1e-3))
    (group,) = opt.param_groups
    assert len(group["params"]) == len(list(net.parameters())) == 6
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.2, 0.8, True, 1e-3)


def test_without_decay_on_norm_and_bias_only_weight_matrices_decay():
    net = model()
    opt = build_optimizer(net, TrainConfig(weight_decay=1e-3, decay_norm_and_bias=False))
    decayed, free = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [net[0].weight.shape, net[3].weight.shape]
    assert {id(p) for p in free["params"]} == {id(net[0].bias), id(net[1].weight), id(net[1].bias), id(net[3].bias)}
    assert (decayed["weight_decay"], free["weight_decay"]) == (1e-3, 0.0)
    # one step from zero gradients: only the decayed group moves
    before = [p.detach().clone() for p in net.parameters()]
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = {id(p) for p, b in zip(net.parameters(), before) if not torch.equal(p, b)}
    assert moved == {id(net[0].weight), id(net[3].weight)}


def test_xca_temperature_is_never_decayed_and_frozen_weights_are_left_out():
    from tam.models import create_model

    net = create_model("preresnet20", num_classes=10, attention="xca", heads=2)
    temperatures = {id(m.temperature) for m in net.modules() if hasattr(m, "temperature")}
    assert temperatures
    for decay_norm_and_bias in (True, False):
        opt = build_optimizer(net, TrainConfig(weight_decay=1e-3, decay_norm_and_bias=decay_norm_and_bias))
        decayed, free = opt.param_groups
        assert temperatures <= {id(p) for p in free["params"]}
        assert not temperatures & {id(p) for p in decayed["params"]}
    gc = create_model("preresnet20", num_classes=10, attention="gc")
    frozen = {id(p) for p in gc.parameters() if not p.requires_grad}
    assert frozen and not frozen & {id(p) for group in build_optimizer(gc, TrainConfig()).param_groups for p in group["params"]}
