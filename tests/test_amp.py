"""The autocast modes that `tam train --amp` and `tam bench --amp` share."""

import pytest
import torch

from tam.amp import AMP_MODES, autocast


@pytest.mark.parametrize("amp, dtype", [("none", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_runs_products_in_the_dtype_of_its_mode(amp, dtype):
    a = torch.randn(4, 4)
    with autocast("cpu", amp):
        assert (a @ a).dtype == dtype
    assert (a @ a).dtype == torch.float32  # and only inside


def test_an_unknown_mode_is_refused_by_name():
    assert "fp8" not in AMP_MODES
    with pytest.raises(ValueError, match="amp must be one of"):
        autocast("cpu", "fp8")


def test_fp16_on_a_cpu_warns_that_it_is_slow():
    import warnings

    from tam.amp import autocast

    with pytest.warns(RuntimeWarning, match="--amp fp16 on a CPU"):
        autocast("cpu", "fp16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        autocast("cpu", "bf16")
        autocast("cpu", "none")
