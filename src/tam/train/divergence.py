"""A run whose loss stops being a number stops: no silent NaN training.

The loop keeps, on the device (so steps never wait for the host), the first step of the epoch whose loss was
not finite. At the epoch's end, before any metric or checkpoint of that epoch is written, a non-finite step
(or a non-finite test loss: weights already broken) stops the run with :class:`Diverged`: the last good
checkpoint stays as it was, the run folder's manifest says ``diverged`` and where, and a ``results.json`` of an
earlier finish is marked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tam.errors import UserError
from tam.files import write_text_atomic


class Diverged(UserError):
    """The training loss became NaN or infinite."""


def first_nonfinite(first: torch.Tensor, loss: torch.Tensor, step: int) -> torch.Tensor:
    """``first`` (the first step whose loss was not finite so far, -1 for none) updated with ``step``'s loss;
    computed on the device, without a host sync."""
    return torch.where((first < 0) & ~torch.isfinite(loss.detach()), step, first)


def stop(out: Path, run, *, epoch: int, at: str, results_json: str) -> None:
    """Record the divergence at 1-based ``epoch``, ``at`` a place in it (``"step 3 of 390"``), and raise
    :class:`Diverged`. ``run`` is the claimed run folder (``None`` on ranks other than 0)."""
    where = {"epoch": epoch, "at": at}
    if run is not None:
        run.update(status="diverged", diverged=where)
        results = out / results_json
        if results.is_file():
            try:
                earlier = json.loads(results.read_text())
            except ValueError:
                earlier = None
            if isinstance(earlier, dict):
                write_text_atomic(results, json.dumps({**earlier, "diverged": where}, indent=2) + "\n")
    raise Diverged(f"training diverged: the loss was not finite at epoch {epoch}, {at}; stopped. The last good "
                   f"checkpoint in {out} is kept; lower --lr (or raise --warmup-epochs) and start afresh "
                   "with --overwrite")
