"""Run an experiment's cells: each seed a training run folder, each cell one cost measurement.

Finished runs are skipped, interrupted ones resumed from their checkpoint, so a stopped ``tam reproduce``
continues where it stopped. Every number of the final table is read back from these folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from tam.errors import UserError
from tam.reproduce.experiment import REPO_ROOT, Cell, Experiment
from tam.train.config import TrainConfig, from_dict, incompatible_keys, load_yaml
from tam.files import write_text_atomic
from tam.layers.registry import attention_kind
from tam.runfolder import child, read_manifest

COST_JSON = "cost.json"


def resolve_source(experiment: Experiment, data: str | None) -> str:
    """The data source to train on: ``--data``, else the experiment's default; missing data is a clear error."""
    source = data or (str(REPO_ROOT / experiment.source) if experiment.source else None)
    if source is not None and Path(source).exists():
        # Resolved, so that a run's config names the same data from whichever checkout resumes it.
        return str(Path(source).resolve())
    where = f"at {source}" if source else "(the experiment names no default source)"
    fetch = (f"; or fetch the official archive: tam data download {experiment.dataset} --dir DIR"
             if experiment.dataset in ("cifar10", "cifar100") else "")
    raise UserError(f"{experiment.dataset or 'the dataset'} of experiment {experiment.name} is not present "
                    f"{where}: point to it with tam reproduce {experiment.name} --data PATH{fetch}")


def run_folder(out: Path, cell: Cell, seed: int) -> Path:
    """``<out>/<cell name>/seed<seed>``; a cell name that would lead elsewhere is refused."""
    return child(out, cell.name, what=f"grid cell {cell.values}") / f"seed{seed}"


def cell_config(experiment: Experiment, budget: str, cell: Cell, seed: int, source: str, out: Path,
                device: str, preset: str | None = None, overrides: dict | None = None) -> TrainConfig:
    """The TrainConfig of one seed of ``cell``: the budget's values, then ``overrides`` (``--set``), then the
    cell's; ``preset`` (``tam reproduce --preset``) applies to every cell."""
    values = {**experiment.base_config(budget), **(overrides or {}), **cell.values, "seed": seed, "data": source,
              "out": str(run_folder(out, cell, seed)), "device": device}
    if preset is not None:
        if values.get("preset") not in (None, preset):
            raise UserError(f"--preset {preset}: experiment {experiment.name} sets preset {values['preset']!r}")
        values["preset"] = preset
    if values.get("attention", "none") == "none":  # the plain backbone: no placement, no attention options
        for key in ("attention_blocks", "heads", "attention_options"):
            values.pop(key, None)
    return from_dict(values, source=f"experiment {experiment.name}, cell {cell.name}")


def is_finished(config: TrainConfig) -> bool:
    """A run folder whose results cover all epochs of this very config.

    Its config is the manifest's (``tam-run.json``), else ``config.yaml`` (folders written before manifests),
    so a folder holding only its manifest, ``results.json`` and weights (as committed) counts as finished; one
    whose manifest says it did not finish (diverged, failed) does not.
    """
    folder = Path(config.out)
    if not (folder / "results.json").is_file():
        return False
    manifest = read_manifest(folder)
    if manifest is not None and (manifest["command"] != "train" or manifest.get("status") != "finished"):
        return False
    if manifest is not None and isinstance(manifest.get("config"), dict):
        stored = manifest["config"]
    elif (folder / "config.yaml").is_file():
        stored = load_yaml(folder / "config.yaml")
    else:
        return False
    try:
        results = json.loads((folder / "results.json").read_text())
    except ValueError:
        raise UserError(f"{folder / 'results.json'}: not valid JSON (a damaged file); delete it to train the "
                        "run again") from None
    return (isinstance(results, dict) and not incompatible_keys(stored, config)
            and results.get("epochs_completed") == config.epochs)


def finished_elsewhere(configs: list[TrainConfig], cell_folder: Path) -> bool:
    """Whether ``cell_folder`` (another experiment's) holds every seed of ``configs``, finished with equal configs."""
    return all(is_finished(dataclasses.replace(config, out=str(cell_folder / Path(config.out).name)))
               for config in configs)


