"""`tam analyze --grid / --trajectory` on constructed run folders whose answer is known.

Non-local softmax with ``geometry="magnitude"`` has logits ``τ|q_i||k_j|``: every row rises with ``|k_j|``, so the
weight a key receives ranks exactly as its norm (ρ(|k|) = 1). TAM ``scale`` with ``geometry="direction"`` has
implied weights ``s·q̂_i·k̂_j``, whose mean over queries is ``s·|m|·cos∠(k_j, m̂)`` with ``m`` the mean query
direction, the very ``q̂`` the alignment is measured against (ρ(cos) = 1). Three seeds (inits) of each, on real
CIFAR-10 test images.
"""

import argparse
import json
import math
import shutil

import pytest
import torch

from tam.analysis import cli
from tam.analysis.intervals import seeds_to_resolve, t_quantile, welch_interval
from tam.analysis.seeds import aggregate, compare
from tam.errors import UserError
from tam.train.checkpoint import save_weights
from tam.train.config import TrainConfig, to_yaml
from tam.train.metrics import MetricsWriter
from tam.train.model import model_from_config

IMAGES = 12
CELLS = {
    "nl-magnitude": dict(attention="nl", attention_options={"geometry": "magnitude"}),
    "tam-direction": dict(attention="tam", attention_options={"geometry": "direction"}),
    "nl-h2": dict(attention="nl", heads=2),  # the thesis's pair: Non-local softmax and TAM scale, full geometry
    "tam-h2": dict(attention="tam", heads=2),
}


def analyze(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([str(a) for a in argv]))


def make_run(folder, data, *, seed, epochs=(1,), keep=True, **fields):
    """A run folder as `tam reproduce` leaves it: config.yaml, metrics and the kept weights (untrained)."""
    fields = {"attention_blocks": [0, 1, 1], **fields}
    config = TrainConfig(data=str(data), model="preresnet20", epochs=max(epochs), seed=seed, out=str(folder), **fields)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(config))
    torch.manual_seed(seed)
    model = model_from_config(config, num_classes=10)
    writer = MetricsWriter(folder)
    for epoch in epochs:
        if epoch > 0:
            writer.log({"epoch": epoch, "test_top1": 10.0 + epoch})
        if keep:
            save_weights(folder, epoch, config.to_dict(), model)
        with torch.no_grad():  # the next kept epoch: sharper projections, larger softmax logits
            for name, parameter in model.named_parameters():
                if name.endswith(("theta.weight", "phi.weight")):
                    parameter.mul_(2)
    writer.close()
    return folder


@pytest.fixture(scope="module")
def grid(tmp_path_factory, cifar10_jpeg):
    root = tmp_path_factory.mktemp("experiment") / "geometry-smoke"
    for cell, fields in CELLS.items():
        for seed in range(2 if cell.endswith("h2") else 3):
            make_run(root / cell / f"seed{seed}", cifar10_jpeg, seed=seed, **fields)
    make_run(root / "none" / "seed0", cifar10_jpeg, seed=0, attention="none", attention_blocks=None)
    make_run(root / "tam-direction" / "seed3", cifar10_jpeg, seed=3, keep=False, **CELLS["tam-direction"])  # running
    shutil.copytree(root / "nl-h2", root / "nl-h2-reused")  # the same runs again (another grid's, reused): once
    return root


