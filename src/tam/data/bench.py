"""Loader throughput benchmark: ``tam data bench`` writes ``loader.json`` and ``loader.md``.

Measures, on one machine: the time to prepare a source and to load its cache (when a source is given), the
images per second of the train loader (with augmentation) and the test loader, and — as the yardstick the
issue sets — the time of one ``preresnet20`` SGD training step at the same batch size, so the loader's share
of a step is explicit. Timings exclude a warm-up pass, synchronise on CUDA, and report median and spread.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tam.bench.load import load_averages
from tam.data.cache import load_dataset
from tam.data.dataset import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from tam.data.loader import DeviceLoader
from tam.device import cpu_model, device_name, resolve_device
from tam.files import write_text_atomic


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "load_average_at_start": load_averages(),
    }
    if device.type == "cuda":
        info["gpu"] = device_name(device)
    return info


def loader_throughput(loader: DeviceLoader, passes: int) -> dict:
    """Images per second over ``passes`` full epochs, after a warm-up of a few batches."""
    device = loader.device
    for i, _ in enumerate(loader):  # warm-up (allocator, kernels)
        if i == 10:
            break
    rates, shape = [], None
    for epoch in range(passes):
        loader.set_epoch(epoch)
        count = 0
        _sync(device)
        start = time.perf_counter()
        for x, _ in loader:
            count += x.shape[0]
            if shape is None:
                shape = list(x.shape)
        _sync(device)
        rates.append(count / (time.perf_counter() - start))
    return {
        "images_per_s_median": round(statistics.median(rates)),
        "images_per_s_min": round(min(rates)),
        "images_per_s_max": round(max(rates)),
        "passes": passes,
        "batches_per_pass": len(loader),
        "output_shape": shape,
    }


def model_step_time(batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, steps: int = 10) -> dict:
    """Median time of one preresnet20 SGD step (forward, backward, update) on ``batch``."""
    from tam.models import create_model

    model, which = create_model("preresnet20", num_classes=10), "tam.models.create_model('preresnet20')"
    model = model.to(device).train()
    if batch[0].is_contiguous(memory_format=torch.channels_last):
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = batch
    times = []
    for i in range(steps + 3):
        _sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return {"model": which, "step_ms_median": round(statistics.median(times) * 1e3, 2),
            "step_ms_min": round(min(times) * 1e3, 2), "steps": steps}


def run_bench(
    *,
    source: str | None,
    batch_size: int = 128,
    device: str = "cpu",
    passes: int = 3,
    model: bool = True,
    channels_last: bool = False,
) -> dict:
    device_t = resolve_device(device)
    result: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device_t),
        "batch_size": batch_size,
        "channels_last": channels_last,
    }
    if source:
        with tempfile.TemporaryDirectory(prefix="tam-bench-") as cache_dir:
            start = time.perf_counter()
            load_dataset(source, cache_dir=cache_dir)
            result["prepare_s"] = round(time.perf_counter() - start, 2)
            cache_file = next(Path(cache_dir).glob("*.pt"))
            start = time.perf_counter()
            ds = load_dataset(cache_file)
            result["load_cache_s"] = round(time.perf_counter() - start, 3)
            start = time.perf_counter()
            int(ds.train_images.sum()) + int(ds.test_images.sum())  # read every page of the mapped file
            result["load_cache_and_read_all_s"] = round(result["load_cache_s"] + time.perf_counter() - start, 3)
            result["cache_bytes"] = cache_file.stat().st_size
            images, labels, test_images, test_labels = (
                ds.train_images.clone(), ds.train_labels.clone(), ds.test_images.clone(), ds.test_labels.clone()
            )
            result["data"] = f"{ds.name} from {source} ({len(labels)} train / {len(test_labels)} test)"
            mean, std, augment = ds.mean, ds.std, ds.augment
    else:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (50_000,), generator=generator)
        test_images, test_labels = images[:10_000], labels[:10_000]
        result["data"] = "synthetic CIFAR-sized uint8 tensors (50000 train / 10000 test, 3x32x32)"
        mean, std, augment = CIFAR_MEAN, CIFAR_STD, "cifar"
    common = dict(batch_size=batch_size, augment=augment, mean=mean, std=std, device=device_t,
                  channels_last=channels_last)
    train = DeviceLoader(images, labels, train=True, **common)
    result["train_loader"] = loader_throughput(train, passes)
    result["test_loader"] = loader_throughput(DeviceLoader(test_images, test_labels, train=False, **common), passes)
    count = min(10_000, len(labels))
    tiny = torch.randint(0, 256, (count, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    result["tinyimagenet_train_loader"] = loader_throughput(
        DeviceLoader(tiny, torch.zeros(count, dtype=torch.int64), train=True, **{
            **common, "augment": "tinyimagenet", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
        passes,
    )
    result["tinyimagenet_train_loader"]["data"] = f"synthetic {count} x 3x64x64, random resized crop 56 + flip"
    if model:
        step = model_step_time(next(iter(train)), device_t)
        loader_ms = batch_size / result["train_loader"]["images_per_s_median"] * 1e3
        step["loader_ms_per_batch"] = round(loader_ms, 3)
        step["loader_share_of_step_percent"] = round(100 * loader_ms / step["step_ms_median"], 2)
        result["preresnet20_step"] = step
    result["machine"]["load_average_at_end"] = load_averages()
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Data loader throughput",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {m['cpu']} ({m['cpu_count']} CPUs, {m['torch_threads']} torch threads), {m['platform']}",
        f"- torch {m['torch']}, Python {m['python']}, device `{m['device']}`{' (' + m['gpu'] + ')' if m.get('gpu') else ''}",
        f"- Load average at start / end: {m['load_average_at_start']} / {m['load_average_at_end']} "
        "(the CPU is shared; higher load means slower figures)",
        f"- Data: {result['data']}; batch size {result['batch_size']}, channels_last {result['channels_last']}",
        *([f"- Command: `{result['command']}`"] if result.get("command") else []),
        *([f"- Note: {result['note']}"] if result.get("note") else []),
        *([f"- Threads: {result['threads_chosen']}"] if result.get("threads_chosen") else []),
        *(["- **Measured under load**: more torch threads than the cores other work left free, or a load above "
           "the cores; the figures (marked *under load*) can be several times worse than this machine's own."]
          if result.get("under_load") else []),
        "",
    ]
    loaded = " *under load*" if result.get("under_load") else ""
    if "prepare_s" in result:
        lines += [
            "| step | seconds |",
            "|---|---|",
            f"| prepare the source into a cache (read, decode, write) | {result['prepare_s']} |",
            f"| load the cache (memory-mapped) | {result['load_cache_s']} |",
            f"| load the cache and read every image | {result['load_cache_and_read_all_s']} |",
            "",
        ]
    lines += [f"| loader | images/s (median){loaded} | min | max | batches/pass | batch shape |",
              "|---|---|---|---|---|---|"]
    for key, label in (
        ("train_loader", "train: shuffle + crop/flip + normalise"),
        ("test_loader", "test: normalise"),
        ("tinyimagenet_train_loader", f"Tiny-ImageNet train ({result['tinyimagenet_train_loader']['data']})"),
    ):
        r = result[key]
        lines.append(f"| {label} | {r['images_per_s_median']:,} | {r['images_per_s_min']:,} | {r['images_per_s_max']:,} "
                     f"| {r['batches_per_pass']} | {r['output_shape']} |")
    if "preresnet20_step" in result:
        s = result["preresnet20_step"]
        lines += [
            "",
            f"A preresnet20 SGD step at batch {result['batch_size']} ({s['model']}) takes {s['step_ms_median']} ms{loaded} "
            f"(median of {s['steps']}); building its batch takes {s['loader_ms_per_batch']} ms, "
            f"**{s['loader_share_of_step_percent']}% of a step**.",
        ]
    return "\n".join(lines) + "\n"


def write_results(result: dict, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    json_path, md_path = out / "loader.json", out / "loader.md"
    write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    write_text_atomic(md_path, markdown(result))
    return json_path, md_path
