"""Which of a layer's exact evaluations runs: the rule, how to force one, and the layer's report of it.

Some layers compute one function in more than one way (TAM: the transposed order or the Gram form), and
which way is faster depends on the shape and on the machine. Such a layer names its forms and counts, per
sample and form, the multiply-accumulates (MACs) and the elements it streams through memory
(:class:`FormCost`); the rule runs the form of least ``MACs + write_cost × elements`` among those that
apply, where ``write_cost`` (:func:`write_cost`) is the time of one streamed element in MACs of a large
matmul on the device type and compute dtype of the input.

Forcing a form, strongest first:

1. ``impl="<form>"`` when the layer is built: that layer always runs that form (the layer refuses a form
   that does not apply to it when it is built);
2. ``with tam.force_impl("<form>"):`` for every layer built with ``impl="auto"``, inside the block (nested
   blocks: the innermost wins; ``force_impl("auto")`` restores the rule);
3. the environment variable ``TAM_IMPL=<form>``, read when tam is imported (as timm reads
   ``TIMM_FUSED_ATTN``).

A forced form that a layer lacks, or that does not apply to its options, leaves that layer to the rule, and
its report says so. Every such layer records the form it ran last, and why, in ``layer.last_dispatch``
(a :class:`Dispatch`); ``layer.choose_form(spatial, device, dtype)`` asks the same question for a shape
without running anything.

Example:
    >>> layer = tam.TransposedAttention(128, heads=1)
    >>> layer.choose_form((8, 8), "cpu", torch.float32).form        # C×C work per sample does not pay off
    'transposed'
    >>> layer.choose_form((8, 8), "cuda", torch.bfloat16).form      # where memory traffic costs more
    'gram'
    >>> with tam.force_impl("gram"):
    ...     _ = layer(torch.randn(2, 128, 8, 8))
    >>> layer.last_dispatch.form, layer.last_dispatch.reason
    ('gram', "forced by tam.force_impl('gram')")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import torch
from torch import nn

from tam.functional.products import compute_dtype

IMPL_ENV = "TAM_IMPL"

# Time to stream one element through memory, in MACs of a large matmul, by device type.
# CPU, measured: TAM's two forms timed alternately on this project's 2-core CPU (C = 64, 128, 256 at 8², 16²,
# 32²; 1, 8, 16 heads; batch 8, channels_last, forward+backward from a dense output gradient; float32):
# every value from 48 to 128 ranks all 27 shapes as measured, 32 (fitted earlier, on gradients seeded by
# ``y.sum()``) misranks seven. Other dtypes on CPU use the same value (not measured).
CPU_WRITE_COST = 64.0
# CUDA, an estimate until `tam bench --suite dispatch` measures it on a GPU: an element written once and
# read once costs 2·bytes/bandwidth, a MAC 2/peak FLOP rate, so write_cost = bytes × peak / bandwidth.
# With an H100 SXM's datasheet figures (3.35 TB/s; 67 TFLOP/s float32, 495 TF32 and 989 bf16/fp16 dense):
# float32 4 × 67 / 3.35 = 80; TF32 (float32 when torch.get_float32_matmul_precision() is not "highest")
# 4 × 495 / 3.35 ≈ 590; bf16/fp16 2 × 989 / 3.35 ≈ 590; float64 8 × 67 / 3.35 = 160. An A100 gives about
# half of each. Small batched products reach a fraction of peak, which lowers the true value.
CUDA_WRITE_COSTS = {torch.float32: 80.0, torch.bfloat16: 590.0, torch.float16: 590.0, torch.float64: 160.0}
CUDA_TF32_WRITE_COST = 590.0


class FormCost(NamedTuple):
    """What one evaluation of a layer costs per sample: ``macs`` multiply-accumulates, ``elements`` streamed."""

    macs: int
    elements: int

    def at(self, write_cost: float) -> float:
        """The cost in MACs when one element costs ``write_cost`` MACs."""
        return self.macs + write_cost * self.elements


class Dispatch(NamedTuple):
    """The form a layer ran (or would run) and why."""

    form: str
    reason: str


def write_cost(device: torch.device | str, dtype: torch.dtype) -> tuple[float, str]:
    """The time of one streamed element in MACs on ``device``'s type for compute ``dtype``, and its source.

    Device types without their own value (``mps``, ``meta``, ...) take the CPU's, and the source says so.

    Example:
        >>> write_cost("cpu", torch.float32)
        (64.0, 'cpu, measured')
        >>> write_cost("cuda", torch.bfloat16)
        (590.0, 'cuda bfloat16, estimated from datasheet FLOP and byte rates')
    """
    kind = torch.device(device).type
    if kind == "cuda":
        name = str(dtype).removeprefix("torch.")
        if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
            return CUDA_TF32_WRITE_COST, "cuda tf32, estimated from datasheet FLOP and byte rates"
        if dtype in CUDA_WRITE_COSTS:
            return CUDA_WRITE_COSTS[dtype], f"cuda {name}, estimated from datasheet FLOP and byte rates"
        return CUDA_WRITE_COSTS[torch.float32], f"cuda {name}: float32's estimate"
    if kind == "cpu":
        return CPU_WRITE_COST, "cpu, measured"
    return CPU_WRITE_COST, f"no value for {kind}: the cpu's"


# -- the global override ---------------------------------------------------------------------------------

_KNOWN_FORMS: set[str] = set()  # every form of every dispatching layer class, filled by FormDispatch
_forced: list[tuple[str, str]] = []  # (form, source), innermost last; "auto" lifts what is outside


def _env_override() -> list[tuple[str, str]]:
    value = os.environ.get(IMPL_ENV, "").strip()
    return [(value, f"{IMPL_ENV}={value}")] if value else []


_ENV = _env_override()


@contextlib.contextmanager
def force_impl(impl: str) -> Iterator[None]:
    """Run every layer built with ``impl="auto"`` in form ``impl`` inside the block (``"auto"``: the rule).

    A layer that lacks ``impl`` or to which it does not apply runs by the rule and says so in its
    :attr:`~FormDispatch.last_dispatch`. Like ``torch.nn.attention.sdpa_kernel``, the choice is read
    when a layer runs, so a compiled module is recompiled for it.

    Example:
        >>> with tam.force_impl("transposed"):
        ...     tam.TransposedAttention(64, heads=8).choose_form((32, 32)).form
        'transposed'
    """
    _check_form(impl, "impl")
    _forced.append((impl, f"tam.force_impl({impl!r})"))
    try:
        yield
    finally:
        _forced.pop()


def forced_impl() -> tuple[str, str] | None:
    """The form forced now and who forced it (:func:`force_impl`, else ``TAM_IMPL``), or ``None``."""
    for impl, source in reversed(_ENV + _forced):
        _check_form(impl, IMPL_ENV if source.startswith(IMPL_ENV) else "impl")
        return None if impl == "auto" else (impl, source)
    return None


def _check_form(impl: object, name: str) -> None:
    allowed = ("auto", *sorted(_KNOWN_FORMS))
    if impl not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {impl!r}")


# -- the rule --------------------------------------------------------------------------------------------


def choose(
    impl: str,
    costs: Mapping[str, FormCost],
    unavailable: Mapping[str, str],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Dispatch:
    """The form to run: ``impl`` unless it is ``"auto"``, else the forced one, else the cheapest that applies.

    Args:
        impl: the layer's own choice, ``"auto"`` or one of the forms.
        costs: every form of the layer (the general one first: it wins ties) and its :class:`FormCost`.
        unavailable: forms that do not apply to the layer's options, and why.
        device, dtype: where the products run, for :func:`write_cost`.
    """
    if impl != "auto":
        return Dispatch(impl, f"impl={impl!r} on the layer")
    usable = [form for form in costs if form not in unavailable]
    note = ""
    forced = forced_impl()
    if forced is not None:
        form, source = forced
        if form in usable:
            return Dispatch(form, f"forced by {source}")
        why = unavailable.get(form, f"the layer's forms are {tuple(costs)}")
        note = f"{source} not taken ({why}); "
    if len(usable) == 1:
        return Dispatch(usable[0], note + "the only form that applies (" + "; ".join(unavailable.values()) + ")")
    per_element, source = write_cost(device, dtype)
    totals = {form: costs[form].at(per_element) for form in usable}
    best = min(usable, key=totals.__getitem__)
    listed = ", ".join(f"{form} {total:.3g}" for form, total in totals.items())
    return Dispatch(best, note + f"least cost in MACs ({listed}) at write cost {per_element:g} ({source})")


class FormDispatch:
    """Mixin of a layer with several exact forms; the layer calls :meth:`_dispatch` where it branches.

    A subclass names its ``forms`` (the general one first), keeps the chosen one in ``self.impl``
    (``"auto"`` or a form), and implements :meth:`form_costs`; :meth:`unavailable_forms` says which forms
    its options exclude.
    """

    forms: tuple[str, ...] = ()
    impl: str
    last_dispatch: Dispatch | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KNOWN_FORMS.update(cls.forms)

    def form_costs(self, spatial: tuple[int, ...]) -> dict[str, FormCost]:
        """:class:`FormCost` per sample of every form at spatial size ``spatial``."""
        raise NotImplementedError(f"{type(self).__name__} has several forms but states no form_costs")

    def unavailable_forms(self) -> dict[str, str]:
        """Forms that do not apply to this layer's options, and why (default: none)."""
        return {}

    def choose_form(
        self, spatial: tuple[int, ...], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> Dispatch:
        """The form a call on spatial size ``spatial`` would run on ``device`` in compute ``dtype``, and why."""
        return choose(self.impl, self.form_costs(spatial), self.unavailable_forms(), device, dtype)

    def block_macs(
        self, spatial: tuple[int, ...], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> int:
        """Multiply-accumulates per sample of the form that runs at ``spatial`` on ``device`` in ``dtype``."""
        return self.form_costs(spatial)[self.choose_form(spatial, device, dtype).form].macs

    def _dispatch(self, x: torch.Tensor, spatial: tuple[int, ...]) -> str:
        """Choose the form for input ``x``, record it in :attr:`last_dispatch`, and return it."""
        self.last_dispatch = self.choose_form(spatial, x.device, compute_dtype(x))
        return self.last_dispatch.form


def last_dispatches(module: nn.Module) -> dict[str, Dispatch]:
    """The :attr:`~FormDispatch.last_dispatch` of every layer of ``module`` that has run, by qualified name.

    Example:
        >>> model = tam.create_attention("tam", 64, blocks=2)
        >>> _ = model(torch.randn(2, 64, 16, 16))
        >>> {name: report.form for name, report in last_dispatches(model).items()}
        {'0': 'gram', '1': 'gram'}
    """
    return {
        name: layer.last_dispatch
        for name, layer in module.named_modules()
        if isinstance(layer, FormDispatch) and layer.last_dispatch is not None
    }
