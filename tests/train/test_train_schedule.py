"""Learning-rate schedules: the thesis steps, warm-up, cosine to zero; per optimizer step."""

import math

import pytest
import torch

from tam.train.config import TrainConfig
from tam.train.schedule import build_scheduler, lr_factor


def test_step_schedule_of_the_thesis():
    factor = lr_factor(TrainConfig(), steps_per_epoch=10)
    assert factor(0) == 1.0
    assert factor(150 * 10 - 1) == 1.0
    assert factor(150 * 10) == pytest.approx(0.1)
    assert factor(225 * 10) == pytest.approx(0.01)


def test_cosine_with_warmup():
    factor = lr_factor(TrainConfig(schedule="cosine", epochs=10, warmup_epochs=2), steps_per_epoch=5)
    assert [factor(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factor(10) == 1.0
    assert factor(30) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(50) == pytest.approx(0.0)


def test_scheduler_steps_the_optimizer_and_its_state_is_plain():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.4)
    scheduler = build_scheduler(optimizer, TrainConfig(schedule="cosine", epochs=2, lr=0.4, warmup_epochs=1), 4)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert lrs[4] == pytest.approx(0.4) and lrs[7] < lrs[5]
    state = scheduler.state_dict()
    assert all(entry is None for entry in state["lr_lambdas"])
