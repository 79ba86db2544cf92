"""`tam reproduce`: grids from experiment files, resumable runs, and tables traceable to run folders."""

import json
import re
from pathlib import Path

import pytest

from data.tam_data_builders import cifar10_files, write
from tam.cli import build_parser, main
from tam.errors import UserError
from tam.reproduce.experiment import experiment_names, load_experiment


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """A 200-image CIFAR-10 in the official python format (random pixels), and a private cache dir."""
    monkeypatch.setenv("TAM_CACHE_DIR", str(tmp_path / "cache"))
    files, _ = cifar10_files(per_batch=40, test=100)
    return write(files, tmp_path / "cifar-10-python.tar.gz", kind="tar.gz")


def test_smoke_budget_runs_and_tabulates_every_cell(tiny_cifar10, tmp_path, capsys, monkeypatch):
    from tam.bench import load

    # Another process holds both cores of a 2-core machine (acceptance 5 of issue #18): the cost step must say
    # how it chose its threads, mark its times, and state no claim its numbers cannot resolve.
    monkeypatch.setattr(load, "load_average", lambda: 3.0)
    monkeypatch.setattr(load, "cores", lambda: 2)
    choice = "tam reproduce (cost step): 1-min load average 3.0 on 2 cores (0 free): timing with 1 thread, under load"
    out = tmp_path / "experiment"
    args = ["reproduce", "cifar10", "--budget", "smoke", "--data", str(tiny_cifar10), "--out", str(out),
            "--device", "cpu"]
    assert main(args) == 0
    assert choice in capsys.readouterr().err
    table = (out / "README.md").read_text()
    cells = [cell.name for cell in load_experiment("cifar10").cells("smoke")]
    assert cells == ["none", "nl-h1", "nl-h8", "tam-h1", "tam-h8", "cc-h1", "xca-h8", "ea-h8", "linear-h8", "gc-h8"]
    rows = re.findall(r"^\| (\S+) \| ([\d.]+) \| [^|]+ \| [^|]+ \| ([\d.]+) \| 1 \| (\d+) \| [\d.]+M \|", table,
                      flags=re.M)
    assert [row[0] for row in rows] == cells
    for cell, top1_error, _, test_images in rows:  # every number traceable to its run folder
        results = json.loads((out / cell / "seed0" / "results.json").read_text())
        assert float(top1_error) == pytest.approx(100 - results["final_top1"], abs=0.005)
        assert int(test_images) == results["final_test_images"]
        cost = json.loads((out / cell / "cost.json").read_text())
        if cell != "none":  # timed interleaved with the backbone; the table quotes that ratio and its quartiles
            assert cost["paired_reference"].startswith("network none ") and cost["paired_ratio"] > 0
            assert re.search(rf"^\| {cell} \|.*\| {cost['paired_ratio']:.2f}× \[[\d.]+–[\d.]+\]", table, flags=re.M)
    assert "1 head(s): TAM ≥ Non-local in accuracy" in table and "8 head(s)" in table
    assert "| none | " in table and "| 1.00× *under load* | 1.00× |" in table
    assert "Step times marked *under load* were measured with more torch threads" in table
    for line in table.split("## What this budget shows")[1].splitlines():
        if "one training step took" in line:  # a speed reading only where its quartile range allows one
            low, high, reading = re.search(r"quartile range ([\d.]+)–([\d.]+): ([^)]+)\)", line).groups()
            expected = ("TAM faster" if float(low) > 1 else "TAM slower" if float(high) < 1
                        else "speed difference not resolved")
            assert reading == expected and line.endswith("measured under load."), line
    assert (out / "accuracy.png").is_file() and (out / "accuracy_cost.png").is_file()

    # A second call without --resume refuses to mix experiments; with --resume everything is skipped.
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr()
    assert printed.out.count("finished, skipped") == len(cells) and choice in printed.err
    assert (out / "README.md").read_text() == table


