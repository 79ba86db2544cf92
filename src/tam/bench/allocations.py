"""Peak bytes of tensor storage that a callable allocates, op by op, on any device — fake tensors included.

:class:`AllocationTracker` sees every ATen op through a ``TorchDispatchMode``: each storage an op returns
that none of its inputs owns is a new allocation, and it counts as freed once its storage dies (a weak
reference to it expires). The running sum's maximum is the peak: what ``torch.cuda.max_memory_allocated``
reports on CUDA, less the allocator's rounding and the scratch space kernels take internally without going
through the dispatcher (the one such copy that is large, the softmax backward's, is counted). Under ``FakeTensorMode`` nothing is allocated at all, so the same count answers for
shapes no machine here could hold (:mod:`tam.bench.memory_model`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class AllocationTracker(TorchDispatchMode):
    """Counts the bytes of storage that ops allocate while active; ``peak`` is the most alive at once.

    Storages that existed before (parameters, inputs) are not counted; views and in-place results share
    their input's storage and are not counted again. Frees are seen at the next op, before its outputs are
    added, so an op's outputs are counted together with whatever it still holds.

    Example:
        >>> x = torch.ones(1000)
        >>> with AllocationTracker() as tracker:
        ...     y = (x + 1) * 2  # x + 1 (4000 bytes) is alive while the product (4000 bytes) is written
        >>> tracker.peak
        8000
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        hidden = _internal_copy_bytes(func, args)
        for key in [key for key, (ref, _) in self.live.items() if ref.expired()]:
            self.current -= self.live.pop(key)[1]
        inputs = {_storage_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref.cdata in inputs or ref.cdata in self.live or storage.nbytes() == 0:
                continue
            self.live[ref.cdata] = (ref, storage.nbytes())
            self.current += storage.nbytes()
        self.peak = max(self.peak, self.current + hidden)
        return out


def _internal_copy_bytes(func, args) -> int:
    """Bytes a kernel allocates for itself, below the dispatcher, alive together with its output.

    The softmax backward makes the incoming gradient contiguous before its pass (CPU and CUDA kernels
    alike): Non-local's gradient of the attention weights arrives transposed, and the copy is one more
    N×N map (measured on CPU: the resident peak of a naive Non-local step grows by exactly that).
    A matrix product with an operand expanded along a dimension (a zero stride, as global context's one
    pooled vector per position) copies it whole first: BLAS takes no zero leading dimension (measured on CPU:
    global context's inference peak grows by exactly its expanded ``E×N`` values).
    """
    if func is torch.ops.aten._softmax_backward_data.default and not args[0].is_contiguous():
        return args[0].numel() * args[0].element_size()
    if func in _PRODUCTS:
        return sum(t.numel() * t.element_size() for t in args[:3] if isinstance(t, torch.Tensor) and _expanded(t))
    return 0


_PRODUCTS = (torch.ops.aten.bmm.default, torch.ops.aten.mm.default, torch.ops.aten.baddbmm.default)


def _expanded(t: torch.Tensor) -> bool:
    """Whether ``t``'s matrices repeat values along a row or column (stride 0 where the size is above 1); a
    batch of one matrix (a weight broadcast over the batch) is read in place."""
    return any(stride == 0 and size > 1 for stride, size in zip(t.stride()[-2:], t.shape[-2:]))


def _storage_key(t: torch.Tensor) -> int:
    return StorageWeakRef(t.untyped_storage()).cdata


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of storage allocated by ``fn()`` above what existed before (see :class:`AllocationTracker`).

    Example:
        >>> a = torch.zeros(256, 256)
        >>> peak_allocated_bytes(lambda: a @ a)  # the product only: 256·256 float32
        262144
    """
    with AllocationTracker() as tracker:
        fn()
    return tracker.peak