@pytest.fixture(scope="module")
def summary(grid, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "geometry"
    assert analyze("--grid", grid, "--out", out, "--images", IMAGES, "--device", "cpu") == 0
    return out, json.loads((out / "geometry.json").read_text())


def test_known_answers_per_cell_and_block(summary):
    _, result = summary
    cells = {c["cell"].split("/")[1]: c for c in result["cells"]}
    assert sorted(cells) == sorted(CELLS)  # `none` and the unfinished seed are left out
    magnitude, direction = cells["nl-magnitude"], cells["tam-direction"]
    assert magnitude["seeds"] == direction["seeds"] == [0, 1, 2] and magnitude["images"] == [IMAGES]
    for cell in (magnitude, direction):
        assert [b["name"] for b in cell["blocks"]] == ["stages.1.attention", "stages.2.attention"]
        assert [b["queries_per_image"] for b in cell["blocks"]] == [256, 64]
    for m, d in zip(magnitude["blocks"], direction["blocks"]):
        assert m["magnitude_correlation"]["values"] == [1.0, 1.0, 1.0] and m["magnitude_correlation"]["std"] == 0
        assert min(d["direction_correlation"]["values"]) > 0.99
        # The ordering: each factor ranks its own cell first, and each cell leans on its own factor.
        assert m["magnitude_correlation"]["mean"] > d["magnitude_correlation"]["mean"]
        assert d["direction_correlation"]["mean"] > m["direction_correlation"]["mean"]
        assert m["magnitude_correlation"]["mean"] > m["direction_correlation"]["mean"]
        assert d["direction_correlation"]["mean"] > d["magnitude_correlation"]["mean"]
        assert "logit_spread" in m and "logit_spread" not in d  # only softmax maps have logits
        assert 0 < m["row_entropy"]["mean"] <= 1


def test_comparison_has_the_expected_sign_and_an_interval(summary):
    _, result = summary
    cells = {c["cell"].split("/")[1]: c for c in result["cells"]}
    for row in compare(cells["nl-magnitude"], cells["tam-direction"], "magnitude_correlation"):
        assert row["difference"] > 0 and row["low"] > 0 and row["verdict"] == "> 0" and row["seeds"] == [3, 3]
    for row in compare(cells["tam-direction"], cells["nl-magnitude"], "direction_correlation"):
        assert row["difference"] > 0 and row["verdict"] == "> 0"
    # The report's own comparison pairs Non-local softmax with TAM scale at equal heads, full geometry only.
    pairs = {(r["a"].split("/")[1], r["b"].split("/")[1]) for r in result["comparisons"]}
    assert pairs == {("nl-h2", "tam-h2")}
    assert {r["statistic"] for r in result["comparisons"]} == {"magnitude_correlation", "direction_correlation"}


def test_every_number_is_traceable_and_the_report_links_it(summary, grid):
    out, result = summary
    for cell in result["cells"]:
        for seed, run, weights in zip(cell["seeds"], cell["runs"], cell["weights"]):
            assert run.endswith(f"{cell['cell'].split('/')[1]}/seed{seed}") and weights == f"{run}/weights/epoch1.pt"
    readme = (out / "README.md").read_text()
    assert "[s0](" in readme and "12 × 256" in readme and "| 1 ep × all |" in readme and "95% Welch" in readme
    assert (out / "seeds.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "records").rglob("*.json"))) == 3 + 3 + 2 + 2


def test_a_rerun_measures_only_what_changed(summary, grid, capsys):
    out, before = summary
    capsys.readouterr()
    assert analyze("--grid", grid, "--out", out, "--images", IMAGES, "--device", "cpu") == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]  # none measured
    assert json.loads((out / "geometry.json").read_text())["cells"] == before["cells"]


def test_trajectory_follows_one_runs_kept_weights(tmp_path, cifar10_jpeg):
    run = make_run(tmp_path / "run", cifar10_jpeg, seed=0, epochs=(0, 1, 2), attention="nl")
    out = tmp_path / "trajectory"
    assert analyze("--trajectory", run, "--out", out, "--images", IMAGES, "--device", "cpu") == 0
    result = json.loads((out / "geometry.json").read_text())
    assert [c["epoch"] for c in result["cells"]] == [[0], [1], [2]]
    spreads = [c["blocks"][0]["logit_spread"]["mean"] for c in result["cells"]]
    assert spreads[0] < spreads[1] < spreads[2]  # projections doubled at each kept epoch
    readme = (out / "README.md").read_text()
    assert "| 0 | – | `stages.1.attention`" in readme and "| 2 | 12.00% |" in readme and "per epoch" in readme
    assert (out / "trajectory.png").read_bytes()[:4] == b"\x89PNG"


def test_user_errors(tmp_path, cifar10_jpeg):
    with pytest.raises(UserError, match="--grid: .* is not a folder"):
        analyze("--grid", tmp_path / "missing", "--out", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="--grid: no finished run"):
        analyze("--grid", tmp_path / "empty", "--out", tmp_path / "o")
    with pytest.raises(UserError, match="lies inside the input"):
        analyze("--grid", tmp_path, "--out", tmp_path / "o")
    run = make_run(tmp_path / "plain", cifar10_jpeg, seed=0, keep=False, attention="nl")
    with pytest.raises(UserError, match="kept no weights"):
        analyze("--trajectory", run, "--out", tmp_path / "o")


def test_welch_interval_on_known_answers():
    assert t_quantile(0.975, 4) == pytest.approx(2.7764451, abs=1e-6)  # tables of Student's t
    assert t_quantile(0.975, 1) == pytest.approx(12.7062047, abs=1e-6)
    assert t_quantile(0.025, 10) == pytest.approx(-2.2281389, abs=1e-6)
    a, b = [0.8, 0.7, 0.9], [0.1, 0.2, 0.0]  # equal variances 0.01: df = 4, half width t·sqrt(2·0.01/3)
    difference = welch_interval(a, b)
    half = 2.7764451 * math.sqrt(2 * 0.01 / 3)
    assert (difference.low, difference.high) == pytest.approx((0.7 - half, 0.7 + half), abs=1e-6)
    assert difference.df == pytest.approx(4) and difference.verdict() == "> 0"
    assert welch_interval([0.1, 0.5], [0.3, 0.2]).verdict() == "not resolved"
    assert welch_interval([0.5], [0.1, 0.2]).low is None



def test_seeds_to_resolve_on_known_answers():
    # Difference 2, both stds 1: n a side gives half width t(0.975, 2n − 2)·sqrt(2/n): 2.27 at n = 3 (t 2.776,
    # df 4), 1.73 at n = 4 (t 2.447, df 6): four seeds a side are the fewest that exclude 0.
    assert seeds_to_resolve([1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]) == 4
    assert seeds_to_resolve([-1.0, 0.0, 1.0], [1.0, 2.0, 3.0]) == 4  # the sign does not matter
    assert seeds_to_resolve([1.01, 2.01, 3.01], [1.0, 2.0, 3.0]) is None  # needs ~77,000 a side: past `most`
    assert seeds_to_resolve([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) is None  # no difference to resolve
    assert seeds_to_resolve([1.0], [0.0, 1.0]) is None

def test_aggregate_keeps_seed_order_and_leaves_std_none_for_one_seed():
    block = {"name": "b", "kind": "nl", "normalization": "softmax", "geometry": "full", "heads": 1,
             "spatial": [8, 8], "queries_per_image": 64}
    records = [{"cell": c, "seed": s, "epoch": 1, "run": f"{c}/seed{s}", "weights": "w", "images": 4,
                "trained": "t", "train_images": None, "top1_on_images": 50.0, "test_top1_logged": None,
                "blocks": [{**block, "magnitude_correlation": v, "direction_correlation": -v}]}
               for c, s, v in (("x", 1, 0.2), ("x", 0, 0.4), ("y", 0, 0.1))]
    x, y = aggregate(records)
    assert x["seeds"] == [0, 1] and x["blocks"][0]["magnitude_correlation"]["values"] == [0.4, 0.2]
    assert x["blocks"][0]["magnitude_correlation"]["mean"] == pytest.approx(0.3)
    assert y["blocks"][0]["direction_correlation"]["std"] is None


def test_an_unresolved_claim_says_how_many_seeds_would_resolve_it():
    from tam.analysis.seeds_report import _verdicts

    a, b = [1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]  # 4 seeds a side would resolve (test above)
    rows = [dict(compare({"cell": "nl", "blocks": [{"name": name, "magnitude_correlation": {"values": x}}]},
                         {"cell": "tam", "blocks": [{"name": name, "magnitude_correlation": {"values": y}}]})[0])
            for name, x, y in [("s2", a, b), ("s3", [5.0, 5.1, 5.2], b), ("s4", [1.01, 2.01, 3.01], [1.0, 2.0, 3.0])]]
    (line,) = _verdicts({"comparisons": rows})
    assert "**not resolved at this budget**" in line
    assert "seeds a side: `s2` 4; `s4` more than 100 (" in line  # s3 is resolved: not named
