"""Which device a command runs on, and how the machine is described in the files it writes.

Every command that takes ``--device`` resolves it here (:func:`resolve_device`), and every result file names
its machine through :func:`device_name` and :func:`cpu_model`, so that a record from ``tam bench``,
``tam train`` or ``tam data bench`` says the same thing about the same machine.
"""

from __future__ import annotations

import os
import platform

import torch

from tam.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str, *, option: str = "--device", local_rank: int = 0) -> torch.device:
    """The device called ``name``: ``auto`` is CUDA when present, else the CPU; a bare ``cuda`` is this
    process's local GPU (``local_rank``, as ``torchrun`` numbers them).

    Raises:
        UserError: naming ``option``, for a name that is not a device, a device type tam does not run on,
            or CUDA on a machine without it.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        tam.errors.UserError: --device 'tpu': not a device (auto, cpu, cuda or cuda:N)
    """
    resolved = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
    try:
        device = torch.device(resolved)
    except (RuntimeError, TypeError):
        raise UserError(f"{option} {name!r}: not a device ({DEVICE_CHOICES})") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"{option} {name!r}: tam runs on {DEVICE_CHOICES}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{option} {name!r}: CUDA is not available on this machine (torch {torch.__version__})")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows where that file does not exist."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str) -> str:
    """The GPU's name for a CUDA device; for the CPU its model and logical core count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} logical cores)"

