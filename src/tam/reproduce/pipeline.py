"""From an experiment and a budget to ``<out>/README.md``: train every cell and seed, measure, tabulate."""

from __future__ import annotations

import time
from pathlib import Path

from tam.errors import UserError
from tam.files import write_text_atomic
from tam.reproduce.experiment import Experiment
from tam.reproduce.runner import (
    cell_config,
    cost_threads,
    finished_elsewhere,
    measure_cost,
    resolve_source,
    run_training,
)
from tam.reproduce.plots import plot_accuracy
from tam.reproduce.sizing import planned_epochs
from tam.reproduce.table import collect, markdown


def reproduce(experiment: Experiment, budget: str, out: Path, *, seeds: int | None = None,
              data: str | None = None, device: str = "auto", reuse: tuple[Path, ...] = (),
              train: bool = True, baseline: Path | None = None, preset: str | None = None,
              overrides: dict | None = None, time_budget: float | None = None, started: float | None = None,
              quick_cost: bool = False, jobs: int = 1) -> Path:
    """Run ``experiment`` at ``budget`` into ``out`` (resuming what is there) and write its table.

    Args:
        reuse: folders of other experiments; a cell whose every seed is finished there with the very config
            this experiment would train (e.g. the geometry ablation's Non-local softmax cell, which is
            ``cifar10``'s ``nl-h1``) is read from there instead of trained again.
        train: ``False`` only writes the table (and plots) from the runs finished so far.
        baseline: an earlier experiment folder (another budget) whose smallest resolvable difference the
            table states beside this one's.
        preset: build every cell's model with that preset's conventions (:mod:`tam.presets`).
        overrides: TrainConfig values over the budget's for every run (``--set key=value``).
        time_budget: seconds since ``started`` (``time.monotonic()``) the whole grid must fit on this device:
            the epoch count is measured to fit (:mod:`tam.reproduce.sizing`) and kept in ``<out>/epochs.json``.
        quick_cost: measure each cell's step cost briefly (smoke tests) instead of to the bench's precision.
        jobs: runs trained at once (:func:`tam.reproduce.runner.run_training`).

    Returns:
        the path of ``<out>/README.md``.
    """
    if experiment.bench is not None:
        if preset is not None:
            raise UserError(f"--preset builds training cells; experiment {experiment.name} measures bench suites")
        return _reproduce_costs(experiment, budget, out, device)
    cells = experiment.cells(budget)
    source = resolve_source(experiment, data)
    count = seeds or experiment.seeds(budget)
    overrides = dict(overrides or {})

    def build() -> dict[str, list]:
        return {cell.name: [cell_config(experiment, budget, cell, seed, source, out, device, preset, overrides)
                            for seed in range(count)] for cell in cells}

    configs = build()
    if time_budget is not None and train:
        every = [config for per_cell in configs.values() for config in per_cell]
        overrides["epochs"] = planned_epochs(out, every, time_budget, started or time.monotonic())
        if every[0].keep_weights:  # a budget that keeps the final weights keeps the measured count's
            overrides["keep_weights"] = [overrides["epochs"]]
        configs = build()
    folders = {name: next((folder / name for folder in reuse if finished_elsewhere(per_cell, folder / name)),
                          out / name) for name, per_cell in configs.items()}
    own = {name: per_cell for name, per_cell in configs.items() if folders[name] == out / name}
    if train:
        run_training([config for per_cell in own.values() for config in per_cell], jobs)
        # Costs after all training, back to back, so that they are measured under the same conditions.
        under_load = cost_threads(device)
        for name, per_cell in own.items():
            measure_cost(per_cell[0], out / name, quick=quick_cost, under_load=under_load)
    rows = collect(folders)
    earlier = collect({cell.name: cell for cell in sorted(baseline.iterdir()) if cell.is_dir()}) if baseline else None
    plot_accuracy(rows, out)
    title = experiment.title if preset is None else f"{experiment.title} (preset {preset})"
    return write_text_atomic(out / "README.md", markdown(title, budget, rows, out, earlier))


def _reproduce_costs(experiment: Experiment, budget: str, out: Path, device: str) -> Path:
    """A cost experiment: the named bench suites (quick grids for ``smoke``), report written into ``out``."""
    import torch

    from tam.bench.report import write_report
    from tam.bench.runner import Settings, run_cases
    from tam.bench.suites import suite_cases
    from tam.device import resolve_device

    quick = budget == "smoke"
    cases = [case for suite in experiment.bench.get("suites", []) for case in suite_cases(suite, quick=quick)]
    under_load = cost_threads(device)
    settings = Settings(budget_s=0.1 if quick else 1.0, min_reps=3 if quick else 5, rss=not quick,
                        under_load=under_load)
    records = run_cases(cases, resolve_device(device), settings)
    write_report(records, out)
    readme = out / "README.md"
    write_text_atomic(readme, f"# {experiment.title}\n\nBudget `{budget}`, torch {torch.__version__}. "
                              f"Tables: [results.md](results.md); records: [results.json](results.json).\n")
    return readme
