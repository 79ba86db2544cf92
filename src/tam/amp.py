"""Mixed precision as ``tam train --amp`` and ``tam bench --amp`` run it: autocast to bf16 or fp16, or none."""

from __future__ import annotations

import warnings

import torch

AMP_DTYPES = {"none": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = tuple(AMP_DTYPES)


def check_amp(amp: str) -> str:
    """Return ``amp`` if it is one of :data:`AMP_MODES`; else raise a ``ValueError`` naming the argument."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    return amp


def autocast(device_type: str, amp: str) -> torch.autocast:
    """The autocast context of ``amp`` (one of :data:`AMP_MODES`) on ``device_type``; disabled for ``"none"``.

    The context can be entered again and again, so a loop builds it once. fp16 on a CPU warns (once): few
    CPUs compute in fp16, and the casts around every op make such a run many times slower than float32.
    """
    if device_type == "cpu" and amp == "fp16":
        warnings.warn("--amp fp16 on a CPU: most CPUs have no fast fp16 arithmetic and the run can be ~100x slower "
                      "than float32; use --amp bf16 or none on a CPU", RuntimeWarning, stacklevel=2)
    return torch.autocast(device_type, dtype=AMP_DTYPES[check_amp(amp)], enabled=amp != "none")
