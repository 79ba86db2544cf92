"""Transposed Attention Module (TAM): attention through a d×d map, never an N×N one."""

from __future__ import annotations

import math

from torch import Tensor

from tam.functional import (
    NORMALIZATIONS,
    check_choice,
    gram_macs,
    gram_transposed_attention,
    non_local_map,
    transposed_attention,
    transposed_macs,
    transposed_map,
)
from tam.layers.dispatch import FormCost, FormDispatch
from tam.layers.shell import AttentionBlock


FORMS = ("transposed", "gram")
IMPLS = ("auto", *FORMS)


def form_costs(n: int, channels: int, embed: int, heads: int, *, gram=gram_macs) -> dict[str, FormCost]:
    """:class:`~tam.layers.dispatch.FormCost` per sample of the transposed order and of the Gram form.

    Per position, the transposed order streams q, k, v, ``a`` and ``Wz a`` forward and their gradients
    backward (counted ``6E + C``); the Gram form streams ``M x`` and the gradient of ``x`` (counted ``2C``),
    but pays ``C×C`` work per sample, which loses on small maps with many channels. The element counts are
    the proxies that :data:`~tam.layers.dispatch.CPU_WRITE_COST` was calibrated with, not exact byte counts.
    ``gram`` counts the Gram form's MACs (TAM's :func:`~tam.functional.gram_macs`; XCA passes its own).

    Example:
        >>> form_costs(64, 128, 64, 1)  # 8×8, 128 channels, one head: the Gram form pays off above 160
        {'transposed': FormCost(macs=2621440, elements=32768), 'gram': FormCost(macs=5242880, elements=16384)}
    """
    return {
        "transposed": FormCost(transposed_macs(n, channels, embed, heads), n * (6 * embed + channels)),
        "gram": FormCost(gram(n, channels, embed, heads), n * 2 * channels),
    }


class GramForms(FormDispatch):
    """The two exact forms of a kind whose block folds into ``y = x + BN(P x)`` (TAM, XCA): their options,
    costs (:func:`form_costs` with the kind's ``gram_macs``) and where the Gram form applies."""

    forms = FORMS
    gram_macs = staticmethod(gram_macs)

    def _set_impl(self, impl: str) -> None:
        check_choice("impl", impl, IMPLS)
        # Positions on the block's input change the input, not the block: the Gram form still applies.
        self.gram_applies = self.geometry == "full" and (
            self.pos_encoding is None or self.pos_encoding_placement == "input"
        )
        if impl == "gram" and not self.gram_applies:
            raise ValueError(
                "impl='gram' needs geometry='full' and pos_encoding=None (or pos_encoding_placement='input'); "
                "use impl='auto'"
            )
        self.impl = impl

    def form_costs(self, spatial: tuple[int, ...]) -> dict[str, FormCost]:
        return form_costs(math.prod(spatial), self.channels, self.embed_channels, self.heads, gram=self.gram_macs)

    def unavailable_forms(self) -> dict[str, str]:
        return {} if self.gram_applies else {
            "gram": "the Gram form needs geometry='full' and pos_encoding=None (or pos_encoding_placement='input')"
        }


class TransposedAttention(GramForms, AttentionBlock):
    """Spatial attention evaluated in the transposed order: ``a = (s·v kᵀ) q``.

    With ``normalization="scale"`` (the proposal) this is the same function as :class:`NonLocal` with
    ``normalization="scale"``, at cost ``2·N·E²/h`` instead of ``2·N²·E``: cheaper as heads grow. The
    ``"softmax"`` ablation normalises the rows of the ``d×d`` map instead.

    Two exact evaluations: ``"transposed"`` forms q, k, v and the ``d×d`` maps; ``"gram"`` folds the whole
    block into one ``C×C`` map per sample through ``x xᵀ`` (cost independent of heads; ``full`` geometry
    without positional encoding only). ``"auto"`` takes the cheaper by :func:`form_costs` on the input's
    device and dtype, unless :func:`tam.force_impl` or ``TAM_IMPL`` forces one (:mod:`tam.layers.dispatch`);
    ``last_dispatch`` says which form ran last and why.

    Args:
        channels: input and output channels.
        normalization: ``"scale"`` | ``"softmax"``.
        scale_softmax_logits: with ``"softmax"``, divide the logits ``v kᵀ`` by ``√N`` (``False``: leave them
            unscaled, as the thesis code does).
        impl: ``"auto"`` | ``"transposed"`` | ``"gram"``.
        **shell: ``heads``, ``embed_channels``, ``geometry``, ``pos_encoding``, ``pos_encoding_placement``,
            ``direction_eps``, ``magnitude_scale_width``, ``init``, ``init_std``, ``device``, ``dtype``
            (see :class:`~tam.layers.shell.AttentionBlock`).

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = TransposedAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        channels: int,
        *,
        normalization: str = "scale",
        scale_softmax_logits: bool = True,
        impl: str = "auto",
        **shell,
    ):
        super().__init__(channels, **shell)
        check_choice("normalization", normalization, NORMALIZATIONS)
        if not isinstance(scale_softmax_logits, bool):
            raise TypeError(f"scale_softmax_logits must be a bool, got {type(scale_softmax_logits).__name__}")
        self.scale_softmax_logits = scale_softmax_logits
        self._set_impl(impl)
        if normalization == "softmax" and (self.head_channels == 1 or self.geometry == "magnitude"):
            raise ValueError(
                "TransposedAttention with normalization='softmax' needs keys of width ≥ 2 (a softmax over one "
                "entry is constant and leaves Wφ without gradient): use heads < embed_channels and "
                "geometry 'full' or 'direction'"
            )
        self.normalization = normalization

    def _mix(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        if self._dispatch(x, spatial) != "gram":
            return super()._mix(x, spatial)
        weights = (conv.weight.flatten(1) for conv in (self.theta, self.phi, self.g, self.z))
        return gram_transposed_attention(
            x.flatten(2), *weights, heads=self.heads, normalization=self.normalization, scale=self._scale(x.shape[-1])
        )

    def _scale(self, n: int) -> float | None:
        """The factor on ``v kᵀ`` where an option departs from the core's default, else ``None``."""
        if self.normalization == "softmax":
            return None if self.scale_softmax_logits else 1.0
        return self._magnitude_head_scale(n)

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return transposed_attention(q, k, v, normalization=self.normalization, scale=self._scale(k.shape[-1]))

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        if self.normalization != "scale":
            raise ValueError(
                "implied spatial weights exist only for normalization='scale'; for 'softmax' use transposed_map(x)"
            )
        return non_local_map(q[..., queries], k, normalization="scale", scale=self._scale(k.shape[-1]))

    def transposed_map(self, x: Tensor) -> Tensor:
        """The ``d×d`` map ``M`` of every head. Shape: x ``[B, C, *S]`` -> ``[B, h, d, d]``."""
        _, _, k, v = self._project_input(x)
        return transposed_map(k, v, normalization=self.normalization, scale=self._scale(k.shape[-1]))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, normalization={self.normalization!r}, "
            f"scale_softmax_logits={self.scale_softmax_logits}, impl={self.impl!r}"
        )
