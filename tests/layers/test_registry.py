"""One registry of attention kinds: a kind registered at runtime reaches every consumer."""

import argparse

import pytest
import torch

import tam
from tam.cli import build_parser, main
from tam.layers import ATTENTION_REGISTRY, AttentionBlock, AttentionKind, attention_kinds, register_attention


class Toy(AttentionBlock):
    """A kind made up for the test: ``a = gain · v``."""

    def __init__(self, channels, *, gain: float = 1.0, **shell):
        super().__init__(channels, **shell)
        self.gain = gain

    def _core(self, q, k, v, spatial):
        return self.gain * v

    def _spatial_map(self, q, k, spatial, queries):
        raise ValueError("Toy has no spatial weights")


@pytest.fixture
def toy():
    kind = register_attention(AttentionKind("toy", Toy, "a test kind"))
    yield kind
    del ATTENTION_REGISTRY["toy"]


def _choices(parser: argparse.ArgumentParser, command: str, flag: str):
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return next(a for a in sub._actions if flag in a.option_strings).choices


def test_a_kind_registered_at_runtime_reaches_factory_train_and_models(toy, capsys):
    layer = tam.create_attention("toy", 8, gain=2.0)
    assert isinstance(layer, Toy) and layer.gain == 2.0
    assert "toy" in attention_kinds()
    parser = build_parser()
    assert "toy" in _choices(parser, "train", "--attention")
    assert "toy" in _choices(parser, "models", "--attention")
    assert "toy" in _choices(parser, "bench", "--kinds")
    assert main(["models", "preresnet20", "--attention", "toy", "--heads", "2"]) == 0
    assert "1×toy (C=32, h=2)" in capsys.readouterr().out
    from tam.train.config import TrainConfig

    assert TrainConfig(attention="toy").attention == "toy"


def test_the_registry_refuses_duplicates_and_non_layers():
    with pytest.raises(ValueError, match="'tam' is already registered"):
        register_attention(AttentionKind("tam", Toy, "again"))
    with pytest.raises(TypeError, match="must be an AttentionBlock subclass"):
        register_attention(AttentionKind("plain", torch.nn.Identity, "not a block"))


def test_unknown_kinds_are_named_with_the_choices():
    with pytest.raises(ValueError, match=r"kind must be one of \('tam', 'nl', 'cc'.*got 'sam'"):
        tam.create_attention("sam", 8)


def test_every_consumer_lists_the_same_kinds():
    from tam.bench.suites import bench_kinds

    parser = build_parser()
    assert _choices(parser, "train", "--attention") == attention_kinds(include_none=True)
    assert tuple(_choices(parser, "models", "--attention")) == attention_kinds()
    assert {kind for kind, _ in bench_kinds().values()} == set(attention_kinds(benchmark=True))
