"""The block shell every attention kind shares, so that comparisons between kinds are fair.

    q = Wθ (x + P),  k = Wφ (x + P),  v = Wg x      1×1 projections C→E, no bias (P: optional positions;
                                                     on the input instead, x ← x + P feeds all and the residual)
    q, k, v -> [B, h, d, N]                         h heads of width d = E/h
    a = core(q, k, v)                                the only thing a subclass changes
    y = x + BN(Wz a)                                 BN γ = β = 0 at init: the block starts as the identity

The projections are stored as ``nn.Conv1d`` weights (kernel 1) but applied as one fused matmul over the
flattened positions, which serves 1-D, 2-D and 3-D inputs alike and keeps ``channels_last`` inputs as views.
Layout, so that no product copies its operands: the weights are broadcast over the batch
(:func:`~tam.functional.weight_matmul`), and the fused output is ordered head-major,
``[B, h, (q, k, v), d, N]``, so each of q, k, v is a ``[B·h]`` batch of matrices with one stride per dimension.
``Wz a`` is written in the layout of ``x`` and normalised in ``x``'s own shape, so a ``channels_last`` block
runs BN and the residual sum in ``channels_last`` (mixing layouts there cost more than the projections).
"""

from __future__ import annotations

import abc
import math
import numbers

import torch
from torch import Tensor, nn

from tam.functional import GEOMETRIES, apply_geometry, check_choice, is_channels_last, weight_matmul
from tam.layers.norm import BatchNorm
from tam.layers.pos_encoding import SinCosPositions

INITS = ("normal", "he")
POS_ENCODINGS = (None, "sincos")
POS_ENCODING_PLACEMENTS = ("query_key", "input")
MAGNITUDE_SCALE_WIDTHS = ("norm", "head")


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int ≥ ``minimum``; else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")
    return int(value)


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number ≥ 0; else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative number, got {type(value).__name__} {value!r}")
    if not 0 <= float(value) < float("inf"):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number > 0; else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not 0 < float(value) < float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


