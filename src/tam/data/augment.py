"""Batched augmentations on uint8 image batches, on whatever device the batch is on.

Each augmentation is split in two: a *sampler* that draws the random parameters of many images at once from a
``torch.Generator`` (on the CPU, so that the same seed gives the same numbers on every device), and a pure
*apply* function that takes a batch and its parameters. No per-image Python anywhere.

- ``crop_flip``: random crop with zero padding + horizontal flip (CIFAR). One ``gather`` does both.
- ``resized_crop_flip``: random resized crop (scale 0.08–1, ratio 3/4–4/3, torchvision's 10 tries then
  centre fallback) to ``size`` + flip (Tiny-ImageNet). One ``grid_sample``: bilinear, sample points clamped
  to the crop box, which equals cropping then ``F.interpolate(bilinear, align_corners=False)`` — torchvision's
  ``resized_crop`` without antialiasing.
- ``center_crop``: a slice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sample_crop_flip(n: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, 3]`` int64: x offset, y offset (0..2·padding) and flip (0/1) per image."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.randint(0, 2, (n, 1), generator=generator)
    return torch.cat([offsets, flips], 1)


def crop_flip(images: torch.Tensor, params: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each image of uint8 ``[B, C, H, W]`` from its zero-padded version at the offsets in ``params``
    (from :func:`sample_crop_flip`), mirrored where asked. Returns ``[B, C, H, W]``, same dtype."""
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    hp, wp = h + 2 * padding, w + 2 * padding
    dx, dy, flip = params[:, 0:1], params[:, 1:2], params[:, 2:3].bool()
    cols = torch.arange(w, device=images.device)
    cols = torch.where(flip, dx + (w - 1) - cols, dx + cols)  # [B, W]
    rows = dy + torch.arange(h, device=images.device)  # [B, H]
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.view(b, c, hp * wp).gather(2, index).view(b, c, h, w)


def sample_resized_crop(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> torch.Tensor:
    """``[n, 5]`` float64: top, left, crop height, crop width, flip — torchvision's RandomResizedCrop rule,
    vectorised: up to ``attempts`` draws per image, the first that fits wins, else a centre crop."""
    area = height * width
    target = area * torch.empty(n, attempts, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(n, attempts, dtype=torch.float64).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    aspect = log_ratio.exp()
    w = (target * aspect).sqrt().round()
    h = (target / aspect).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(fits.any(1), fits.to(torch.int8).argmax(1), torch.full((n,), -1))
    pick = first.clamp_min(0)[:, None]
    h, w = h.gather(1, pick)[:, 0], w.gather(1, pick)[:, 0]
    # torchvision's fallback: the whole image, trimmed to the ratio range, centred
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    fallback = first < 0
    h = torch.where(fallback, torch.full_like(h, fh), h)
    w = torch.where(fallback, torch.full_like(w, fw), w)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.where(fallback, (height - h) // 2, (u[:, 0] * (height - h + 1)).floor())
    left = torch.where(fallback, (width - w) // 2, (u[:, 1] * (width - w + 1)).floor())
    flip = torch.randint(0, 2, (n,), generator=generator).to(torch.float64)
    return torch.stack([top, left, h, w, flip], 1)


def _axis_grid(start: torch.Tensor, length: torch.Tensor, size: int, extent: int) -> torch.Tensor:
    """Normalised (align_corners=False) sample coordinates ``[B, size]`` for crops ``[start, start+length)``
    of an axis of ``extent`` pixels, clamped to the crop's first and last pixel centres."""
    out = torch.arange(size, device=start.device, dtype=torch.float32)
    src = start[:, None] + (out[None, :] + 0.5) * (length[:, None] / size) - 0.5
    src = torch.minimum(torch.maximum(src, start[:, None]), (start + length - 1)[:, None])
    return (src + 0.5) * (2.0 / extent) - 1.0


def resized_crop_flip(images: torch.Tensor, params: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image of ``[B, C, H, W]`` to its box in ``params`` (from :func:`sample_resized_crop`), resize
    to ``size``×``size`` (bilinear) and mirror where asked. Returns float32 ``[B, C, size, size]`` on the input's
    0–255 scale."""
    b, _, h, w = images.shape
    params = params.to(device=images.device, dtype=torch.float32)
    top, left, ch, cw, flip = params.unbind(1)
    gx = _axis_grid(left, cw, size, w)
    gx = torch.where(flip[:, None] > 0, gx.flip(1), gx)
    gy = _axis_grid(top, ch, size, h)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [B, size, size, 2]
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]