def test_missing_data_says_how_to_get_it(tmp_path, capsys):
    assert main(["reproduce", "cifar100", "--budget", "smoke", "--out", str(tmp_path / "x")]) == 2
    message = capsys.readouterr().err
    assert "cifar100 of experiment cifar100 is not present" in message
    assert "--data PATH" in message and "tam data download cifar100 --dir DIR" in message
    build_parser().parse_args(["data", "download", "cifar100", "--dir", "DIR"])  # the advice parses


def test_every_experiment_file_expands_for_every_budget():
    assert {"cifar10", "cifar100", "tinyimagenet", "geometry", "costs"} <= set(experiment_names())
    for name in experiment_names():
        experiment = load_experiment(name)
        if experiment.bench is None:
            for budget in ("smoke", "cpu", "full"):
                assert experiment.cells(budget)
    geometry = [cell.name for cell in load_experiment("geometry").cells("full")]
    assert "tam-h1-geometry=direction" in geometry  # options at the layer's defaults are left out of the name
    assert "nl-h1" in geometry and "nl-h1-normalization=scale" in geometry
    assert "tam-h1-normalization=softmax-geometry=magnitude" not in geometry  # a dead block: refused


def test_unknown_experiment_and_budget():
    with pytest.raises(UserError, match="no experiment 'cifar11'; known: .*cifar10"):
        load_experiment("cifar11")
    with pytest.raises(UserError, match="--budget: 'huge' is not one of smoke, cpu, gpu, full"):
        load_experiment("cifar10").cells("huge")


def test_geometry_ablation_cells_build_the_blocks_they_name():
    import torch

    from tam.train.model import model_from_config
    from tam.layers import AttentionBlock
    from tam.reproduce.runner import cell_config

    experiment = load_experiment("geometry")
    seen = set()
    for cell in experiment.cells("full"):
        config = cell_config(experiment, "full", cell, 0, "unused", Path("runs"), "cpu")
        model = model_from_config(config, num_classes=10)
        blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
        assert len(blocks) == 2 and config.epochs == 300 and config.model == "preresnet56"
        options = config.attention_options
        geometry = options.get("geometry", "full")
        normalization = options.get("normalization", {"nl": "softmax", "tam": "scale"}[config.attention])
        assert all((b.geometry, b.normalization) == (geometry, normalization) for b in blocks)
        seen.add((config.attention, geometry, normalization))
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, 32, 32)).isfinite().all()
    every = {(kind, g, n) for kind in ("nl", "tam") for g in ("full", "magnitude", "direction")
             for n in ("softmax", "scale")}
    assert seen == every - {("tam", "magnitude", "softmax")}


def _experiment_file(path, grid):
    budget = {"model": "preresnet20", "epochs": 1, "limit_train": 100, "limit_test": 50, "final_test_full": True,
              "keep_weights": [1], "batch_size": 50, "seeds": 1}
    text = json.dumps({"title": path.stem, "dataset": "cifar10", "train": {"attention_blocks": [0, 0, 1]},
                       "grid": grid, "budgets": {"smoke": budget}})
    path.write_text(text)  # JSON is YAML
    return str(path)


