"""Decode encoded images (JPEG, PNG, ...) into one uint8 ``[N, 3, H, W]`` tensor, with Pillow.

Decoding is the slow part of preparing an image-folder source (60,000 CIFAR JPEGs: about 6 s on one core
here, 3.8 s with two processes). Large jobs are split into chunks over a process pool; forked workers decode
with Pillow and numpy only. Every image must have the size of the first one; the first broken or odd-sized
image (in dataset order) is reported by name.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tam.errors import UserError

INLINE_BELOW = 4096  # fewer images than this: decode in this process


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _decode_one(blob: bytes, size: tuple[int, int] | None) -> tuple[np.ndarray | None, str | None]:
    try:
        with Image.open(io.BytesIO(blob)) as image:
            if size is not None and image.size != size:
                w, h = image.size
                return None, f"image is {w}x{h}, expected {size[0]}x{size[1]} like the other images (one size per dataset)"
            if image.mode != "RGB":
                image = image.convert("RGB")
            return np.asarray(image), None
    except UnidentifiedImageError:
        return None, "not an image (Pillow cannot identify it)"
    except Image.DecompressionBombError as error:
        return None, f"refused: {error}"
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        return None, f"not a readable image ({' '.join(str(error).split()) or type(error).__name__})"


def _decode_chunk(blobs: list[bytes], size: tuple[int, int]) -> tuple[np.ndarray | None, int, str | None]:
    """Decode ``blobs`` into ``[n, H, W, 3]``; on the first failure return ``(None, index, message)``."""
    out = np.empty((len(blobs), size[1], size[0], 3), dtype=np.uint8)
    for index, blob in enumerate(blobs):
        array, problem = _decode_one(blob, size)
        if problem is not None:
            return None, index, problem
        out[index] = array
    return out, -1, None


def decode_images(
    blobs: list[bytes], names: list[str], *, size: tuple[int, int] | None = None, workers: int | None = None
) -> torch.Tensor:
    """Decode ``blobs`` (``names[i]`` says where ``blobs[i]`` came from, for messages) to uint8 ``[N, 3, H, W]``.

    ``size`` is the ``(width, height)`` every image must have; by default the first image's.
    """
    if not blobs:
        return torch.empty(0, 3, *(reversed(size) if size else (0, 0)), dtype=torch.uint8)
    first, problem = _decode_one(blobs[0], size)
    if problem is not None:
        raise UserError(f"{names[0]}: {problem}")
    size = (first.shape[1], first.shape[0])
    workers = default_workers() if workers is None else max(1, workers)
    can_fork = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
    if workers == 1 or len(blobs) < INLINE_BELOW or not can_fork:
        results = [_decode_chunk(blobs, size)]
        starts = [0]
    else:
        chunk = max(256, min(4096, -(-len(blobs) // (workers * 4))))
        starts = list(range(0, len(blobs), chunk))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_decode_chunk, blobs[s : s + chunk], size) for s in starts]
            results = [future.result() for future in futures]
    parts = []
    for start, (array, index, problem) in zip(starts, results):
        if problem is not None:
            raise UserError(f"{names[start + index]}: {problem}")
        parts.append(torch.from_numpy(array))
    images = parts[0] if len(parts) == 1 else torch.cat(parts)
    return images.permute(0, 3, 1, 2).contiguous()
