"""Config: defaults are the thesis recipe, YAML then flags override, bad input is a UserError naming the key."""

import argparse

import pytest

from tam.errors import UserError
from tam.train.cli import add_arguments, resolve_config
from tam.train.config import TrainConfig, from_dict, incompatible_keys, load_yaml, to_yaml


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve_config(parser.parse_args(argv))


def test_defaults_are_the_thesis_recipe():
    config = TrainConfig()
    assert (config.lr, config.momentum, config.weight_decay, config.batch_size, config.epochs) == \
        (0.1, 0.9, 5e-4, 128, 300)
    assert (config.schedule, config.milestones, config.gamma) == ("step", [150, 225], 0.1)


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: somewhere\nlr: 0.2\nbatch_size: 256\nattention: tam\nattention_blocks: [0, 1, 1]\n")
    config = parse(["--config", str(path), "--lr", "0.3", "--nesterov", "--attention-options",
                    "normalization=softmax,embed_channels=16", "--limit-train", "512"])
    assert (config.lr, config.batch_size, config.nesterov, config.limit_train) == (0.3, 256, True, 512)
    assert config.attention_blocks == [0, 1, 1]
    assert config.attention_options == {"normalization": "softmax", "embed_channels": 16}
    assert parse(["--data", "x", "--attention-blocks", "1,2,0", "--no-channels-last"]).attention_blocks == [1, 2, 0]


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = from_dict({"data": "d", "attention": "nl", "attention_blocks": [0, 1, 1], "schedule": "cosine"}, "t")
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(config))
    assert from_dict(load_yaml(path), str(path)) == config


@pytest.mark.parametrize("values, words", [
    ({"attention": "sdpa"}, ["attention", "sdpa"]),
    ({"schedule": "linear"}, ["schedule"]),
    ({"batch_size": "many"}, ["batch_size", "many"]),
    ({"epochs": 0}, ["epochs"]),
    ({"learning_rate": 0.1}, ["unknown", "learning_rate"]),
])
def test_bad_values_name_the_key(values, words):
    with pytest.raises(UserError) as error:
        from_dict(values, "my.yaml")
    assert all(word in str(error.value) for word in words + ["my.yaml"])


def test_missing_data_is_refused():
    with pytest.raises(UserError, match="--data"):
        parse([])


def test_incompatible_keys_ignore_resumable_ones():
    stored = from_dict({"data": "d", "model": "preresnet20"}, "t").to_dict()
    current = from_dict({"data": "d", "model": "preresnet20", "epochs": 400, "out": "elsewhere"}, "t")
    assert incompatible_keys(stored, current) == []
    current = from_dict({"data": "d", "model": "preresnet56", "lr": 0.2}, "t")
    assert incompatible_keys(stored, current) == ["lr: 0.1 -> 0.2", "model: 'preresnet20' -> 'preresnet56'"]
    assert TrainConfig(epochs=5).digest() == TrainConfig(epochs=9).digest() != TrainConfig(lr=0.2).digest()


def test_a_key_older_checkpoints_lack_counts_as_its_default():
    stored = from_dict({"data": "d"}, "t").to_dict()
    del stored["crop_padding"]
    assert incompatible_keys(stored, from_dict({"data": "d"}, "t")) == []
    assert incompatible_keys(stored, from_dict({"data": "d", "crop_padding": 2}, "t")) == ["crop_padding: 4 -> 2"]
    with pytest.raises(UserError, match="crop_padding"):
        from_dict({"data": "d", "crop_padding": -1}, "t")
