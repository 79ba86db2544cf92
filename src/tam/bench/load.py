"""The one timing policy of every command that times (``tam bench``, ``tam data bench``, ``tam reproduce``'s
cost step): read the machine's load before timing, give torch as many threads as the cores the load leaves
free (at least one), print that choice, and mark what was measured under load.

Threads of one op wait for each other at its end: with more threads than free cores, each op waits for a
descheduled thread's next time slice, and times come out in multiples of it (a ``preresnet20`` step with two
threads beside another job took 5× as long as with one). A cost measured while other work held the cores it
needed is *under load*: it can be several times the machine's real cost, and tables say so.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


def load_average() -> float | None:
    """The 1-minute load average (runnable and running threads of every process), ``None`` where unknown."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def load_averages() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, rounded to 0.01, ``None`` where unknown (for a result's record)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cores() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    """How many torch threads a timing command runs with, and why.

    Attributes:
        threads: the torch intra-op threads chosen.
        asked: the threads the user asked for (``--threads``), or ``None``.
        load: the 1-min load average read before timing (``None`` where the system does not say).
        cores: the machine's logical cores.
    """

    threads: int
    asked: int | None
    load: float | None
    cores: int

    @property
    def free(self) -> int:
        """Cores the load leaves free (all of them where the load is unknown)."""
        return self.cores if self.load is None else max(0, round(self.cores - self.load))

    @property
    def under_load(self) -> bool:
        """More threads than free cores: the timings will share cores with other work."""
        return self.threads > self.free

    def describe(self, command: str) -> str:
        """The line the command prints before timing, e.g. ``tam bench: load 2.6 on 2 cores, 0 free: timing
        with 1 thread, under load (its costs are marked so; --threads to choose)``."""
        load = "load unknown" if self.load is None else f"1-min load average {self.load:.1f} on {self.cores} cores"
        why = "as --threads asks" if self.asked else f"{self.free} free"
        noun = "thread" if self.threads == 1 else "threads"
        state = (", under load (costs measured now are marked so)" if self.under_load else "")
        hint = "" if self.asked else "; --threads to choose"
        return f"{command}: {load} ({why}): timing with {self.threads} {noun}{state}{hint}"


def choose_threads(asked: int | None, default: int, *, command: str, announce: bool = True) -> ThreadChoice:
    """Choose and set torch's threads for timing: ``asked`` if given, else ``default`` capped by the free cores.

    Args:
        asked: the user's ``--threads`` (``None``: choose).
        default: the threads without load (e.g. ``torch.get_num_threads()`` at start).
        command: the command's name for the printed line.
        announce: print the choice on stderr.
    """
    import torch

    load, count = load_average(), cores()
    free = count if load is None else max(0, round(count - load))
    choice = ThreadChoice(threads=asked or max(1, min(default, free)), asked=asked, load=load, cores=count)
    torch.set_num_threads(choice.threads)
    if announce:
        print(choice.describe(command), file=sys.stderr, flush=True)
    return choice


def measured_under_load(load_now: float | None, cores: int, started_under_load: bool) -> bool:
    """Whether a measurement ending now was taken under load: the run began with more threads than free cores,
    or the load average (which counts this process's own threads too) now exceeds the cores by half a core."""
    return started_under_load or (load_now is not None and load_now > cores + 0.5)