def run_training(configs: list[TrainConfig], jobs: int = 1) -> None:
    """Train every unfinished run of ``configs`` in order, resuming interrupted ones.

    ``jobs`` > 1 trains that many runs at once, each in a process of its own with ``1/jobs`` of this process's
    torch threads (a small network's kernels scale poorly over cores, so on a CPU runs side by side do more
    work per second than one run with every thread). After a run fails no new run starts; those
    in flight finish (every run is resumable), then the first failure is raised.
    """
    todo = []
    for number, config in enumerate(configs, 1):
        if is_finished(config):
            print(f"[{number}/{len(configs)}] {config.out}: finished, skipped", flush=True)
        else:
            todo.append((number, config))
    if jobs == 1:
        for number, config in todo:
            _train_run(number, len(configs), config)
        return
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # a fork of a process that ran torch ops can deadlock
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                             initargs=(threads, os.getpid())) as pool:
        futures = [pool.submit(_train_run, number, len(configs), config, tagged=True) for number, config in todo]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((future for future in futures if future in done and future.exception()), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            raise failed.exception()  # leaving the pool waits for the runs in flight


def _start_worker(threads: int, parent: int) -> None:
    """A training process of ``run_training``: its share of the threads, and its end with its parent's.

    A pool's workers outlive a parent that is killed (``kill``, a closed session) and would train on unseen;
    each stops as ``kill -9`` would once it is orphaned, and its run resumes from its last checkpoint.
    """
    import threading

    import torch

    torch.set_num_threads(threads)

    def end_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=end_with_parent, daemon=True).start()


def _train_run(number: int, total: int, config: TrainConfig, tagged: bool = False) -> None:
    """Train one run; ``tagged`` (runs side by side) starts each line it prints with ``[number/total]``, so
    that interleaved epoch lines still say which run they belong to."""
    import contextlib
    import sys

    from tam.train import train

    print(f"[{number}/{total}] {config.out}: training", flush=True)
    with contextlib.redirect_stdout(_Tagged(sys.stdout, f"[{number}/{total}] ") if tagged else sys.stdout):
        train(config, resume=True)


class _Tagged:
    """A text stream that starts every line written through it with ``tag``."""

    def __init__(self, stream, tag: str):
        self.stream, self.tag, self.at_line_start = stream, tag, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                self.stream.write(self.tag)
            self.stream.write(piece)
            self.at_line_start = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def cost_threads(device: str) -> bool:
    """Choose the threads of the cost step by the timing policy of every command that times
    (:func:`tam.bench.load.choose_threads`, printed); ``True`` when the step begins under load."""
    import torch

    from tam.bench.load import choose_threads
    from tam.device import resolve_device

    if resolve_device(device).type != "cpu":
        return False
    return choose_threads(None, torch.get_num_threads(), command="tam reproduce (cost step)").under_load


def measure_cost(config: TrainConfig, folder: Path, *, quick: bool, under_load: bool = False) -> dict | None:
    """Time and memory of one training step of the cell's model (the bench's ``network`` measurement), and,
    for a cell with attention, its step time ÷ the backbone's without attention timed interleaved with it
    (:func:`tam.bench.runner.add_paired_timing`: ``paired_ratio`` with its quartiles), the figure the table and the
    cost plot quote; separate timings of two models drift apart by more than attention costs here.

    ``under_load``: the cost step began with more threads than free cores (:func:`cost_threads`); the record
    says so, as it does when the load rises above the cores while it is measured.

    Written to ``<cell>/cost.json`` once; ``None`` for cells whose attention options the bench cannot
    express (e.g. a geometry ablation), whose cost equals their default-option sibling's anyway.
    """
    path = folder / COST_JSON
    if path.is_file():
        return json.loads(path.read_text())
    if config.attention_options:
        return None
    from tam.bench.runner import Settings, add_paired_timing, environment, measure_case
    from tam.bench.suites import Case
    from tam.device import resolve_device
    from tam.models import model_info

    info = model_info(config.model)
    blocks = tuple(config.attention_blocks or (0,) * info.num_stages) if config.attention != "none" else None
    # The bench kind that runs the layer as training builds it (Non-local "auto" takes the fused kernel).
    kind = "none" if config.attention == "none" else attention_kind(config.attention).training_variant()
    case = Case("network", kind, config.heads, info.input_size[1], info.input_size[0],
                config.batch_size, blocks=sum(blocks or ()), model=config.model, attention_blocks=blocks,
                preset=config.preset)
    device = resolve_device(config.device)
    settings = Settings(budget_s=0.1 if quick else 2.0, min_reps=1 if quick else 5, pair_min_reps=1 if quick else 15,
                        rss=False, under_load=under_load)
    record = {**measure_case(case, device, settings), **environment(device, started_under_load=under_load)}
    if kind != "none":
        backbone = dataclasses.replace(case, kind="none", blocks=0, attention_blocks=None)
        add_paired_timing(record, case, backbone, device, settings)
    write_text_atomic(path, json.dumps(record, indent=2))
    return record

