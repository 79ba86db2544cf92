"""``tam reproduce --preset`` and the preset's experiment: every cell built with the preset's conventions."""

from pathlib import Path

import pytest

from tam.cli import main
from tam.errors import UserError
from tam.reproduce.experiment import load_experiment
from tam.reproduce.runner import cell_config


def test_the_preset_experiment_runs_the_thesis_grid_with_the_preset():
    from tam.layers import AttentionBlock
    from tam.train.model import model_from_config

    experiment = load_experiment("cifar10_icip2022")
    cells = [cell.name for cell in experiment.cells("full")]
    assert cells == ["none", "nl-h1", "nl-h2", "nl-h4", "nl-h8", "tam-h1", "tam-h2", "tam-h4", "tam-h8",
                     "nl-h1-normalization=scale", "nl-h2-normalization=scale", "nl-h4-normalization=scale",
                     "nl-h8-normalization=scale", "cc-h1"]
    for cell in experiment.cells("full"):
        config = cell_config(experiment, "full", cell, 0, "unused", Path("runs"), "cpu")
        assert config.preset == "icip2022" and config.epochs == 300 and config.lr == 0.1
        assert config.batch_size == 128 and config.milestones == [150, 225] and config.weight_decay == 5e-4
        if config.attention in ("nl", "tam"):
            model = model_from_config(config, num_classes=10)
            blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
            expected = [c // 2 if config.heads == 1 else c for c in (128, 256)]
            assert [b.embed_channels for b in blocks] == expected
            assert all(b.pos_encoding_placement == "input" for b in blocks)


def test_preset_flag_applies_to_every_cell_and_refuses_another_preset():
    experiment = load_experiment("cifar10")
    for cell in experiment.cells("smoke"):
        config = cell_config(experiment, "smoke", cell, 0, "unused", Path("runs"), "cpu", preset="icip2022")
        assert config.preset == "icip2022"
    assert cell_config(experiment, "smoke", experiment.cells("smoke")[0], 0, "x", Path("r"), "cpu").preset is None
    preset_experiment = load_experiment("cifar10_icip2022")
    with pytest.raises(UserError, match="--preset other: experiment cifar10_icip2022 sets preset 'icip2022'"):
        cell_config(preset_experiment, "smoke", preset_experiment.cells("smoke")[0], 0, "x", Path("r"), "cpu",
                    preset="other")


@pytest.mark.parametrize(("argv", "message"), [
    (["reproduce", "cifar10", "--preset", "thesis"], "--preset: 'thesis' is not one of icip2022"),
    (["reproduce", "costs", "--preset", "icip2022"], "--preset builds training cells; experiment costs measures"),
])
def test_bad_preset_flags_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_a_cells_cost_is_measured_on_the_preset_network():
    import tam
    from tam.bench.suites import Case
    from tam.bench.workload import build_workload

    case = Case("network", "tam", 8, 32, 3, 2, blocks=2, model="preresnet20", attention_blocks=(0, 1, 1),
                preset="icip2022")
    expected = tam.create_model("preresnet20", attention="tam", heads=8, attention_blocks=(0, 1, 1), preset="icip2022")
    assert build_workload(case).params == sum(p.numel() for p in expected.parameters())
    assert Case.from_dict(case.to_dict()) == case and case.label().endswith("icip2022")
