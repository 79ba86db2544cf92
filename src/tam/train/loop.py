"""The training loop: ``train(config)`` builds data, model and optimizer, then runs epochs of SGD, evaluating,
logging and checkpointing after each one. The same code runs alone or as one rank under ``torchrun``.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tam.amp import autocast as amp_autocast
from tam.device import device_name
from tam.errors import Interrupted, UserError
from tam.files import write_text_atomic
from tam.runfolder import RunFolder
from tam.train import distributed, divergence
from tam.train.checkpoint import rng_state, save_checkpoint, save_weights
from tam.train.config import TrainConfig, to_yaml
from tam.train.divergence import first_nonfinite
from tam.train.metrics import METRICS_JSONL, MetricsWriter, progress
from tam.train.model import model_from_config
from tam.train.optimizer import build_optimizer
from tam.train.plot import CURVES_PNG, plot_runs
from tam.train.resume import check_same_data, checkpoint_to_resume, data_identity, restore
from tam.train.schedule import build_scheduler
from tam.train.subset import balanced_subset
from tam.train.sync_batchnorm import convert_sync_batchnorm

CHECKPOINT = "checkpoint.pt"
CONFIG_YAML = "config.yaml"
RESULTS_JSON = "results.json"


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train as ``config`` says and return the results (also written to ``<out>/results.json`` by rank 0).

    Rank 0 claims ``config.out`` as a ``tam train`` run folder (:class:`tam.runfolder.RunFolder`): locked while
    the run lasts, refused if another command owns it or it holds someone else's files, unless ``overwrite``.
    With ``resume``, continue from ``<out>/checkpoint.pt`` when it exists (refusing an incompatible config);
    without it, refuse a run folder that already holds a checkpoint (``overwrite`` starts afresh instead).
    """
    context = distributed.setup(config.device)
    try:
        if not context.is_main:
            return _train(config, resume, context, None)
        with RunFolder.claim(config.out, command="train", resume=resume, overwrite=overwrite,
                             inputs=[config.data], adopts=(CHECKPOINT, METRICS_JSONL)) as run:
            run.update(config=config.to_dict(), config_digest=config.digest())
            if overwrite:
                (Path(config.out) / CHECKPOINT).unlink(missing_ok=True)  # a folder written before manifests
            try:
                return _train(config, resume, context, run)
            except KeyboardInterrupt:
                hint = _resume_hint(Path(config.out), run.manifest.get("saved_epoch", 0), config.epochs)
                raise Interrupted(hint) from None
    finally:
        distributed.teardown()


