"""Mixed precision as ``tam train --amp`` and ``tam bench --amp`` run it: autocast to bf16 or fp16, or none."""

from __future__ import annotations

import torch

AMP_DTYPES = {"none": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = tuple(AMP_DTYPES)


def autocast(device_type: str, amp: str) -> torch.autocast:
    """The autocast context of ``amp`` (one of :data:`AMP_MODES`) on ``device_type``; disabled for ``"none"``."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    return torch.autocast(device_type, dtype=AMP_DTYPES[amp], enabled=amp != "none")
