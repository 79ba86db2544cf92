"""Named presets: every convention of a published implementation, set at once by one name.

tam's defaults are its own clean conventions (docs/design.md). A preset swaps in the conventions of a published
implementation, so that its networks can be built exactly; each convention it sets is an ordinary option of a
layer or backbone, usable on its own.

``icip2022`` is the code that produced the thesis's numbers, published with its follow-up "Rethinking Efficacy of
Softmax for Lightweight Non-Local Neural Networks" (ICIP 2022; github.com/YooshinCho/pytorch_RethinkingSFM,
``models/nlblock.py``, ``models/preresnet.py``, ``models/wrn.py``):

==============================  ===================================  ======================================
option                          tam's default                        ``icip2022``
==============================  ===================================  ======================================
Non-local ``scale_divisor``     ``"sqrt_nd"``: q·k / √(N·d)          ``"sqrt_n"``: q·k / √N
TAM ``scale_softmax_logits``    ``True``: softmax(v kᵀ / √N)         ``False``: softmax(v kᵀ)
TAM ``magnitude_scale_width``   ``"norm"``: 1/√(N·1) on the norms    ``"head"``: 1/√(N·d), d the head width
``pos_encoding_placement``      ``"query_key"``: inputs of Wθ, Wφ    ``"input"``: the block's input, once per
                                                                     stack (q, k, v and the residual see it)
``direction_eps``               ``1e-6``: t / (‖t‖ + 1e-6)           ``0``: t / ‖t‖
``embed_ratio`` (per stage)     E = C/2 whatever the heads           E = C/2 for one head, E = C for more
``shortcut_input``              ``"preactivated"``: relu(bn1(x))     ``"raw"``: x (PreResNets; their Wide
                                                                     ResNet keeps the preactivated input)
``classifier_init``             ``"pytorch"``                        ``"kaiming"`` (fan-out normal)
==============================  ===================================  ======================================

Attention options are set for the kinds that code implements (``tam``, ``nl``); other kinds get the backbone
conventions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_UNSET = object()


@dataclass(frozen=True)
class Preset:
    """The option values a preset fixes.

    Attributes:
        name: what users pass as ``preset=``.
        description: one line saying whose conventions these are.
        attention: per attention kind, the layer options it sets.
        embed_ratio_by_heads: the embed width ratio for one head and for more heads.
        shortcut_input: per model family (the registry name's prefix), the projection shortcut's input.
        classifier_init: the classifier's init.
    """

    name: str
    description: str
    attention: dict[str, dict] = field(default_factory=dict)
    embed_ratio_by_heads: tuple[float, float] | None = None
    shortcut_input: dict[str, str] = field(default_factory=dict)
    classifier_init: str | None = None

    def backbone_options(self, model: str) -> dict:
        """The backbone options for registry model ``model``; a clear error for a family it does not cover."""
        family = next((f for f in self.shortcut_input if model.startswith(f)), None)
        if family is None:
            raise ValueError(f"preset {self.name!r} covers models {sorted(self.shortcut_input)}*, not {model!r}")
        options = {"shortcut_input": self.shortcut_input[family]}
        if self.classifier_init is not None:
            options["classifier_init"] = self.classifier_init
        return options

    def attention_options(self, kind: str | None, heads: int) -> dict:
        """The attention options for ``kind`` with ``heads`` heads (none for a kind the preset does not cover)."""
        if kind not in self.attention:
            return {}
        options = dict(self.attention[kind])
        if self.embed_ratio_by_heads is not None:
            options["embed_ratio"] = self.embed_ratio_by_heads[0 if heads == 1 else 1]
        return options


_ICIP2022_SHELL = {"pos_encoding_placement": "input", "direction_eps": 0.0}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="icip2022",
            description="the thesis code exactly, as published with ICIP 2022 in pytorch_RethinkingSFM",
            attention={
                "nl": {**_ICIP2022_SHELL, "scale_divisor": "sqrt_n"},
                "tam": {**_ICIP2022_SHELL, "scale_softmax_logits": False, "magnitude_scale_width": "head"},
            },
            embed_ratio_by_heads=(0.5, 1.0),
            shortcut_input={"preresnet": "raw", "wrn": "preactivated"},
            classifier_init="kaiming",
        ),
    )
}


def describe_presets() -> str:
    """The presets for a help text: ``"icip2022 (the thesis code ... exactly)"``, comma-separated."""
    return ", ".join(f"{preset.name} ({preset.description})" for preset in PRESETS.values())


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``ValueError`` listing the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {name!r}")
    return PRESETS[name]


def apply_preset(name: str, options: dict, *, model: str | None = None, kind: str | None = None) -> dict:
    """``options`` with preset ``name``'s conventions filled in: the backbone's for registry model ``model``,
    the attention layer's for attention kind ``kind`` (with ``options["heads"]`` heads, default 1).

    An explicit option that the preset sets to another value is refused with one line naming both, as is an
    explicit ``embed_channels`` where the preset sets the embed width.

    Example:
        >>> apply_preset("icip2022", {"heads": 8}, kind="tam")["embed_ratio"]
        1.0
    """
    preset = get_preset(name)
    settings = preset.backbone_options(model) if model is not None else {}
    settings.update(preset.attention_options(kind, options.get("heads", 1)))
    if "embed_ratio" in settings and options.get("embed_channels") is not None:
        raise ValueError(
            f"preset {name!r} sets the embed width (embed_ratio={settings['embed_ratio']}); "
            f"drop embed_channels={options['embed_channels']} or the preset"
        )
    for key, value in settings.items():
        given = options.get(key, _UNSET)
        if given is not _UNSET and given != value:
            raise ValueError(f"preset {name!r} sets {key}={value!r}; drop {key}={given!r} or the preset")
    return {**options, **settings}
