"""The magnitude/direction ablation configs: every geometry × normalization, each a valid `tam train` config."""

from pathlib import Path

import torch

from tam.analysis.model import model_from_config
from tam.layers import NonLocal
from tam.train.config import from_dict, load_yaml

ABLATION = Path(__file__).resolve().parents[2] / "configs" / "ablation"


def test_the_grid_is_complete_and_every_config_builds_its_model():
    seen = set()
    for path in sorted(ABLATION.glob("*.yaml")):
        config = from_dict(load_yaml(path), source=str(path))
        options = config.attention_options
        seen.add((options["geometry"], options["normalization"]))
        assert path.stem == f"nl-{options['geometry']}-{options['normalization']}"
        assert config.out.endswith(path.stem) and config.epochs == 300 and config.model == "preresnet56"
        model = model_from_config(config, num_classes=10)
        blocks = [m for m in model.modules() if isinstance(m, NonLocal)]
        assert len(blocks) == 2
        assert all((b.geometry, b.normalization) == (options["geometry"], options["normalization"]) for b in blocks)
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 32, 32)).isfinite().all()
    assert seen == {(g, n) for g in ("full", "magnitude", "direction") for n in ("softmax", "scale")}
