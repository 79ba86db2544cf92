"""The experiment's figures, from the same rows as its table: top-1 error per cell with its seeds and spread
(``accuracy.png``), and top-1 error against training-step time (``accuracy_cost.png``): what each kind buys for
what it costs."""

from __future__ import annotations

from pathlib import Path

from tam.analysis.intervals import mean_std
from tam.files import write_atomic
from tam.reproduce.table import Row, costed, step_ratio

ACCURACY_PNG = "accuracy.png"
ACCURACY_COST_PNG = "accuracy_cost.png"


def _spread(values: list[float]) -> float:
    return mean_std(values)[1] or 0.0


def plot_accuracy(rows: list[Row], out: Path) -> list[Path]:
    """Write both figures into ``out``; the cost figure only when some cell's cost was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    figure, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    for y, row in enumerate(rows):
        ax.scatter(row.top1_error, [y] * len(row.top1_error), color="0.6", s=14, zorder=2,
                   label="one seed" if y == 0 else None)
        ax.errorbar(mean_std(row.top1_error)[0], y, xerr=_spread(row.top1_error), fmt="o", color="C0", capsize=4,
                    zorder=3, label="mean ± std over seeds" if y == 0 else None)
    ax.set_yticks(range(len(rows)), [row.cell for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("top-1 test error (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    written.append(write_atomic(out / ACCURACY_PNG, lambda file: figure.savefig(file, format="png", dpi=110)))
    plt.close(figure)

    base, with_cost = costed(rows)
    if with_cost:
        figure, ax = plt.subplots(figsize=(7, 4.5))
        for row in with_cost:
            x, q1, q3 = step_ratio(row, base)
            xerr = None if q1 is None else [[x - q1], [q3 - x]]
            ax.errorbar(x, mean_std(row.top1_error)[0], xerr=xerr, yerr=_spread(row.top1_error), fmt="o", capsize=4)
            ax.annotate(row.cell, (x, mean_std(row.top1_error)[0]), textcoords="offset points", xytext=(6, 4),
                        fontsize="small")
        ax.set_xlabel("training-step time ÷ the backbone's without attention (median, quartiles)")
        ax.set_ylabel("top-1 test error (%), mean ± std over seeds")
        ax.grid(alpha=0.3)
        figure.tight_layout()
        written.append(write_atomic(out / ACCURACY_COST_PNG,
                                    lambda file: figure.savefig(file, format="png", dpi=110)))
        plt.close(figure)
    return written
