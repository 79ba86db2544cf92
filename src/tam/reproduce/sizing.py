"""``tam reproduce --time-budget SECONDS``: the largest epoch count (up to the budget's own) at which every run of
a grid fits the time left on this device, measured here rather than guessed.

Each cell's model takes training steps on a synthetic batch of the run's batch size, with the run's autocast,
memory format, dtype and ``compile`` setting, on the run's device. The first steps (where ``torch.compile``
compiles and kernels are chosen) are timed apart as a fixed cost per run; the next give the step time. One epoch
of a run costs its steps, ``ceil(train images / batch)``, plus its test, counted as a third of a training step
per test batch (a forward without backward); a run's final test on the whole split once more. The epoch count
is measured once and kept in ``<out>/epochs.json``, so a resumed call trains to the same count.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from tam.errors import UserError
from tam.files import write_text_atomic
from tam.train.config import TrainConfig

EPOCHS_JSON = "epochs.json"
TEST_STEP = 1 / 3  # a test batch against a training step: forward only
SAFETY = 0.9  # of the time left, what the runs may plan to use


@dataclass(frozen=True)
class StepCost:
    """Seconds of one run's first ``warmup`` steps together (compilation included) and of each later step."""

    first_steps: float
    step: float


def measure_step(config: TrainConfig, num_classes: int, *, warmup: int = 3, min_reps: int = 3,
                 seconds: float = 1.0) -> StepCost:
    """Time training steps of ``config``'s model on a synthetic batch, as :func:`tam.train.train` runs them:
    ``warmup`` steps together, then at least ``min_reps`` more, and more until ``seconds`` have passed."""
    import torch
    import torch.nn.functional as F

    from tam.amp import autocast
    from tam.models import model_info
    from tam.train.distributed import resolve_device
    from tam.train.model import model_from_config
    from tam.train.optimizer import build_optimizer

    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    model = model_from_config(config, num_classes=num_classes)
    model.to(device, dtype, memory_format=torch.channels_last if config.channels_last else torch.preserve_format)
    optimizer = build_optimizer(model, config)
    net = torch.compile(model) if config.compile else model
    images = torch.randn(config.batch_size, *model_info(config.model).input_size, device=device, dtype=dtype)
    if config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(num_classes, (config.batch_size,), device=device)
    context = autocast(device.type, config.amp)

    def steps(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            with context:
                loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    model.train()
    first = steps(warmup)
    reps, spent = min_reps, steps(min_reps)
    while spent < seconds:
        more = max(1, round(reps * (seconds - spent) / spent))
        reps, spent = reps + more, spent + steps(more)
    return StepCost(first_steps=first, step=spent / reps)


def run_seconds(config: TrainConfig, cost: StepCost, train_images: int, test_images: int,
                full_test_images: int) -> tuple[float, float]:
    """Planned seconds of one run: its fixed part (first steps, final test) and each epoch's."""
    batches = math.ceil(train_images / config.batch_size)
    test_batches = math.ceil(test_images / config.batch_size) * TEST_STEP
    final = math.ceil(full_test_images / config.batch_size) * TEST_STEP if config.final_test_full else 0
    return cost.first_steps + cost.step * final, cost.step * (batches + test_batches)


def grid_seconds(configs: list[TrainConfig]) -> tuple[float, float]:
    """Planned seconds of all ``configs`` (one per run): the fixed part, and each epoch of all runs."""
    from tam.data import load_dataset
    from tam.train.subset import balanced_subset

    dataset = load_dataset(configs[0].data, cache_dir=configs[0].cache_dir)
    train_images = len(balanced_subset(dataset.train_labels, configs[0].limit_train))
    test_images = len(balanced_subset(dataset.test_labels, configs[0].limit_test))
    costs: dict[str, StepCost] = {}
    fixed = per_epoch = 0.0
    for config in configs:
        key = config.digest()  # seeds of one cell differ only in their seed: measured once
        if key not in costs:
            costs[key] = measure_step(config, len(dataset.classes))
        run_fixed, run_epoch = run_seconds(config, costs[key], train_images, test_images, len(dataset.test_labels))
        fixed, per_epoch = fixed + run_fixed, per_epoch + run_epoch
    return fixed, per_epoch


def planned_epochs(out: Path, configs: list[TrainConfig], time_budget: float, started: float) -> int:
    """The epoch count of ``<out>/epochs.json``, else the largest at which ``configs`` fit what is left of
    ``time_budget`` seconds since ``started`` (``time.monotonic()``) after measuring them, at most their own
    ``epochs``; written there.

    Raises:
        UserError: when not even one epoch fits.
    """
    path = out / EPOCHS_JSON
    if path.is_file():
        return int(json.loads(path.read_text())["epochs"])
    fixed, per_epoch = grid_seconds(configs)
    left = time_budget - (time.monotonic() - started)
    fits = math.floor((left * SAFETY - fixed) / per_epoch)
    if fits < 1:
        raise UserError(f"--time-budget: the {left:.0f} s left cannot hold one epoch of the {len(configs)} runs "
                        f"({fixed:.0f} s of first steps and final tests, {per_epoch:.0f} s per epoch of all runs)")
    epochs = min(fits, configs[0].epochs)
    write_text_atomic(path, json.dumps({"epochs": epochs, "fits": fits, "time_budget_s": time_budget, "seconds_left": left,
                                        "planned_fixed_s": fixed, "planned_epoch_s": per_epoch,
                                        "runs": len(configs)}, indent=2) + "\n")
    return epochs
