"""Workloads build the real blocks and models and run a training step."""

import pytest
import torch

from tam.bench.suites import Case
from tam.bench.workload import build_workload


@pytest.mark.parametrize("kind", ["tam", "nl", "nl_sdpa", "cc", "floor"])
def test_block_step_gives_every_parameter_and_the_input_a_gradient(kind):
    workload = build_workload(Case("heads", kind, heads=2, side=4, channels=8, batch=2, blocks=2))
    assert workload.module.training
    workload.step()
    (x,) = workload.inputs
    assert x.shape == (2, 8, 4, 4) and x.grad is not None
    assert all(p.grad is not None for p in workload.module.parameters())


def test_network_step_updates_the_weights():
    with_tam = build_workload(Case("network", "tam", 1, 32, 3, 4, 3, "preresnet20", (1, 1, 1)))
    plain = build_workload(Case("network", "none", 1, 32, 3, 4, 3, "preresnet20", (1, 1, 1)))
    assert with_tam.params > plain.params
    before = [p.detach().clone() for p in plain.module.parameters()]
    plain.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, plain.module.parameters()))
