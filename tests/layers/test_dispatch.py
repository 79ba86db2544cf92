"""The dispatch between exact forms: the rule reads the device and dtype, a form can be forced globally
(context manager, environment variable) and per layer, and each layer reports the form it ran and why."""

import os
import subprocess
import sys

import pytest
import torch

import tam
from devices import DEVICE, needs_values, without_default_device
from tam.layers.dispatch import (
    CPU_WRITE_COST,
    CUDA_WRITE_COSTS,
    FormCost,
    choose,
    compute_dtype,
    force_impl,
    write_cost,
)
from tam.layers.transposed import form_costs

SHAPES = [(c, side, h) for c in (32, 64, 128, 256, 512) for side in (4, 8, 16, 32) for h in (1, 8)]


def test_write_cost_depends_on_device_type_and_dtype():
    assert write_cost("cpu", torch.float32) == (CPU_WRITE_COST, "cpu, measured")
    assert write_cost(torch.device("cuda", 1), torch.bfloat16)[0] == CUDA_WRITE_COSTS[torch.bfloat16]
    assert write_cost("cuda", torch.float32)[0] == CUDA_WRITE_COSTS[torch.float32]
    assert "estimated" in write_cost("cuda", torch.float16)[1]
    assert write_cost("meta", torch.float32) == (CPU_WRITE_COST, "no value for meta: the cpu's")
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 products: float32 costs what bf16 does
        assert write_cost("cuda", torch.float32)[1].startswith("cuda tf32")
    finally:
        torch.set_float32_matmul_precision(previous)


def test_a_cuda_decision_differs_from_the_cpu_one_exactly_where_the_constants_say():
    cuda, _ = write_cost("cuda", torch.bfloat16)
    differ = 0
    for channels, side, heads in SHAPES:
        layer = tam.TransposedAttention(channels, heads=heads)
        costs = form_costs(side * side, channels, channels // 2, heads)
        # The Gram form streams fewer elements; it wins once an element costs more than this many MACs.
        breakeven = (costs["gram"].macs - costs["transposed"].macs) / (
            costs["transposed"].elements - costs["gram"].elements)
        on_cpu = layer.choose_form((side, side), "cpu", torch.float32).form
        on_cuda = layer.choose_form((side, side), "cuda", torch.bfloat16).form
        assert on_cpu == ("gram" if breakeven < CPU_WRITE_COST else "transposed")
        assert on_cuda == ("gram" if breakeven < cuda else "transposed")
        differ += on_cpu != on_cuda
    assert differ >= 3  # the grid holds shapes between the two constants
    layer = tam.TransposedAttention(128, heads=1)  # measured on this CPU: the transposed order is faster at 8²
    assert layer.choose_form((8, 8), "cpu", torch.float32).form == "transposed"
    assert layer.choose_form((8, 8), "cuda", torch.bfloat16).form == "gram"
    assert "cuda bfloat16" in layer.choose_form((8, 8), "cuda", torch.bfloat16).reason


def test_the_rule_reads_the_autocast_dtype():
    x = torch.randn(2, 3, device="cpu")
    assert compute_dtype(x) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_dtype(x) == torch.bfloat16
    assert compute_dtype(x.double()) == torch.float64


def test_each_layer_reports_the_form_it_ran_and_why():
    layer = tam.TransposedAttention(128, heads=1)
    assert layer.last_dispatch is None
    layer(torch.randn(2, 128, 8, 8))
    assert layer.last_dispatch == layer.choose_form((8, 8), DEVICE, torch.float32)
    assert layer.last_dispatch.form == "transposed" and "least cost" in layer.last_dispatch.reason
    layer(torch.randn(2, 128, 32, 32))
    assert layer.last_dispatch.form == "gram"
    fixed = tam.TransposedAttention(128, impl="transposed")
    fixed(torch.randn(2, 128, 32, 32))
    assert fixed.last_dispatch == ("transposed", "impl='transposed' on the layer")
    positions = tam.TransposedAttention(128, pos_encoding="sincos")
    positions(torch.randn(2, 128, 32, 32))
    assert positions.last_dispatch.form == "transposed" and "needs geometry='full'" in positions.last_dispatch.reason


@needs_values
def test_force_impl_overrides_the_rule_of_auto_layers_only():
    auto, fixed = tam.TransposedAttention(128), tam.TransposedAttention(128, impl="transposed")
    positions = tam.TransposedAttention(128, pos_encoding="sincos")
    x = torch.randn(2, 128, 32, 32)
    expected = auto(x)
    assert auto.last_dispatch.form == "gram"
    with force_impl("transposed"):
        torch.testing.assert_close(auto(x), expected)  # the same function, the other form
        assert auto.last_dispatch == ("transposed", "forced by tam.force_impl('transposed')")
        with force_impl("auto"):
            assert auto.choose_form((32, 32)).form == "gram"
        with force_impl("gram"):
            assert auto.choose_form((32, 32)) == ("gram", "forced by tam.force_impl('gram')")
            assert fixed.choose_form((32, 32)).form == "transposed"
            reason = positions.choose_form((32, 32)).reason
            assert positions.choose_form((32, 32)).form == "transposed"
            assert reason.startswith("tam.force_impl('gram') not taken (the Gram form needs geometry='full'")
    assert auto.choose_form((32, 32)).form == "gram"  # restored on leaving


def test_a_forced_form_the_layer_lacks_leaves_it_to_the_rule():
    costs = {"transposed": FormCost(10, 1), "gram": FormCost(1, 1)}
    with force_impl("transposed"):
        only_gram = choose("auto", {"gram": FormCost(1, 1), "other": FormCost(2, 1)}, {"other": "not here"})
    assert only_gram.form == "gram" and only_gram.reason.startswith(
        "tam.force_impl('transposed') not taken (the layer's forms are ('gram', 'other'))")
    assert choose("auto", costs, {}).form == "gram"
    assert choose("transposed", costs, {}).form == "transposed"


def test_bad_forced_values_name_the_argument():
    with pytest.raises(ValueError, match=r"impl must be one of \('auto', 'gram', .*'transposed'\), got 'fast'"):
        with force_impl("fast"):
            pass


@needs_values
def test_compiled_layers_follow_the_override():
    layer = tam.TransposedAttention(128).eval()
    x = torch.randn(2, 128, 8, 8)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True)
    with without_default_device():
        expected = compiled(x)
        assert layer.last_dispatch.form == "transposed"
        with force_impl("gram"):
            torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)
            assert layer.last_dispatch.form == "gram"


