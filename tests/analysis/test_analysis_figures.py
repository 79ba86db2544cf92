"""Attention map figures read back from their matplotlib objects: a colorbar on every map, diverging and centred
on 0 for signed weights, from 0 for softmax weights."""

import pytest
import torch

from tam.analysis.figures import attention_maps_figure


@pytest.mark.parametrize("signed", [True, False])
def test_every_map_has_its_colorbar_on_the_right_scale(signed):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=generator)
    maps = torch.randn(2, 3, 4, 4, generator=generator)
    maps = maps if signed else maps.softmax(-1)
    figure = attention_maps_figure(images, maps, [0, 5, 15], (4, 4), title="t", signed=signed)
    overlays = [image for axis in figure.axes for image in axis.get_images() if image.colorbar is not None]
    assert len(overlays) == 2 * 3  # every map of every image
    for overlay in overlays:
        low, high = overlay.get_clim()
        if signed:
            assert low == -high and overlay.get_cmap().name == "RdBu_r"  # diverging, 0 in the middle
        else:
            assert low == 0 and high > 0 and overlay.get_cmap().name == "inferno"
        assert overlay.get_array().max() <= high and overlay.get_array().min() >= low
