"""From an experiment and a budget to ``<out>/README.md``: train every cell and seed, measure, tabulate."""

from __future__ import annotations

from pathlib import Path

from tam.reproduce.experiment import Experiment
from tam.reproduce.runner import cell_config, measure_cost, resolve_source, run_training
from tam.reproduce.table import collect, markdown
from tam.files import write_text_atomic


def reproduce(experiment: Experiment, budget: str, out: Path, *, seeds: int | None = None,
              data: str | None = None, device: str = "auto") -> Path:
    """Run ``experiment`` at ``budget`` into ``out`` (resuming what is there) and write its table.

    Returns:
        the path of ``<out>/README.md``.
    """
    if experiment.bench is not None:
        return _reproduce_costs(experiment, budget, out, device)
    cells = experiment.cells(budget)
    source = resolve_source(experiment, data)
    count = seeds or experiment.seeds(budget)
    configs = {cell.name: [cell_config(experiment, budget, cell, seed, source, out, device) for seed in range(count)]
               for cell in cells}
    run_training([config for per_cell in configs.values() for config in per_cell])
    # Costs after all training, back to back, so that they are measured under the same conditions.
    for name, per_cell in configs.items():
        measure_cost(per_cell[0], out / name, quick=budget == "smoke")
    rows = collect(out, [cell.name for cell in cells])
    return write_text_atomic(out / "README.md", markdown(experiment.title, budget, rows, out))


def _reproduce_costs(experiment: Experiment, budget: str, out: Path, device: str) -> Path:
    """A cost experiment: the named bench suites (quick grids for ``smoke``), report written into ``out``."""
    import torch

    from tam.bench.report import write_report
    from tam.bench.runner import Settings, run_cases
    from tam.bench.suites import suite_cases
    from tam.train.distributed import resolve_device

    quick = budget == "smoke"
    cases = [case for suite in experiment.bench.get("suites", []) for case in suite_cases(suite, quick=quick)]
    settings = Settings(budget_s=0.1 if quick else 1.0, min_reps=3 if quick else 5, rss=not quick)
    records = run_cases(cases, resolve_device(device), settings)
    write_report(records, out)
    readme = out / "README.md"
    write_text_atomic(readme, f"# {experiment.title}\n\nBudget `{budget}`, torch {torch.__version__}. "
                              f"Tables: [results.md](results.md); records: [results.json](results.json).\n")
    return readme
