"""What the benchmark measures: the attention kinds, one configuration (:class:`Case`), and the suites' grids.

Suites (full grid; ``--quick`` in brackets):

- ``heads``: 1, 2, 4, 8, 16 heads [1, 4, 16] at 32², 64 channels, batch 32 [4].
- ``resolution``: 8², 16², 32², 56², 112² [8², 16², 32²], 1 head, 64 channels, batch 8.
- ``blocks``: 1 to 4 stacked blocks [1, 2] at 32² [16²], 1 head, 64 channels, batch 32 [8].
- ``fastpath``: each kind against the ``floor`` where DESIGN's fast paths must hold: 16², 32², 56² [16²] ×
  1, 8, 16 heads [1, 16], 64 channels, batch 8 [4]; every kind but the quadratic ones (Non-local's N² work
  is measured by the other suites).
- ``network``: a training step of ``preresnet56`` [``preresnet20``], batch 32 [16], one 8-head block per stage,
  against the same model without attention (kind ``none``).

Every block suite runs every kind, ``floor`` included; the embed width is ``channels // 2`` throughout, so
heads only change the head width ``d = E / h``.

The claims compare some configurations with a reference (:func:`paired_references`); the runner times each
such pair interleaved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tam.amp import AMP_MODES, check_amp
from tam.layers.registry import attention_kind, attention_kinds

SUITES = ("heads", "resolution", "blocks", "fastpath", "network")


def bench_kinds() -> dict[str, tuple[str, dict[str, object]]]:
    """Benchmark kind -> (kind of :func:`tam.create_attention`, its options), from the attention registry.

    A registered kind is one benchmark kind, or several where its variants differ (``nl``: the naive
    ``nl`` and the fused ``nl_sdpa``); ``"none"`` (no attention) exists only in the network suite.
    """
    return {
        variant: (name, options)
        for name in attention_kinds(benchmark=True)
        for variant, options in attention_kind(name).variants().items()
    }


def fastpath_kinds() -> tuple[str, ...]:
    """The benchmark kinds the ``fastpath`` suite holds against the ``floor``: all but the quadratic ones."""
    return tuple(variant for variant, (name, _) in bench_kinds().items() if not attention_kind(name).quadratic)


@dataclass(frozen=True)
class Case:
    """One configuration: a kind of attention at a size, in a suite.

    For block suites, ``channels`` and ``side`` are the block's input ``[batch, channels, side, side]`` and
    ``blocks`` the number stacked. For the network suite, ``model`` names a registry model whose stages get
    ``attention_blocks`` blocks each, and ``channels``/``side`` describe the image input. ``channels_last``:
    the memory format of the input (and of a network's weights), as ``tam train`` runs by default. ``amp``:
    the dtype of the forward's autocast, ``"none"``, ``"bf16"`` or ``"fp16"``, as ``tam train --amp``.
    ``preset``: the network's conventions (:mod:`tam.presets`), as ``tam train --preset``.
    """

    suite: str
    kind: str
    heads: int
    side: int
    channels: int
    batch: int
    blocks: int = 1
    model: str | None = None
    attention_blocks: tuple[int, ...] | None = None
    channels_last: bool = False
    amp: str = "none"
    preset: str | None = None

    @property
    def embed_channels(self) -> int:
        return self.channels // 2

    def label(self) -> str:
        where = self.model or f"{self.channels}ch"
        amp = "" if self.amp == "none" else f" {self.amp}"
        preset = "" if self.preset is None else f" {self.preset}"
        return f"{self.suite} {self.kind} h{self.heads} {self.side}² b{self.batch} x{self.blocks} {where}{amp}{preset}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        data = dict(data)
        if data.get("attention_blocks") is not None:
            data["attention_blocks"] = tuple(data["attention_blocks"])
        return cls(**data)


def suite_cases(
    suite: str,
    *,
    quick: bool = False,
    kinds: tuple[str, ...] | None = None,
    channels_last: bool = False,
    amp: str = "none",
    heads: tuple[int, ...] | None = None,
) -> list[Case]:
    """The configurations of ``suite``, in the order they run: every kind at each grid point, small to large.

    Args:
        suite: one of :data:`SUITES`.
        quick: the reduced grid of ``tam bench --quick``.
        kinds: restrict to these kinds (default: all of :func:`bench_kinds`; the network suite adds ``none``).
        channels_last: feed every case ``channels_last`` inputs.
        amp: run every forward under autocast to this dtype (:data:`AMP_MODES`).
        heads: keep only the grid points with these head counts (the suites that vary heads: ``heads``,
            ``fastpath``); the others are left whole.
    """
    check_amp(amp)
    cases = _grid_cases(suite, quick, kinds)
    if heads is not None and suite in ("heads", "fastpath"):
        cases = [case for case in cases if case.heads in heads]
        if not cases:
            raise ValueError(f"heads {tuple(heads)} leave suite {suite!r} empty; its grid has other head counts")
    return [dataclasses.replace(case, channels_last=channels_last, amp=amp) for case in cases]


def _grid_cases(suite: str, quick: bool, kinds: tuple[str, ...] | None) -> list[Case]:
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    known = tuple(bench_kinds())
    chosen = known if kinds is None else kinds
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"kinds must be among {known}, got {unknown}")
    if suite == "network":
        model, batch = ("preresnet20", 16) if quick else ("preresnet56", 32)
        network_kinds = ["none", *(k for k in known if k in chosen)]
        return [
            Case("network", kind, 8, 32, 3, batch, blocks=3, model=model, attention_blocks=(1, 1, 1))
            for kind in network_kinds
        ]
    if suite == "heads":
        batch, counts = (4, (1, 4, 16)) if quick else (32, (1, 2, 4, 8, 16))
        grid = [dict(heads=h, side=32, batch=batch) for h in counts]
    elif suite == "resolution":
        sides = (8, 16, 32) if quick else (8, 16, 32, 56, 112)
        grid = [dict(heads=1, side=s, batch=8) for s in sides]
    elif suite == "fastpath":
        sides, counts, batch = ((16,), (1, 16), 4) if quick else ((16, 32, 56), (1, 8, 16), 8)
        grid = [dict(heads=h, side=s, batch=batch) for s in sides for h in counts]
        chosen = tuple(k for k in chosen if k in fastpath_kinds())
    else:
        side, batch, counts = (16, 8, (1, 2)) if quick else (32, 32, (1, 2, 3, 4))
        grid = [dict(heads=1, side=side, batch=batch, blocks=b) for b in counts]
    # All kinds at one point before the next point: a load change on a shared machine then hits the
    # configurations that are compared with each other alike.
    return [Case(suite, kind, channels=64, **point) for point in grid for kind in chosen]


def paired_references(cases: Sequence[Case]) -> list[Case | None]:
    """For each case, the case that the claims compare its time with, or ``None``; aligned with ``cases``.

    - ``heads``: TAM against TAM at the fewest heads among the heads cases (claim: its time at 16 heads is
      at most its time at 1); other kinds have no time claim across heads, and pairing naive Non-local at
      16 heads would cost minutes.
    - ``fastpath``: every kind but ``floor`` against ``floor`` at the same point.
    - ``network``: every kind but ``none`` against ``none``.

    A reference that is not itself among ``cases`` (a kind not run) counts as none; other suites have none.

    Example:
        >>> tam, floor = (Case("fastpath", k, heads=1, side=16, channels=64, batch=4) for k in ("tam", "floor"))
        >>> paired_references([floor, tam]) == [None, floor]
        True
    """
    heads = [case.heads for case in cases if case.suite == "heads"]

    def wanted(case: Case) -> Case | None:
        if case.suite == "heads" and case.kind == "tam":
            return dataclasses.replace(case, heads=min(heads))
        if case.suite == "fastpath" and case.kind != "floor":
            return dataclasses.replace(case, kind="floor")
        if case.suite == "network" and case.kind != "none":
            return dataclasses.replace(case, kind="none")
        return None

    present = set(cases)
    references = [wanted(case) for case in cases]
    return [ref if ref in present and ref != case else None for case, ref in zip(cases, references)]