class AttentionBlock(nn.Module, abc.ABC):
    """Base of every attention layer: projections, heads, positions, geometry, output projection and BN.

    Subclasses implement ``_core(q, k, v, spatial)`` and ``_spatial_map(q, k, spatial, queries)``; a fast
    path may replace ``_mix`` (everything between the input and the BN) by an equal function.

    Args:
        channels: input and output channels ``C``.
        heads: number of heads ``h``; must divide ``embed_channels``.
        embed_channels: width ``E`` of q, k, v (default ``C // 2``, at least 1).
        geometry: ``"full"`` | ``"magnitude"`` | ``"direction"``: which factor of ``q·k`` the core sees.
        pos_encoding: ``None`` | ``"sincos"``: fixed positions P.
        pos_encoding_placement: where P is added: ``"query_key"`` (the inputs of Wθ and Wφ only; the block
            stays an identity at init) | ``"input"`` (the block's input, so q, k, v and the residual all see
            it, as the thesis code does; a stack made by :func:`~tam.layers.create_attention` adds it once).
        direction_eps: ``geometry="direction"`` divides by ``‖t‖ + direction_eps`` (0: by ``‖t‖``; a zero
            vector then gives NaN).
        magnitude_scale_width: the width ``d`` in a core's scale ``1/√(N·d)`` under ``geometry="magnitude"``:
            ``"norm"`` (1, the width of the norms the core sees) | ``"head"`` (the head width before the norm,
            as the thesis code's TAM). Other geometries always use the head width.
        init: ``"normal"`` (N(0, init_std), as in the Non-local paper) | ``"he"`` (Kaiming fan-out).
        init_std: standard deviation of the ``"normal"`` init.
        device, dtype: where and in which dtype the parameters and buffers are created (PyTorch's factory
            kwargs, as ``nn.Conv2d`` takes them; timm passes them to an ``attn_layer``). ``device="meta"``
            builds without memory; ``to_empty(device=...)`` then ``reset_parameters()`` gives the init.

    Shape:
        x: ``[B, C, *S]`` with 1 to 3 spatial dims -> same shape.
    """

    spatial_ranks: tuple[int, ...] = (1, 2, 3)
    # Order of the fused q, k, v rows: [h, 3, d] (per-head products batch over B·h without copies) or
    # [3, h, d] (v is one [E, N] matrix per sample, for a core that does not split heads).
    head_major: bool = True

    def __init__(
        self,
        channels: int,
        *,
        heads: int = 1,
        embed_channels: int | None = None,
        geometry: str = "full",
        pos_encoding: str | None = None,
        pos_encoding_placement: str = "query_key",
        direction_eps: float = 1e-6,
        magnitude_scale_width: str = "norm",
        init: str = "normal",
        init_std: float = 0.01,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.channels = check_int("channels", channels, 1)
        self.heads = check_int("heads", heads, 1)
        default = embed_channels is None
        self.embed_channels = max(channels // 2, 1) if default else check_int("embed_channels", embed_channels, 1)
        if self.embed_channels % self.heads:
            source = f"the default embed_channels=channels//2={self.embed_channels}" if default else (
                f"embed_channels={self.embed_channels}"
            )
            raise ValueError(f"heads={self.heads} must divide {source}; choose heads among its divisors")
        check_choice("geometry", geometry, GEOMETRIES)
        check_choice("pos_encoding", pos_encoding, POS_ENCODINGS)
        check_choice("pos_encoding_placement", pos_encoding_placement, POS_ENCODING_PLACEMENTS)
        check_choice("magnitude_scale_width", magnitude_scale_width, MAGNITUDE_SCALE_WIDTHS)
        check_choice("init", init, INITS)
        self.head_channels = self.embed_channels // self.heads
        if geometry == "direction" and self.head_channels == 1:
            raise ValueError(
                "geometry='direction' needs a head width embed_channels/heads ≥ 2: the direction of a 1-D "
                "vector is its sign, which passes no gradient to Wθ and Wφ"
            )
        self.geometry = geometry
        self.pos_encoding = pos_encoding
        self.pos_encoding_placement = pos_encoding_placement
        self.direction_eps = check_non_negative("direction_eps", direction_eps)
        self.magnitude_scale_width = magnitude_scale_width
        self.init = init
        self.init_std = check_positive("init_std", init_std)

        self.theta = nn.Conv1d(channels, self.embed_channels, 1, bias=False, **factory_kwargs)
        self.phi = nn.Conv1d(channels, self.embed_channels, 1, bias=False, **factory_kwargs)
        self.g = nn.Conv1d(channels, self.embed_channels, 1, bias=False, **factory_kwargs)
        self.z = nn.Conv1d(self.embed_channels, channels, 1, bias=False, **factory_kwargs)
        self.bn = BatchNorm(channels, **factory_kwargs)
        self.positions = SinCosPositions(channels) if pos_encoding == "sincos" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The init: projections as ``init`` says, BN statistics reset and γ = β = 0 (identity block)."""
        for conv in (self.theta, self.phi, self.g, self.z):
            if self.init == "normal":
                nn.init.normal_(conv.weight, std=self.init_std)
            else:
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        self.bn.reset_running_stats()
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        spatial = self._check_input(x)
        return self._step(self._input_positions(x, spatial), spatial)

    def _step(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """``x + BN(Wz a)``: the block after any positions on its input."""
        return x + self.bn(self._mix(x, spatial).reshape(x.shape))

    def _input_positions(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """``x + P`` with ``pos_encoding_placement="input"``, else ``x``. Shape: ``[B, C, *S]``, kept."""
        if self.positions is None or self.pos_encoding_placement != "input":
            return x
        return x + self.positions(spatial, x.dtype, x.device).view(1, self.channels, *spatial)

    def _mix(self, x: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """``Wz a``, the block's output before BN and the residual.

        Shape: -> ``[B, C, N]`` in the memory layout of ``x``, so that it views as ``x.shape`` without a copy
        and BN and the residual sum run in one layout (``channels_last`` in, ``channels_last`` out).
        """
        q, k, v = self._project(x, spatial)
        a = self._core(q, k, v, spatial).reshape(x.shape[0], self.embed_channels, -1)
        return weight_matmul(self.z.weight.flatten(1), a, channels_last=is_channels_last(x.flatten(2)))

    def attention_map(self, x: Tensor, queries: Tensor | list[int] | None = None) -> Tensor:
        """Spatial attention weights of the chosen query positions (flat indices into ``prod(S)``).

        Shape:
            x: ``[B, C, *S]``, queries: ``[Q]`` or ``None`` (all N) -> ``[B, h, Q, N_keys]``
        """
        spatial, q, k, _ = self._project_input(x)
        return self._spatial_map(q, k, spatial, self._check_queries(queries, q.shape[-1], x.device))

    def block_macs(self, spatial: tuple[int, ...]) -> int:
        """Multiply-accumulates per sample of one forward at ``spatial`` (DESIGN §1): the four projections,
        ``4·N·C·E``, plus the core's (:meth:`core_macs`). Elementwise work (softmax, BN) is not counted."""
        return 4 * math.prod(spatial) * self.channels * self.embed_channels + self.core_macs(spatial)

    def core_macs(self, spatial: tuple[int, ...]) -> int:
        """Multiply-accumulates per sample of the core at ``spatial``; a kind that states its cost overrides this."""
        raise NotImplementedError(f"{type(self).__name__} states no analytic cost")

    # -- pieces shared by the subclasses -------------------------------------------------------------

    def _project(self, x: Tensor, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v per head, after positions, key subsampling and geometry. Shape: -> ``[B, h, d, N]`` each."""
        batch = x.shape[0]
        rows = (self.heads, 3, self.head_channels) if self.head_major else (3, self.heads, self.head_channels)
        weight = torch.stack([self.theta.weight, self.phi.weight, self.g.weight]).view(3, self.heads, -1)
        if self.head_major:
            weight = weight.transpose(0, 1)
        qkv = weight_matmul(weight.reshape(-1, self.channels), x.flatten(2))
        q, k, v = qkv.unflatten(1, rows).unbind(2 if self.head_major else 1)
        if self.positions is not None and self.pos_encoding_placement == "query_key":
            table = self.positions(spatial, x.dtype, x.device)  # [C, N]
            q = q + torch.matmul(self.theta.weight.flatten(1), table).view(self.heads, self.head_channels, -1)
            k = k + torch.matmul(self.phi.weight.flatten(1), table).view(self.heads, self.head_channels, -1)
        k, v = self._subsample(k, v, batch, spatial)
        q, k = (apply_geometry(t, self.geometry, eps=self.direction_eps) for t in (q, k))
        return q, k, v

    def _project_input(self, x: Tensor) -> tuple[tuple[int, ...], Tensor, Tensor, Tensor]:
        """The spatial size and q, k, v of the block's input ``x`` (checked; positions placed as the block places
        them), for the maps and analyses that look inside the block. Shape: -> ``S``, ``[B, h, d, N]`` each."""
        spatial = self._check_input(x)
        return (spatial, *self._project(self._input_positions(x, spatial), spatial))

    def _subsample(self, k: Tensor, v: Tensor, batch: int, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        return k, v

    def _magnitude_head_scale(self, n: int) -> float | None:
        """``1/√(N·d)`` with the head width ``d`` under ``geometry="magnitude"`` and
        ``magnitude_scale_width="head"``; else ``None`` (the core's default, with the width it sees)."""
        if self.geometry == "magnitude" and self.magnitude_scale_width == "head":
            return (n * self.head_channels) ** -0.5
        return None

    def _check_input(self, x: Tensor) -> tuple[int, ...]:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} expects a Tensor x, got {type(x).__name__}")
        ranks = " or ".join(str(r) for r in self.spatial_ranks)
        if x.dim() - 2 not in self.spatial_ranks:
            raise ValueError(f"{name} expects x of shape [B, C, *S] with {ranks} spatial dims, got {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"x has {x.shape[1]} channels but {name} was built with channels={self.channels}")
        if 0 in x.shape:
            raise ValueError(f"x has a zero-size dimension: shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} expects a floating-point x, got dtype {x.dtype}")
        return tuple(x.shape[2:])

    @staticmethod
    def _check_queries(queries, n: int, device: torch.device) -> Tensor:
        if queries is None:
            return torch.arange(n, device=device)
        # Positions given as a list are checked on the CPU, before they move (a meta x holds no values).
        queries = (queries if isinstance(queries, Tensor) else torch.as_tensor(queries, device="cpu")).reshape(-1)
        if queries.dtype in (torch.bool,) or queries.is_floating_point():
            raise TypeError(f"queries must be integer flat positions, got dtype {queries.dtype}")
        if queries.numel() and not queries.is_meta and (queries.min() < 0 or queries.max() >= n):
            raise ValueError(f"queries must lie in [0, {n}) (flat positions), got {queries.tolist()}")
        return queries.to(device)

    @abc.abstractmethod
    def _core(self, q: Tensor, k: Tensor, v: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """The attention itself.

        Shape:
            q, k: ``[B, h, d, N]`` (keys may be fewer), v: ``[B, h, dv, N_keys]`` -> ``[B, h, dv, N]``
        """

    @abc.abstractmethod
    def _spatial_map(self, q: Tensor, k: Tensor, spatial: tuple[int, ...], queries: Tensor) -> Tensor:
        """Spatial weights of the chosen queries. Shape: -> ``[B, h, Q, N_keys]``."""

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, heads={self.heads}, embed_channels={self.embed_channels}, "
            f"geometry={self.geometry!r}, pos_encoding={self.pos_encoding!r}, "
            f"pos_encoding_placement={self.pos_encoding_placement!r}, direction_eps={self.direction_eps}, "
            f"magnitude_scale_width={self.magnitude_scale_width!r}"
        )