def _train(config: TrainConfig, resume: bool, context: distributed.Context, run: RunFolder | None) -> dict:
    from tam.data import DeviceLoader, load_dataset

    device, out = context.device, Path(config.out)
    if config.batch_size % context.world_size:
        raise UserError(f"batch_size: {config.batch_size} is not divisible by the {context.world_size} ranks")
    checkpoint = checkpoint_to_resume(out / CHECKPOINT, config, resume)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    dataset = load_dataset(config.data, cache_dir=config.cache_dir)
    if checkpoint is not None:
        check_same_data(checkpoint, dataset, out / CHECKPOINT)
    train_pick = balanced_subset(dataset.train_labels, config.limit_train)
    test_pick = balanced_subset(dataset.test_labels, config.limit_test)
    shared = dict(batch_size=config.batch_size // context.world_size, mean=dataset.mean, std=dataset.std,
                  device=device, seed=config.seed, rank=context.rank, world_size=context.world_size,
                  channels_last=config.channels_last)
    train_loader = DeviceLoader(dataset.train_images[train_pick], dataset.train_labels[train_pick], train=True,
                                augment=dataset.augment, randomize=config.augment,
                                crop_padding=config.crop_padding, **shared)
    test_loader = DeviceLoader(dataset.test_images[test_pick], dataset.test_labels[test_pick], train=False,
                               augment=dataset.augment, **shared)

    model = model_from_config(config, num_classes=len(dataset.classes))
    params = sum(p.numel() for p in model.parameters())
    if context.world_size > 1 and config.sync_bn:
        model = convert_sync_batchnorm(model, device)
    dtype = getattr(torch, config.dtype)
    model.to(device, dtype, memory_format=torch.channels_last if config.channels_last else torch.preserve_format)

    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    start_epoch = 0
    if checkpoint is not None:
        start_epoch = restore(checkpoint, out / CHECKPOINT, model=model, optimizer=optimizer, scheduler=scheduler,
                              scaler=scaler, loader=train_loader,
                              description=f"{config.model} with {len(dataset.classes)} classes")

    net = model
    if context.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    autocast = amp_autocast(device.type, config.amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    writer = None
    if context.is_main:
        write_text_atomic(out / CONFIG_YAML, to_yaml(config))
        writer = MetricsWriter(out, keep_epochs=start_epoch, tensorboard=config.tensorboard)
        run.update(saved_epoch=start_epoch)
        print(f"{config.model} attention={config.attention}: {params:,} parameters, {len(train_pick)} train / "
              f"{len(test_pick)} test images, {context.world_size} x {device}, epochs {start_epoch + 1}..{config.epochs}",
              flush=True)
        if start_epoch == 0 and 0 in config.keep_weights:
            save_weights(out, 0, config.to_dict(), model)

    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        train_loader.set_epoch(epoch)
        net.train()
        sums, seen = torch.zeros(2, device=device), 0  # loss sum, correct; on device so steps never sync
        nonfinite = torch.full((), -1, dtype=torch.long, device=device)  # first step of a NaN/inf loss
        bar = progress(train_loader, enabled=context.is_main, desc=f"epoch {epoch + 1}/{config.epochs}")
        for step, (images, labels) in enumerate(bar):
            with autocast:
                logits = net(images.to(dtype))
                loss = criterion(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            sums += torch.stack([loss.detach().float() * len(labels), (logits.argmax(1) == labels).sum().float()])
            nonfinite = first_nonfinite(nonfinite, loss, step)
            seen += len(labels)
            if step % config.log_interval == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.4g}")
        train_loss, train_correct, train_seen, diverged = distributed.sum_across_ranks(
            torch.cat([sums, sums.new_tensor([seen]), (nonfinite >= 0).float()[None]])).tolist()
        if diverged:
            first = int(nonfinite)
            at = f"step {first + 1} of {len(train_loader)}" if first >= 0 else "a step on another rank"
            divergence.stop(out, run, epoch=epoch + 1, at=at, results_json=RESULTS_JSON)
        train_seconds = time.perf_counter() - epoch_start
        test_loss, test_top1, test_top5 = evaluate(model, test_loader, autocast, dtype)
        if not math.isfinite(test_loss):
            divergence.stop(out, run, epoch=epoch + 1, at="its evaluation on the test set", results_json=RESULTS_JSON)

        record = {"epoch": epoch + 1, "train_loss": train_loss / train_seen,
                  "train_top1": 100 * train_correct / train_seen, "test_loss": test_loss, "test_top1": test_top1,
                  "test_top5": test_top5, "test_images": len(test_pick), "lr": scheduler.get_last_lr()[0],
                  "train_images_per_s": train_seen / train_seconds, "train_seconds": train_seconds,
                  "epoch_seconds": time.perf_counter() - epoch_start}
        if context.is_main:
            # Metrics before the checkpoint: a kill in between re-runs this epoch and drops its record.
            writer.log(record)
            if epoch + 1 in config.keep_weights:  # before the checkpoint: a kill in between re-runs this epoch
                save_weights(out, epoch + 1, config.to_dict(), model)
            save_checkpoint(out / CHECKPOINT, {
                "epoch": epoch + 1, "config": config.to_dict(), "config_digest": config.digest(),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "loader": train_loader.state_dict(), "rng": rng_state(), "data": data_identity(dataset)})
            run.update(saved_epoch=epoch + 1)
            print(f"epoch {epoch + 1}/{config.epochs}  train loss {record['train_loss']:.4f} "
                  f"top-1 {record['train_top1']:.2f}  test loss {test_loss:.4f} top-1 {test_top1:.2f} "
                  f"top-5 {test_top5:.2f}  lr {record['lr']:.4g}  {record['train_images_per_s']:.0f} img/s  "
                  f"{record['epoch_seconds']:.1f} s", flush=True)

    final = None
    if config.final_test_full:  # every rank evaluates: the sums are reduced across ranks
        full_loader = DeviceLoader(dataset.test_images, dataset.test_labels, train=False, augment=dataset.augment,
                                   **shared)
        final = evaluate(model, full_loader, autocast, dtype)[1:] + (len(dataset.test_labels),)
    if not context.is_main:
        return {}
    writer.close()
    results = summarise(writer.records, config, params=params, data=dataset.name, context=context, final=final)
    write_text_atomic(out / RESULTS_JSON, json.dumps(results, indent=2) + "\n")
    plot_runs([out], out / CURVES_PNG)
    return results


@torch.no_grad()
def evaluate(model: nn.Module, loader, autocast: torch.autocast, dtype: torch.dtype) -> tuple[float, float, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (%) over ``loader``, summed across ranks."""
    model.eval()
    sums, seen = None, 0
    for images, labels in loader:
        with autocast:
            logits = model(images.to(dtype)).float()
        hits = logits.topk(min(5, logits.size(1)), dim=1).indices == labels[:, None]
        batch = torch.stack([F.cross_entropy(logits, labels, reduction="sum"), hits[:, 0].sum().float(),
                             hits.any(dim=1).sum().float()])
        sums = batch if sums is None else sums + batch
        seen += len(labels)
    loss, top1, top5, seen = distributed.sum_across_ranks(torch.cat([sums, sums.new_tensor([seen])])).tolist()
    return loss / seen, 100 * top1 / seen, 100 * top5 / seen


def _resume_hint(out: Path, saved_epoch: int, epochs: int) -> str:
    """What an interrupted run kept, and how to continue it."""
    if saved_epoch == 0:
        return f"no epoch finished, so {out} holds no checkpoint; run the same command again to start over"
    return f"{out / CHECKPOINT} holds epoch {saved_epoch} of {epochs}; continue with the same command and --resume"


def _percent(value: float) -> float:
    """A percentage of test images, without the float residue of a subtraction (100 - 89.4 = 10.599999999999994);
    6 decimals resolve one image in a million."""
    return round(value, 6)


def summarise(records: list[dict], config: TrainConfig, *, params: int, data: str,
              context: distributed.Context, final: tuple[float, float, int] | None = None) -> dict:
    """``results.json``: final and best accuracy, speed (median over epochs) and what ran where.

    ``final`` is (top-1, top-5, test images) of the final model on the whole test split
    (``--final-test-full``); without it the final accuracy is the last epoch's test on ``--limit-test``.
    ``best_top1`` always reads the per-epoch tests.
    """
    last = records[-1]
    best = max(records, key=lambda r: r["test_top1"])
    top1, top5, test_images = final or (last["test_top1"], last["test_top5"], last.get("test_images"))
    return {
        "model": config.model, "attention": config.attention, "heads": config.heads,
        "attention_blocks": config.attention_blocks, "attention_options": config.attention_options, "data": data,
        "final_top1": top1, "final_top5": top5, "final_top1_error": _percent(100 - top1), "final_top5_error": _percent(100 - top5),
        "final_test_images": test_images,
        "best_top1": best["test_top1"], "best_epoch": best["epoch"], "epochs_completed": last["epoch"],
        "params": params,
        "train_images_per_s": statistics.median(r["train_images_per_s"] for r in records),
        "train_seconds": sum(r["train_seconds"] for r in records),
        "device": f"{device_name(context.device)}, {torch.get_num_threads()} threads",
        "world_size": context.world_size, "torch": torch.__version__,
    }


