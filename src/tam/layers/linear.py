"""Linear attention with the elu + 1 feature map (Katharopoulos et al., ICML 2020) on the shared shell."""

from __future__ import annotations

import math

from torch import Tensor

from tam.functional import linear_attention, linear_context, linear_map
from tam.layers.shell import AttentionBlock


class LinearAttention(AttentionBlock):
    """Linear attention: ``a_i = (Σ_j v_j φ(k_j)ᵀ) φ(q_i) / (φ(q_i)·Σ_j φ(k_j) + ε)``, ``φ = elu + 1``.

    Katharopoulos, Vyas, Pappas, Fleuret, "Transformers are RNNs", ICML 2020; source
    ``idiap/fast-transformers``, ``fast_transformers/attention/linear_attention.py`` (``eps=1e-6``), the
    attention of many diffusion UNets. Its implied spatial weights are the normalised kernel values
    (:meth:`attention_map`); cost ``2·N·E²/h + N·E``. Half precision stays finite: both sums over ``N`` are
    means, scaled on the accumulator (:func:`~tam.functional.linear_attention`).

    Args:
        channels: input and output channels.
        **shell: ``heads``, ``embed_channels``, ``geometry``, ``pos_encoding``, ``init``, ``init_std``,
            ``device``, ``dtype``.

    Shape:
        x: ``[B, C, *S]`` (1 to 3 spatial dims) -> same shape.

    Example:
        >>> layer = LinearAttention(64, heads=8)
        >>> layer(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    normalization = "elu-kernel"  # for analysis: normalised positive kernel values, no logits

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """``Σ v φ(k)ᵀ``, its product with ``φ(q)`` and the normaliser ``φ(q)·Σ φ(k)``: ``2·N·E²/h + N·E``."""
        n = math.prod(spatial)
        return 2 * n * self.embed_channels * self.head_channels + n * self.embed_channels

    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return linear_attention(q, k, v)

    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        return linear_map(q[..., queries], k)

    def transposed_map(self, x: Tensor) -> Tensor:
        """The map ``Σ_j v_j φ(k_j)ᵀ / N`` of every head, before the per-query normaliser.

        Shape: x ``[B, C, *S]`` -> ``[B, h, d, d]``.
        """
        _, _, k, v = self._project_input(x)
        return linear_context(k, v)
