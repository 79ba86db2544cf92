"""Measure blocks in a child process: peak memory of one call, then its time; out of memory never ends the run.

The parent (:class:`Worker`) sends one request per line to ``python -m tam.bench.worker DEVICE THREADS`` and
reads one JSON answer per line. The child builds the block (:func:`~tam.bench.memory_model.build_block`),
calls the phase once to warm up, measures the peak memory of the next call — on CUDA the allocator's peak above what was allocated
before (``max_memory_allocated``), on CPU the growth of its resident memory (``VmHWM`` after lowering it to
the current RSS) — counting it as the first timed call, and times further calls while ``budget_s`` lasts. A fresh process per
kind keeps one configuration's freed memory from hiding the next one's on CPU; a child the system kills is
answered as out of memory and replaced.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import torch

from tam.bench.measure import Timing, cuda_peak_bytes, is_out_of_memory, memory_limit
from tam.bench.memory_model import BlockShape, build_block, drop_gradients, phase_fn
from tam.bench.rss import max_rss_bytes, reset_peak_rss


class Worker:
    """A child process that measures :class:`BlockShape` phases on ``device`` with ``threads`` CPU threads.

    Example:
        >>> with Worker("cpu", threads=1) as worker:
        ...     answer = worker.measure(BlockShape("tam", 8, 4, 8), "inference", budget_s=0.01)
        >>> answer["status"], answer["time_ms"] > 0
        ('ok', True)
    """

    def __init__(self, device: str = "cpu", threads: int = 1):
        self.command = [sys.executable, "-m", "tam.bench.worker", device, str(threads)]
        # glibc keeps freed blocks below its mmap threshold (raised up to 32 MiB as blocks are freed) for
        # reuse, so the resident size would hold tensors already freed; at a fixed 64 KiB every tensor of
        # that size or more is mapped on its own and unmapped when freed, and the resident size follows the
        # live tensors. (Big blocks then take fresh pages every call, as those over 32 MiB always do.)
        self.env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
        self.child: subprocess.Popen | None = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.child is not None:
            self.child.stdin.close()
            self.child.wait()
            self.child = None

    def measure(
        self, shape: BlockShape, phase: str, *, budget_s: float, memory_limit_bytes: int | None = None,
        amp: str = "none",
    ) -> dict:
        """Peak memory and time of ``phase`` on ``shape``: ``status`` (``ok`` | ``oom``), ``error``, ``peak_bytes``,
        ``time_ms`` (median), ``time_q1_ms``, ``time_q3_ms``, ``reps``.

        ``budget_s``: seconds of timed calls, the measured one first (so a slow case costs two calls).
        ``memory_limit_bytes``: on CPU, what the child may map beyond its size before the call.
        """
        if self.child is None:
            self.child = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env
            )
        request = dict(shape=asdict(shape), phase=phase, budget_s=budget_s, memory_limit=memory_limit_bytes, amp=amp)
        self.child.stdin.write(json.dumps(request) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            code = self.child.wait()
            self.child = None
            return _answer("oom", f"the measuring process died (exit {code}; SIGKILL is the system's OOM killer)")
        return json.loads(line)


MAX_REPS = 100


def _answer(status: str, error: str | None = None, peak_bytes: int | None = None, timing=None) -> dict:
    return {
        "status": status,
        "error": error,
        "peak_bytes": peak_bytes,
        "time_ms": timing.median_ms if timing else None,
        "time_q1_ms": timing.q1_ms if timing else None,
        "time_q3_ms": timing.q3_ms if timing else None,
        "reps": timing.reps if timing else None,
    }


def _timed(fn, device: torch.device) -> float:
    """Milliseconds of one ``fn()``, the device synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def _resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _cpu_peak_bytes(fn) -> int:
    """Growth of the resident size over one ``fn()`` (the child maps every block of 64 KiB or more on its
    own, so a freed tensor leaves the resident size at once; see :class:`Worker`)."""
    gc.collect()
    reset_peak_rss()
    before = _resident_bytes()
    fn()
    return max(max_rss_bytes() - before, 0)


def measure(request: dict, device: torch.device) -> dict:
    """Answer one request (see :meth:`Worker.measure`) in this process."""
    shape = BlockShape(**request["shape"])
    cpu = device.type == "cpu"
    measured = None
    try:
        with memory_limit(request["memory_limit"] if cpu else None):
            block, x, grad_output = build_block(shape, device)
            fn = phase_fn(block, x, grad_output, request["phase"], request["amp"])
            fn()  # warm-up: what a first call sets up once (thread pools, kernels, lazy buffers) stays resident
            drop_gradients(block, x)  # the measured call allocates them, as the model counts
            samples: list[float] = []  # the measured call is the first timed one

            def measured_call() -> None:
                samples.append(_timed(fn, device))

            measured = _cpu_peak_bytes(measured_call) if cpu else cuda_peak_bytes(measured_call, device)
            while sum(samples) < request["budget_s"] * 1e3 and len(samples) < MAX_REPS:
                samples.append(_timed(fn, device))
            timing = Timing.from_samples(samples)
        return _answer("ok", peak_bytes=measured, timing=timing)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return _answer("oom", f"out of memory: {str(error).splitlines()[0][:200]}", peak_bytes=measured)
    finally:
        block = x = grad_output = fn = None
        gc.collect()
        if not cpu:
            torch.cuda.empty_cache()


def main(argv: list[str]) -> int:
    device, threads = torch.device(argv[0]), int(argv[1])
    torch.set_num_threads(threads)
    for line in sys.stdin:
        print(json.dumps(measure(json.loads(line), device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
