"""``tam models``: list the registered models with parameters, FLOPs at their input size and attention sites."""

from __future__ import annotations

import argparse
import fnmatch

from tam.errors import UserError, check_range
from tam.layers.registry import attention_kinds
from tam.presets import describe_presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="models or glob patterns (default: all)")
    parser.add_argument("--num-classes", type=int, help="classifier size (default: the model's dataset)")
    parser.add_argument("--attention", choices=attention_kinds(), help="attention kind to place")
    parser.add_argument(
        "--attention-blocks",
        metavar="N,N,...",
        help="attention blocks per stage, e.g. 0,1,1 (default with --attention: one in every stage but the first)",
    )
    parser.add_argument("--heads", type=int, help="attention heads (default: 1)")
    parser.add_argument("--preset", help=f"build the models with a published implementation's conventions (and "
                                         f"widths): {describe_presets()}")


def run(args: argparse.Namespace) -> int:
    from tam.models import create_model, list_models, model_info
    from tam.models.summary import summarize

    for flag, value in (("--num-classes", args.num_classes), ("--heads", args.heads)):
        if value is not None:
            check_range(flag, value, low=1, integer=True)
    names = _select(args.names, list_models())
    blocks = _parse_blocks(args.attention_blocks)
    options = {} if args.heads is None else {"heads": args.heads}
    if args.attention is None and (blocks is not None or options):
        raise UserError(f"--attention-blocks and --heads need --attention, one of {', '.join(attention_kinds())}")

    lines = []
    for name in names:
        info = model_info(name)
        try:
            model = create_model(
                name, num_classes=args.num_classes, attention=args.attention, attention_blocks=blocks,
                preset=args.preset, **options,
            )
        except (TypeError, ValueError) as error:
            raise UserError(f"{name}: {error}") from error
        summary = summarize(model, info.input_size)
        size = "×".join(map(str, info.input_size))
        sites = [str(site) for site in summary.sites] or ["-"]
        lines.append(
            f"{name:<14}{size:>10}{model.num_classes:>9}{summary.params / 1e6:>9.3f}M"
            f"{summary.flops / 1e9:>9.3f}  {_units(model):<15} {sites[0]}"
        )
        lines += [f"{'':<68}  {site}" for site in sites[1:]]
    header = f"{'model':<14}{'input':>10}{'classes':>9}{'params':>10}{'GFLOPs':>9}  {'units':<15} attention"
    print("\n".join([header, "-" * len(header), *lines]))
    print("FLOPs: forward at batch 1, 2 per multiply-add (torch.utils.flop_counter). Units: residual units, basic "
          "(two 3×3 convolutions) or bottleneck (1×1, 3×3, 1×1, ×4 expansion); the CIFAR PreResNets use bottlenecks "
          "from depth 44 up, as the thesis code does, so preresnet44 has fewer parameters than preresnet32.")
    return 0


def _units(model) -> str:
    """``"9×basic"``, ``"18×bottleneck"``: the count and kind of the model's residual units."""
    from tam.models.units import PreActBasic, PreActBottleneck

    counts = {kind: sum(isinstance(m, unit) for m in model.modules())
              for kind, unit in (("basic", PreActBasic), ("bottleneck", PreActBottleneck))}
    return ", ".join(f"{count}×{kind}" for kind, count in counts.items() if count) or "-"


def _select(patterns: list[str], available: list[str]) -> list[str]:
    if not patterns:
        return available
    names = []
    for pattern in patterns:
        matches = fnmatch.filter(available, pattern)
        if not matches:
            raise UserError(f"no model matches {pattern!r}; available: {', '.join(available)}")
        names += [name for name in matches if name not in names]
    return names


def _parse_blocks(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--attention-blocks must be comma-separated ints such as 0,1,1, got {text!r}") from None