@pytest.mark.parametrize(("value", "expected"), [
    ("gram", "Dispatch(form='gram', reason='forced by TAM_IMPL=gram')"),
    ("auto", "Dispatch(form='transposed', reason='least cost"),
    ("fast", "ValueError: TAM_IMPL must be one of ('auto', 'gram', "),
])
def test_the_environment_variable_forces_a_form(value, expected):
    code = (
        "import tam\n"
        "try:\n"
        "    print(tam.TransposedAttention(128).choose_form((8, 8)))\n"
        "except ValueError as error:\n"
        "    print('ValueError:', error)\n"
        "with tam.force_impl('auto'):\n"  # the context manager outranks the variable
        "    print(tam.TransposedAttention(128).choose_form((8, 8)).form)\n"
    )
    env = {**os.environ, "TAM_IMPL": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert first.startswith(expected)
    assert second == "transposed"


@needs_values
def test_non_local_takes_the_fused_kernel_where_it_applies_and_can_be_forced_to_the_map():
    x = torch.randn(2, 32, 16, 16, dtype=torch.float64)
    layer = tam.NonLocal(32, heads=2).double().eval()
    torch.nn.init.ones_(layer.bn.weight)  # else the block is the identity and every form agrees trivially
    with without_default_device():
        fused = layer(x)
        assert layer.last_dispatch.form == "sdpa" and layer.last_dispatch.reason.startswith("least cost")
        with force_impl("naive"):
            torch.testing.assert_close(layer(x), fused, rtol=1e-10, atol=1e-10)
        assert layer.last_dispatch == ("naive", "forced by tam.force_impl('naive')")
        scale = tam.NonLocal(32, normalization="scale").double()
        with force_impl("sdpa"):
            scale(x)
        assert scale.last_dispatch.form == "naive" and "softmax' only" in scale.last_dispatch.reason
    assert layer.block_macs((16, 16)) == 4 * 256 * 32 * 16 + layer.core_macs((16, 16))  # one count for both forms
