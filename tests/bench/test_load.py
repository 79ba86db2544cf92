"""The one timing policy: threads from the cores the load leaves free, the choice printed, under load marked."""

import pytest
import torch

from tam.bench import load
from tam.bench.load import ThreadChoice, choose_threads, measured_under_load


@pytest.fixture
def machine(monkeypatch):
    """A fake 2-core machine whose 1-min load average the test sets."""
    state = {"load": 0.0}
    monkeypatch.setattr(load, "load_average", lambda: state["load"])
    monkeypatch.setattr(load, "cores", lambda: 2)
    threads = torch.get_num_threads()
    yield state
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("busy", "threads", "under", "line"), [
    (0.2, 2, False, "tam x: 1-min load average 0.2 on 2 cores (2 free): timing with 2 threads; --threads to choose"),
    (1.1, 1, False, "tam x: 1-min load average 1.1 on 2 cores (1 free): timing with 1 thread; --threads to choose"),
    (2.6, 1, True, "tam x: 1-min load average 2.6 on 2 cores (0 free): timing with 1 thread, under load (costs "
                   "measured now are marked so); --threads to choose"),
])
def test_threads_follow_the_free_cores_and_the_choice_is_printed(machine, capsys, busy, threads, under, line):
    machine["load"] = busy
    choice = choose_threads(None, 2, command="tam x")
    assert (choice.threads, choice.under_load) == (threads, under)
    assert torch.get_num_threads() == threads
    assert capsys.readouterr().err == line + "\n"


def test_asked_threads_are_kept_and_marked_under_load_when_the_cores_are_busy(machine, capsys):
    machine["load"] = 1.8
    choice = choose_threads(2, 2, command="tam x")
    assert choice.threads == 2 and choice.under_load
    assert capsys.readouterr().err.startswith("tam x: 1-min load average 1.8 on 2 cores (as --threads asks): timing "
                                              "with 2 threads, under load")


def test_unknown_load_uses_every_core():
    choice = ThreadChoice(threads=2, asked=None, load=None, cores=2)
    assert choice.free == 2 and not choice.under_load and "load unknown" in choice.describe("tam x")


def test_a_measurement_is_under_load_when_the_run_began_so_or_the_load_exceeds_the_cores():
    assert measured_under_load(2.4, 2, True)
    assert not measured_under_load(2.4, 2, False)  # our own thread plus one other job on 2 cores
    assert measured_under_load(2.6, 2, False)
    assert not measured_under_load(None, 2, False)
