"""Workloads build the real blocks and models and run a training step."""

import pytest
import torch

from tam.bench.suites import Case
from tam.bench.workload import Workload, build_workload


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


def test_channels_last_cases_feed_channels_last_inputs_and_weights():
    block = build_workload(Case("fastpath", "tam", 2, 4, 8, 2, channels_last=True))
    (x,) = block.inputs
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert block.forward().is_contiguous(memory_format=torch.channels_last)
    network = build_workload(Case("network", "none", 1, 32, 3, 2, 3, "preresnet20", (1, 1, 1), channels_last=True))
    (images,) = network.inputs
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in network.module.parameters() if p.dim() == 4)
    assert not build_workload(Case("fastpath", "tam", 2, 4, 8, 2)).inputs[0].is_contiguous(
        memory_format=torch.channels_last)


def test_suite_cases_carry_the_memory_format():
    from tam.bench.suites import suite_cases

    assert {c.channels_last for c in suite_cases("fastpath", quick=True, channels_last=True)} == {True}
    assert {c.channels_last for c in suite_cases("network", quick=True)} == {False}
    assert Case.from_dict({k: v for k, v in Case("heads", "tam", 1, 8, 8, 2).to_dict().items()
                           if k != "channels_last"}).channels_last is False  # results written before the field


@pytest.mark.parametrize("channels_last", [False, True])
def test_block_backward_starts_from_a_dense_gradient_in_the_output_layout(channels_last):
    # An expanded y.sum() gradient sends CPU BatchNorm backward down a slow path no network step takes.
    workload = build_workload(Case("fastpath", "floor", 2, 4, 8, 2, channels_last=channels_last))
    seed = workload.grad_output
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert seed.is_contiguous(memory_format=memory_format) and 0 not in seed.stride()
    torch.nn.init.ones_(workload.module.bn.weight)  # else the block is the identity and x.grad is the seed
    workload.step()
    (x,) = workload.inputs
    twin = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad((workload.module(twin) * seed).sum(), twin)
    assert not torch.allclose(expected, seed, atol=1e-3)
    torch.testing.assert_close(x.grad, expected)


def test_a_workload_needs_exactly_one_way_to_start_its_backward():
    with pytest.raises(ValueError, match="exactly one of loss and grad_output"):
        Workload(torch.nn.Identity(), (torch.ones(1),))
    with pytest.raises(ValueError, match="exactly one of loss and grad_output"):
        Workload(torch.nn.Identity(), (torch.ones(1),), torch.sum, grad_output=torch.ones(1))


def test_amp_cases_run_forward_and_loss_under_autocast():
    from tam.bench.suites import suite_cases

    assert {c.amp for c in suite_cases("network", quick=True, amp="bf16")} == {"bf16"}
    assert "bf16" in suite_cases("fastpath", quick=True, amp="bf16")[0].label()
    assert "bf16" not in suite_cases("fastpath", quick=True)[0].label()
    with pytest.raises(ValueError, match="amp must be one of"):
        suite_cases("fastpath", amp="fp8")
    block = build_workload(Case("fastpath", "tam", 2, 4, 8, 2, amp="bf16"))
    block.step()  # a float32 seed into a block whose BN output came from bf16 products
    assert block.inputs[0].grad.dtype == torch.float32
    network = build_workload(Case("network", "none", 1, 32, 3, 2, 3, "preresnet20", (1, 1, 1), amp="bf16"))
    assert network.forward().dtype == torch.bfloat16  # the classifier ran in bf16
    with torch.inference_mode():
        assert build_workload(Case("network", "none", 1, 32, 3, 2, 3, "preresnet20", (1, 1, 1))).forward().dtype == (
            torch.float32)
    network.step()
    assert all(p.grad.dtype == torch.float32 for p in network.module.parameters())
