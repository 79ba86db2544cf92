"""tam.device: one resolver of --device for every command, one description of the machine."""

import os

import pytest
import torch

from tam.bench.runner import environment
from tam.device import cpu_model, device_name, resolve_device
from tam.errors import UserError


def test_resolve_device_names_the_option_in_every_refusal():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match=r"^--device 'gpu0': not a device \(auto, cpu, cuda or cuda:N\)$"):
        resolve_device("gpu0")
    with pytest.raises(UserError, match=r"^device 'meta': tam runs on auto, cpu, cuda or cuda:N$"):
        resolve_device("meta", option="device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(UserError, match=r"--device 'cuda:1': CUDA is not available on this machine"):
        resolve_device("cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_bare_cuda_is_the_local_rank_gpu():
    assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)


def test_the_machine_is_described_once():
    assert device_name("cpu") == f"{cpu_model()} ({os.cpu_count()} logical cores)"
    assert environment("cpu")["device_name"] == device_name("cpu")
