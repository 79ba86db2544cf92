"""Layer configurations every layer test runs over, and helpers to build and wake up blocks."""

import torch

import tam

# (kind, options): every option each kind serves appears at least once.
CONFIGS = [
    ("tam", {}),
    ("tam", {"heads": 2}),
    ("tam", {"heads": 2, "normalization": "softmax"}),
    ("tam", {"heads": 2, "geometry": "direction", "pos_encoding": "sincos"}),
    ("tam", {"geometry": "magnitude", "init": "he"}),
    ("tam", {"heads": 2, "impl": "gram"}),
    ("tam", {"heads": 2, "normalization": "softmax", "impl": "gram"}),
    ("tam", {"impl": "transposed"}),
    ("tam", {"heads": 2, "normalization": "softmax", "scale_softmax_logits": False}),
    ("tam", {"heads": 2, "normalization": "softmax", "scale_softmax_logits": False, "impl": "gram"}),
    ("tam", {"geometry": "magnitude", "magnitude_scale_width": "head"}),
    ("nl", {}),
    ("nl", {"heads": 2, "impl": "naive"}),
    ("nl", {"heads": 2, "normalization": "scale", "softmax_scale": 0.5}),
    ("nl", {"heads": 2, "subsample": True, "pos_encoding": "sincos"}),
    ("nl", {"geometry": "magnitude"}),
    ("nl", {"heads": 2, "geometry": "direction", "impl": "sdpa"}),
    ("nl", {"heads": 2, "normalization": "scale", "scale_divisor": "sqrt_n", "geometry": "direction",
            "direction_eps": 0.0}),
    ("nl", {"normalization": "scale", "scale_divisor": "n", "subsample": True}),
    ("nl", {"normalization": "scale", "geometry": "magnitude", "magnitude_scale_width": "head"}),
    ("cc", {}),
    ("cc", {"heads": 2, "recurrence": 1, "pos_encoding": "sincos"}),
    ("xca", {"heads": 2}),
    ("xca", {"heads": 2, "impl": "gram"}),
    ("xca", {"impl": "transposed", "geometry": "direction", "pos_encoding": "sincos"}),
    ("ea", {"heads": 2, "geometry": "direction"}),
    ("linear", {"heads": 2}),
    ("gc", {"heads": 2, "geometry": "magnitude", "pos_encoding": "sincos"}),
]
IDS = [f"{kind}-" + "-".join(f"{k}={v}" for k, v in options.items()) for kind, options in CONFIGS]


def spatial_shapes(kind):
    """Spatial sizes a kind accepts: 1-D, 2-D, 3-D (criss-cross: 2-D only)."""
    return [(3, 4), (2, 5)] if kind == "cc" else [(5,), (3, 4), (2, 2, 3)]


def awake(layer, seed=0):
    """Give BN a nonzero scale and shift so the block is no longer the identity (as after training)."""
    generator = torch.Generator("cpu").manual_seed(seed)  # the same values on every test device
    with torch.no_grad():
        layer.bn.weight.copy_(torch.rand(layer.channels, generator=generator, device="cpu") + 0.5)
        layer.bn.bias.copy_(torch.randn(layer.channels, generator=generator, device="cpu") * 0.1)
    return layer


def build(kind, options, channels=8, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return tam.create_attention(kind, channels, **options).to(dtype)
