"""The one list of attention kinds (timm's registry convention).

Every consumer reads it: :func:`~tam.layers.create_attention`, ``tam train --attention``, ``tam models
--attention``, ``tam reproduce``, the benchmark's kinds and suites, ``tam analyze``. Adding a kind is one layer
file (an :class:`~tam.layers.shell.AttentionBlock` subclass) plus one :class:`AttentionKind` entry here (or a
call of :func:`register_attention` at runtime).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping

from torch import nn

from tam.layers.shell import AttentionBlock

NONE = "none"


@dataclasses.dataclass(frozen=True)
class AttentionKind:
    """One attention kind: its factory name, its layer, and what the tools around it need to know.

    Attributes:
        name: the factory name (``create_attention(name, ...)``, ``--attention name``).
        layer: the :class:`~tam.layers.shell.AttentionBlock` subclass.
        summary: one line saying what it is, for help texts.
        excluded_options: keyword options of the shell the layer refuses (Criss-cross has no ``geometry``).
        in_models: placed in networks by ``tam train``/``tam models``/``tam reproduce`` (``False`` for the
            benchmark's ``floor``).
        bench_variants: benchmark kind name -> layer options; default one variant named as the kind. The
            first measures the layer as ``create_attention(name)`` builds it (what a training run uses).
        quadratic: cost grows with the square of the number of positions (Non-local); the ``fastpath``
            suite, which holds the other kinds against the shell's floor, leaves it out.

    Example:
        >>> attention_kind("tam").layer.__name__
        'TransposedAttention'
    """

    name: str
    layer: type[AttentionBlock]
    summary: str
    excluded_options: tuple[str, ...] = ()
    in_models: bool = True
    bench_variants: Mapping[str, Mapping[str, object]] | None = None
    quadratic: bool = False

    def option_defaults(self) -> dict[str, object]:
        """The keyword options the layer accepts (its own, then the shell's), each with its default value."""
        defaults: dict[str, object] = {}
        for cls in self.layer.__mro__:
            if cls in (nn.Module, object):
                continue
            for name, param in inspect.signature(cls.__init__).parameters.items():
                if param.kind is param.KEYWORD_ONLY and name not in defaults and name not in self.excluded_options:
                    defaults[name] = param.default
        return defaults

    def options(self) -> list[str]:
        """Names of the keyword options the layer accepts (its own, then the shell's)."""
        return list(self.option_defaults())

    def variants(self) -> dict[str, dict[str, object]]:
        """Benchmark kind name -> layer options."""
        if self.bench_variants is None:
            return {self.name: {}}
        return {name: dict(options) for name, options in self.bench_variants.items()}

    def training_variant(self) -> str:
        """The benchmark kind that measures the layer with its default options."""
        return next(iter(self.variants()))


ATTENTION_REGISTRY: dict[str, AttentionKind] = {}


def register_attention(kind: AttentionKind) -> AttentionKind:
    """Add ``kind`` to the registry (a name already registered, or ``"none"``, is refused)."""
    if not isinstance(kind, AttentionKind):
        raise TypeError(f"register_attention takes an AttentionKind, got {type(kind).__name__}")
    if kind.name == NONE or kind.name in ATTENTION_REGISTRY:
        raise ValueError(f"attention kind {kind.name!r} is already registered (or reserved)")
    if not (isinstance(kind.layer, type) and issubclass(kind.layer, AttentionBlock)):
        raise TypeError(f"layer of kind {kind.name!r} must be an AttentionBlock subclass, got {kind.layer!r}")
    ATTENTION_REGISTRY[kind.name] = kind
    return kind


def attention_kind(name: str) -> AttentionKind:
    """The registered kind called ``name``; a clear error listing the kinds otherwise."""
    if not isinstance(name, str) or name not in ATTENTION_REGISTRY:
        raise ValueError(f"kind must be one of {attention_kinds(include_none=True, benchmark=True)}, got {name!r}")
    return ATTENTION_REGISTRY[name]


def attention_kinds(*, include_none: bool = False, benchmark: bool = False) -> tuple[str, ...]:
    """Names of the registered kinds, in registration order.

    Args:
        include_none: end with ``"none"`` (no attention), as the choices of ``--attention`` do.
        benchmark: include the kinds only the benchmark uses (``floor``).

    Example:
        >>> attention_kinds(include_none=True)[:3], attention_kinds(include_none=True)[-1]
        (('tam', 'nl', 'cc'), 'none')
    """
    names = tuple(name for name, kind in ATTENTION_REGISTRY.items() if benchmark or kind.in_models)
    return (*names, NONE) if include_none else names


def kind_of(layer: nn.Module) -> str:
    """The registered name of ``layer``'s kind (its exact class)."""
    for name, kind in ATTENTION_REGISTRY.items():
        if type(layer) is kind.layer:
            return name
    raise ValueError(f"{type(layer).__name__} is not a registered attention kind")


def _register_builtin() -> None:
    from tam.layers.criss_cross import CrissCross
    from tam.layers.efficient import EfficientAttention
    from tam.layers.floor import Floor
    from tam.layers.global_context import GlobalContext
    from tam.layers.linear import LinearAttention
    from tam.layers.non_local import NonLocal
    from tam.layers.transposed import TransposedAttention
    from tam.layers.xca import CrossCovarianceAttention

    for kind in (
        AttentionKind("tam", TransposedAttention, "Transposed Attention Module: a d×d map per head (the thesis)"),
        AttentionKind(
            "nl", NonLocal, "Non-local block: every position over every position",
            bench_variants={"nl_sdpa": {"impl": "sdpa"}, "nl": {"impl": "naive"}},
            quadratic=True,
        ),
        AttentionKind(
            "cc", CrissCross, "Criss-cross attention: each position over its row and column (2-D)",
            excluded_options=("geometry",),
        ),
        AttentionKind("xca", CrossCovarianceAttention, "cross-covariance attention (XCiT): a d×d softmax over channels"),
        AttentionKind("ea", EfficientAttention, "Efficient Attention: softmax over channels (q) and positions (k)"),
        AttentionKind("linear", LinearAttention, "linear attention, elu + 1 kernel (Katharopoulos et al.)"),
        AttentionKind("gc", GlobalContext, "global context (GCNet): one query-independent softmax per head"),
        AttentionKind("floor", Floor, "the shell without attention: the benchmark's cost floor", in_models=False),
    ):
        register_attention(kind)


_register_builtin()
