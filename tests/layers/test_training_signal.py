"""On real CIFAR-10 images, two SGD steps wake every parameter of every layer: no dead blocks."""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from devices import DEVICE, needs_values
from layer_cases import CONFIGS, IDS, build

pytestmark = needs_values


@pytest.fixture(scope="module")
def real_batch(cifar10_jpeg):
    """The first 32 training images of the shared archive, decoded here: x [32, 3, 32, 32] in 0..1, labels."""
    images, labels = [], []
    with tarfile.open(cifar10_jpeg, "r:gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and "train" in parts and member.name.endswith(".jpg"):
                data = archive.extractfile(member).read()
                images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
                labels.append(parts[-2])
                if len(images) == 32:
                    break
    classes = sorted(set(labels))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return x.to(DEVICE), torch.tensor([classes.index(label) for label in labels], device=DEVICE)


@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_two_sgd_steps_give_every_parameter_a_gradient(kind, options, real_batch):
    x, y = real_batch
    torch.manual_seed(0)
    stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    layer = build(kind, options, channels=8, dtype=torch.float32)
    head = torch.nn.Linear(8, 10)
    model = torch.nn.Sequential(stem, layer, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    trainable = [(name, p) for name, p in layer.named_parameters() if p.requires_grad]  # gc freezes its Wθ
    dead = [name for name, p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient after two steps: {dead}"
