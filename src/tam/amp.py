"""Mixed precision as ``tam train --amp`` and ``tam bench --amp`` run it: autocast to bf16 or fp16, or none."""

from __future__ import annotations

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

    The context can be entered again and again, so a loop builds it once.
    """
    return torch.autocast(device_type, dtype=AMP_DTYPES[check_amp(amp)], enabled=amp != "none")
