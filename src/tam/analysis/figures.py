"""PNG figures of an analysis: attention over the input, TAM's ``d×d`` maps, and the geometry statistics.

Every function returns PNG bytes (drawn on a ``matplotlib.figure.Figure``, no global pyplot state); the caller
writes them atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from torch import Tensor

from tam.analysis.statistics import BlockStatistics

DPI = 110


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _cell_centre(position: int, grid: Sequence[int], image: Sequence[int]) -> tuple[float, float]:
    """Pixel coordinates ``(x, y)`` of the centre of grid cell ``position`` (flat) drawn over an ``image`` (H, W)."""
    row, col = divmod(position, grid[1])
    return (col + 0.5) * image[1] / grid[1] - 0.5, (row + 0.5) * image[0] / grid[0] - 0.5


def attention_figure(
    images: Tensor, maps: Tensor, queries: Sequence[int], query_grid: Sequence[int], *, title: str, signed: bool
) -> bytes:
    """PNG of :func:`attention_maps_figure`."""
    return _png(attention_maps_figure(images, maps, queries, query_grid, title=title, signed=signed))


def attention_maps_figure(
    images: Tensor, maps: Tensor, queries: Sequence[int], query_grid: Sequence[int], *, title: str, signed: bool
):
    """One row per image: the image with the query positions, then the map of each query drawn over it, each
    with its colorbar.

    ``signed`` maps (``scale`` weights can be negative) use a diverging scale centred on 0; softmax maps run
    from 0 to their largest weight. The maps are the mean over heads.

    Shape:
        images: ``[n, 3, H, W]`` in ``[0, 1]``; maps: ``[n, Q, *key grid]``; queries: ``Q`` flat positions on
        ``query_grid`` (the block's input grid; the key grid is coarser with Non-local ``subsample``).
    """
    n, count = maps.shape[:2]
    size = tuple(images.shape[2:])
    extent = (-0.5, size[1] - 0.5, size[0] - 0.5, -0.5)
    figure = _new_figure(1.9 * (count + 1), 1.9 * n + 0.4)
    axes = figure.subplots(n, count + 1, squeeze=False)
    centres = [_cell_centre(q, query_grid, size) for q in queries]
    for row in range(n):
        picture = images[row].permute(1, 2, 0).clamp(0, 1).numpy()
        axes[row, 0].imshow(picture, extent=extent)
        for index, (x, y) in enumerate(centres):
            axes[row, 0].annotate(str(index + 1), (x, y), color="cyan", fontsize=8, ha="center", va="center",
                                  fontweight="bold")
        for column, (x, y) in enumerate(centres, start=1):
            weights = maps[row, column - 1].numpy()
            top = float(abs(weights).max()) or 1.0
            limits = dict(cmap="RdBu_r", vmin=-top, vmax=top) if signed else dict(cmap="inferno", vmin=0, vmax=top)
            axis = axes[row, column]
            axis.imshow(picture.mean(-1), cmap="gray", extent=extent)
            shown = axis.imshow(weights, alpha=0.7, interpolation="nearest", extent=extent, **limits)
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
            axis.plot([x], [y], marker="+", color="cyan", markersize=10, markeredgewidth=2)
            if row == 0:
                axis.set_title(f"query {column}", fontsize=9)
    axes[0, 0].set_title("input", fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    return figure


def transposed_figure(maps: Tensor, *, title: str) -> bytes:
    """TAM's ``d×d`` map ``M`` of every head, on one diverging scale centred on 0.

    Shape:
        maps: ``[h, d, d]`` (e.g. the mean over images).
    """
    heads = maps.shape[0]
    columns = min(heads, 8)
    rows = -(-heads // columns)
    figure = _new_figure(1.6 * columns + 0.8, 1.6 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False)
    top = float(maps.abs().max()) or 1.0
    for head, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if head >= heads:
            axis.set_visible(False)
            continue
        image = axis.imshow(maps[head].numpy(), cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
        axis.set_title(f"head {head}", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def geometry_figure(stats: Sequence[BlockStatistics], *, title: str) -> bytes:
    """Per block: rank correlation of received weight with ``|k|`` and with ``cos∠(k, q̂)``, row entropy, and
    (for TAM) the normalised spectrum ``σ_i/σ_1`` of ``M``. Dots are the heads, bars their mean."""
    spatial = [s for s in stats if s.received is not None]
    spectral = [s for s in stats if s.singular_values is not None]
    panels = bool(spatial) * 2 + bool(spectral)
    figure = _new_figure(4.6 * panels, 3.8)
    axes = list(figure.subplots(1, panels, squeeze=False).flat)
    if spatial:
        correlation, entropy = axes.pop(0), axes.pop(0)
        labels = [s.name for s in spatial]
        for offset, (label, values) in enumerate(
            (("|k| (magnitude)", [s.magnitude_correlation() for s in spatial]),
             ("cos∠(k, q̂) (direction)", [s.direction_correlation() for s in spatial]))
        ):
            _bars_with_heads(correlation, values, offset=(offset - 0.5) * 0.38, width=0.36, label=label)
        correlation.axhline(0, color="black", linewidth=0.8)
        correlation.set_ylim(-1.05, 1.05)
        correlation.set_ylabel("Spearman ρ with received weight")
        correlation.legend(fontsize=8, loc="lower right")
        _bars_with_heads(entropy, [s.entropy for s in spatial], offset=0.0, width=0.6, label=None)
        entropy.set_ylim(0, 1.05)
        entropy.set_ylabel("row entropy / log(keys seen)")
        for axis in (correlation, entropy):
            axis.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
            axis.grid(axis="y", alpha=0.3)
    if spectral:
        axis = axes.pop(0)
        for s in spectral:
            spectrum = s.singular_values.mean((0, 1))
            axis.plot(range(1, len(spectrum) + 1), (spectrum / spectrum[0]).numpy(), marker="o", label=s.name)
        axis.set_xlabel("index i")
        axis.set_ylabel("σ_i / σ_1 of M (mean over images, heads)")
        axis.set_ylim(0, 1.05)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def _bars_with_heads(axis, values: Sequence[Tensor], *, offset: float, width: float, label: str | None) -> None:
    """Bars of the mean over images and heads; one dot per head (mean over images). values: ``[B, h]`` each."""
    per_head = [v.double().mean(0) for v in values]
    positions = [i + offset for i in range(len(values))]
    bars = axis.bar(positions, [h.mean().item() for h in per_head], width=width, alpha=0.75, label=label)
    colour = bars.patches[0].get_facecolor()
    for position, heads in zip(positions, per_head):
        axis.scatter([position] * len(heads), heads.numpy(), s=9, color=colour, edgecolors="black", linewidths=0.4,
                     zorder=3)


def keys_figure(stats: Sequence[BlockStatistics], *, title: str, images: int = 4) -> bytes:
    """Per block: the weight each key receives against its norm ``|k|``, coloured by ``cos∠(k, q̂)``
    (the first ``images`` images, all heads)."""
    spatial = [s for s in stats if s.received is not None]
    figure = _new_figure(4.2 * len(spatial) + 0.8, 3.8)
    axes = figure.subplots(1, len(spatial), squeeze=False)[0]
    for axis, s in zip(axes, spatial):
        points = axis.scatter(s.magnitude[:images].flatten().numpy(), s.received[:images].flatten().numpy(),
                              c=s.alignment[:images].flatten().numpy(), cmap="coolwarm", vmin=-1, vmax=1, s=4)
        rho_m = s.magnitude_correlation().mean().item()
        rho_d = s.direction_correlation().mean().item()
        axis.set_title(f"{s.name} ({s.kind}, {s.normalization}, {s.geometry})\n"
                       f"ρ(|k|) = {rho_m:+.2f}   ρ(cos) = {rho_d:+.2f}", fontsize=8)
        axis.set_xlabel("|k| (key norm)")
        axis.set_ylabel("received weight (mean over queries)")
        axis.grid(alpha=0.3)
    figure.colorbar(points, ax=axes, label="cos∠(k, q̂)", shrink=0.8)
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def head_mean_maps(weights: Tensor, grid: Sequence[int]) -> Tensor:
    """Maps of the chosen queries averaged over heads, on the key grid. Shape: ``[n, h, Q, N]`` -> ``[n, Q, *grid]``."""
    return weights.mean(1).unflatten(-1, tuple(grid)).float()


MARKERS = "os^Dv<>p"


def seeds_figure(cells: Sequence[dict]) -> bytes:
    """One panel per cell (:func:`tam.analysis.seeds.aggregate`): ρ(received, ``|k|``) against ρ(received,
    ``cos∠(k, q̂)``), one marker per block at the mean over seeds, bars ± the std over seeds. Above the diagonal
    the attention follows the key magnitude more than its direction."""
    shown = [c for c in cells if any("magnitude_correlation" in b for b in c["blocks"])]
    columns = max(1, min(4, len(shown)))
    rows = max(1, -(-len(shown) // columns))
    figure = _new_figure(3.1 * columns + 0.3, 3.1 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat[len(shown):]:
        axis.set_visible(False)
    for axis, cell in zip(axes.flat, shown):
        axis.plot([-1, 1], [-1, 1], color="grey", linewidth=0.8, linestyle="--")
        axis.axhline(0, color="black", linewidth=0.5)
        axis.axvline(0, color="black", linewidth=0.5)
        blocks = [b for b in cell["blocks"] if "magnitude_correlation" in b]
        for index, block in enumerate(blocks):
            x, y = block["direction_correlation"], block["magnitude_correlation"]
            axis.errorbar(x["mean"], y["mean"], xerr=x["std"] or 0, yerr=y["std"] or 0, marker=MARKERS[index % 8],
                          markersize=7, capsize=3, linestyle="none",
                          label=f"{block['name']} ({'×'.join(map(str, block['spatial']))})")
        axis.set_xlim(-1.05, 1.05)
        axis.set_ylim(-1.05, 1.05)
        axis.set_aspect("equal")
        axis.grid(alpha=0.3)
        axis.set_title(f"{cell['cell']}\n{len(cell['seeds'])} seed(s)", fontsize=8)
        axis.set_xlabel("ρ(received, cos∠(k, q̂))  direction", fontsize=8)
        axis.set_ylabel("ρ(received, |k|)  magnitude", fontsize=8)
        axis.legend(fontsize=6, loc="lower left")
    figure.suptitle("What each key's received weight follows: magnitude (up) or direction (right); "
                    "mean ± std over seeds", fontsize=10)
    return _png(figure)


def trajectory_figure(cells: Sequence[dict], *, title: str) -> bytes:
    """The cells of one run's kept epochs (:func:`tam.analysis.seeds.aggregate`): per block, ρ with ``|k|``
    (solid) and with ``cos∠(k, q̂)`` (dashed), the softmax logit spread and the row entropy against the epoch."""
    from tam.analysis.report import LINEAR_SPREAD

    epochs = [cell["epoch"][0] for cell in cells]
    names = [b["name"] for b in cells[0]["blocks"] if "magnitude_correlation" in b]
    softmax = any("logit_spread" in b for b in cells[0]["blocks"])
    figure = _new_figure(4.2 * (2 + softmax), 3.6)
    axes = list(figure.subplots(1, 2 + softmax, squeeze=False).flat)

    def series(name: str, statistic: str) -> list[float]:
        return [next(b for b in cell["blocks"] if b["name"] == name)[statistic]["mean"] for cell in cells]

    for index, name in enumerate(names):
        colour = f"C{index}"
        axes[0].plot(epochs, series(name, "magnitude_correlation"), marker="o", color=colour, label=f"{name}: |k|")
        axes[0].plot(epochs, series(name, "direction_correlation"), marker="s", color=colour, linestyle="--",
                     label=f"{name}: cos")
        axes[1].plot(epochs, series(name, "row_entropy"), marker="o", color=colour, label=name)
        if softmax:
            axes[2].plot(epochs, series(name, "logit_spread"), marker="o", color=colour, label=name)
    axes[0].set_ylim(-1.05, 1.05)
    axes[0].axhline(0, color="black", linewidth=0.5)
    axes[0].set_ylabel("Spearman ρ with received weight")
    axes[1].set_ylabel("row entropy / log(keys seen)")
    if softmax:
        axes[2].axhline(LINEAR_SPREAD, color="grey", linestyle=":", label=f"{LINEAR_SPREAD} (near-linear below)")
        axes[2].set_ylabel("softmax logit spread (std over keys)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _png(figure)
