"""Argument checks and the geometry choice shared by every core."""

from __future__ import annotations

import torch
from torch import Tensor


NORMALIZATIONS = ("scale", "softmax")

GEOMETRIES = ("full", "magnitude", "direction")


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a `ValueError` (or `TypeError` for a non-string) naming ``name`` unless ``value`` is allowed."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be one of {allowed}, got {type(value).__name__} {value!r}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_qkv(q: Tensor, k: Tensor, v: Tensor, rank: int, same_positions: bool = True) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(t).__name__}")
        if t.dim() != rank:
            raise ValueError(f"{name} must have {rank} dims, got shape {tuple(t.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(f"q, k, v must share [B, h]: got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k must have the same width d: got {q.shape[2]} and {k.shape[2]}")
    if k.shape[3:] != v.shape[3:] or (same_positions and q.shape[3:] != k.shape[3:]):
        raise ValueError(f"q, k, v positions do not match: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def apply_geometry(t: Tensor, geometry: str, eps: float = 1e-6) -> Tensor:
    """Keep a factor of ``q·k = |q||k|cos∠``: the vectors as they are, their norms, or their directions.

    Shape:
        t: ``[B, h, d, N]`` -> ``[B, h, d, N]`` (``full``, ``direction``) or ``[B, h, 1, N]`` (``magnitude``).
    """
    check_choice("geometry", geometry, GEOMETRIES)
    if geometry == "full":
        return t
    norm = torch.linalg.vector_norm(t, dim=2, keepdim=True)
    return norm if geometry == "magnitude" else t / (norm + eps)
