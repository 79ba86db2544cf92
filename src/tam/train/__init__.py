"""Training: ``TrainConfig`` (the thesis recipe by default) and ``train(config)``, resumable and distributed."""

from tam.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    # ``train`` pulls in torch; importing it lazily keeps ``tam --help`` (which imports tam.train.cli) fast.
    if name == "train":
        from tam.train.loop import train

        return train
    raise AttributeError(f"module 'tam.train' has no attribute {name!r}")
