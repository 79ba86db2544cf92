"""tam: the Transposed Attention Module and its baselines, for convolutional networks."""

__version__ = "0.1.0"