def test_full_final_test_kept_weights_and_reuse_across_experiments(tiny_cifar10, tmp_path, capsys):
    from tam.train.checkpoint import load_checkpoint
    from tam.train.config import from_dict
    from tam.train.model import model_from_config

    main_grid = _experiment_file(tmp_path / "main.yaml", [{"attention": ["none", "nl"]}])
    ablation = _experiment_file(tmp_path / "ablation.yaml", [{"attention": ["nl"], "attention_options": [
        {"normalization": "softmax", "geometry": "full"}, {"geometry": "direction"}]}])
    common = ["--budget", "smoke", "--data", str(tiny_cifar10), "--device", "cpu"]
    first, second = tmp_path / "main-smoke", tmp_path / "ablation-smoke"
    assert main(["reproduce", main_grid, "--out", str(first), *common]) == 0

    results = json.loads((first / "nl-h1" / "seed0" / "results.json").read_text())
    epochs = [json.loads(line) for line in (first / "nl-h1" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert results["final_test_images"] == 100 and epochs[-1]["test_images"] == 50  # whole split vs subset
    weights = load_checkpoint(first / "nl-h1" / "seed0" / "weights" / "epoch1.pt")
    assert set(weights) == {"format", "epoch", "config", "model"} and weights["epoch"] == 1
    model = model_from_config(from_dict(weights["config"], source="kept weights"), num_classes=10)
    model.load_state_dict(weights["model"])  # strict: the kept config rebuilds the very model

    # The ablation's softmax/full cell is the main grid's nl-h1: read from there, not trained again.
    capsys.readouterr()
    assert main(["reproduce", ablation, "--out", str(second), "--reuse", str(first), *common]) == 0
    assert capsys.readouterr().out.count(": training") == 1
    assert not (second / "nl-h1").exists() and (second / "nl-h1-geometry=direction" / "seed0" / "weights").is_dir()
    table = (second / "README.md").read_text()
    assert "[seed0](../main-smoke/nl-h1/seed0/results.json)" in table

    # --table-only trains nothing and rewrites the same table from what is there.
    (second / "README.md").unlink()
    assert main(["reproduce", ablation, "--out", str(second), "--reuse", str(first), "--table-only", *common]) == 0
    assert ": training" not in capsys.readouterr().out and (second / "README.md").read_text() == table


def test_geometry_cpu_budget_shares_its_full_geometry_runs_with_cifar10():
    from tam.reproduce.runner import cell_config

    def configs(name):
        experiment = load_experiment(name)
        return {cell.name: cell_config(experiment, "cpu", cell, 0, "data", Path("out"), "cpu")
                for cell in experiment.cells("cpu")}

    cifar10, geometry = configs("cifar10"), configs("geometry")
    assert set(cifar10) & set(geometry) == {"nl-h1", "tam-h1"}
    for name in ("nl-h1", "tam-h1"):
        assert geometry[name] == cifar10[name]
    assert cifar10["none"].final_test_full and cifar10["none"].keep_weights == [cifar10["none"].epochs]
    assert load_experiment("cifar10").seeds("cpu") >= 3


def test_gpu_script_smoke_runs_on_cpu_and_a_second_call_continues(tiny_cifar10, tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "DATA": str(tiny_cifar10)}

    def call():
        return subprocess.run(["bash", str(root / "scripts" / "gpu_reproduce.sh"), "--smoke"], env=env,
                              capture_output=True, text=True, timeout=900)

    first = call()
    assert first.returncode == 0, first.stderr[-2000:]
    sizing = json.loads((out / "epochs.json").read_text())
    assert sizing["epochs"] == 1 and sizing["fits"] >= 1 and sizing["runs"] == 4  # measured, capped at the budget's
    for cell in ("none", "nl-h1", "tam-h1", "xca-h1"):
        config = (out / cell / "seed0" / "config.yaml").read_text()
        assert "model: preresnet56" in config and "channels_last: true" in config
        assert (out / cell / "seed0" / "weights" / "epoch1.pt").is_file()
    assert "| tam-h1 |" in (out / "README.md").read_text()
    second = call()
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("finished, skipped") == 4
    budget = load_experiment("cifar10").base_config("gpu")  # what the GPU runs that the smoke leaves out
    assert (budget["model"], budget["amp"]) == ("preresnet56", "bf16")


def test_time_budget_plans_epochs_from_measured_steps(monkeypatch, tmp_path):
    from tam.reproduce import sizing
    from tam.train.config import TrainConfig

    config = TrainConfig(batch_size=100, limit_train=1000, limit_test=200, final_test_full=True, epochs=300)
    # 3 runs: 2 s of first steps each; 0.1 s a step: an epoch is 10 steps + 2 test batches at 1/3 = 1.0667 s a run.
    # The final test on 500 images: 5 batches at 1/3 step. Fixed: 3 * (2 + 5/3 * 0.1) = 6.5 s.
    monkeypatch.setattr(sizing, "grid_seconds", lambda configs: (6.5, 3 * 0.1 * (10 + 2 / 3)))
    assert sizing.run_seconds(config, sizing.StepCost(2.0, 0.1), 1000, 200, 500) == pytest.approx(
        (2.0 + 0.1 * 5 / 3, 0.1 * (10 + 2 / 3)))
    started = __import__("time").monotonic()
    epochs = sizing.planned_epochs(tmp_path, [config] * 3, 100.0, started)
    assert epochs == int((100.0 * sizing.SAFETY - 6.5) / 3.2)  # within a second of start: ~25
    monkeypatch.setattr(sizing, "grid_seconds", lambda configs: pytest.fail("a resumed call must not measure"))
    assert sizing.planned_epochs(tmp_path, [config] * 3, 5.0, started) == epochs  # kept in epochs.json
    with pytest.raises(UserError, match="cannot hold one epoch"):
        monkeypatch.setattr(sizing, "grid_seconds", lambda configs: (6.5, 3.2))
        sizing.planned_epochs(tmp_path / "other", [config] * 3, 8.0, started)


def test_jobs_train_runs_side_by_side_and_a_failure_is_raised(tiny_cifar10, tmp_path, capfd):
    from tam.reproduce.runner import is_finished, run_training
    from tam.train.config import from_dict

    grid = _experiment_file(tmp_path / "main.yaml", [{"attention": ["none", "tam"]}])
    out = tmp_path / "main-smoke"
    args = ["reproduce", grid, "--out", str(out), "--budget", "smoke", "--data", str(tiny_cifar10),
            "--device", "cpu"]
    assert main([*args, "--jobs", "2"]) == 0
    printed = capfd.readouterr().out
    assert printed.count(": training") == 2
    epochs = [line for line in printed.splitlines() if "epoch 1/1" in line]
    assert sorted(line.split()[0] for line in epochs) == ["[1/2]", "[2/2]"]  # which run each line is from
    assert all((out / cell / "seed0" / "results.json").is_file() for cell in ("none", "tam-h1"))
    assert main([*args, "--jobs", "2", "--resume"]) == 0 and ": training" not in capfd.readouterr().out

    good = from_dict({"data": str(tiny_cifar10), "out": str(tmp_path / "good"), "model": "preresnet20",
                      "epochs": 1, "limit_train": 50, "limit_test": 50, "batch_size": 50, "device": "cpu"}, "test")
    bad = from_dict({**good.to_dict(), "data": str(tmp_path / "missing.tar.gz"), "out": str(tmp_path / "bad")},
                    "test")
    with pytest.raises(UserError, match="missing.tar.gz"):
        run_training([bad, good], jobs=2)
    assert is_finished(good)  # the run in flight beside the failed one finished


def test_jobs_is_checked():
    assert main(["reproduce", "cifar10", "--budget", "smoke", "--jobs", "0", "--out", "/nonexistent/x"]) == 2
    assert main(["reproduce", "cifar10", "--budget", "smoke", "--jobs", "2", "--time-budget", "60",
                 "--out", "/nonexistent/x"]) == 2


def test_jobs_end_with_their_parent(tiny_cifar10, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    grid = _experiment_file(tmp_path / "main.yaml", [{"attention": ["none", "tam"]}])
    text = json.loads(Path(grid).read_text())
    text["budgets"]["smoke"]["epochs"] = 200  # still training when the parent is killed
    Path(grid).write_text(json.dumps(text))
    out = tmp_path / "main-smoke"
    src = str(Path(__file__).resolve().parents[2] / "src")
    parent = subprocess.Popen([sys.executable, "-m", "tam.cli", "reproduce", grid, "--out", str(out), "--budget",
                               "smoke", "--data", str(tiny_cifar10), "--device", "cpu", "--jobs", "2"],
                              env={**os.environ, "PYTHONPATH": src, "TAM_CACHE_DIR": str(tmp_path / "cache")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    deadline = time.monotonic() + 120
    while not all((out / cell / "seed0" / "checkpoint.pt").is_file() for cell in ("none", "tam-h1")):
        assert parent.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)

    def alive() -> list[int]:
        return [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "spawn" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]

    deadline = time.monotonic() + 20
    try:
        while alive():
            assert time.monotonic() < deadline, "a training process outlived its killed parent"
            time.sleep(0.2)
    finally:
        for pid in alive():
            os.kill(pid, signal.SIGKILL)
