"""What a run reports while it trains: per-epoch records (JSONL, CSV, optional TensorBoard) and a progress bar."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from tam.errors import UserError
from tam.files import write_text_atomic

METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
FIELDS = ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr",
          "train_images_per_s", "train_seconds", "epoch_seconds")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run folder (empty if it has none yet)."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise UserError(f"{path}: line {number} is not an epoch record (a damaged file); restore it, or delete "
                            "the damaged lines (a resumed run drops records after its checkpoint's epoch)")
        records.append(record)
    return records


class MetricsWriter:
    """Appends one record per epoch to ``metrics.jsonl`` and ``metrics.csv`` (each rewritten atomically).

    On resume, records after ``keep_epochs`` (an epoch that ran but was never checkpointed) are dropped.
    """

    def __init__(self, run_dir: str | Path, *, keep_epochs: int = 0, tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.records = [r for r in read_metrics(self.run_dir) if r["epoch"] <= keep_epochs]
        self.tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("--tensorboard: the tensorboard package is not installed "
                                "(pip install 'tam[tensorboard]')") from None
            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=keep_epochs + 1)

    def log(self, record: dict) -> None:
        self.records.append(record)
        write_text_atomic(self.run_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in self.records))
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.records)
        write_text_atomic(self.run_dir / METRICS_CSV, table.getvalue())
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "epoch":
                    self.tensorboard.add_scalar(key, value, record["epoch"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def progress(iterable: Iterable, *, enabled: bool, desc: str) -> tqdm:
    """A progress bar on an interactive terminal; silent when stderr is not a TTY (logs, nohup) or not ``enabled``."""
    return tqdm(iterable, desc=desc, disable=not (enabled and sys.stderr.isatty()), leave=False,
                dynamic_ncols=True)
