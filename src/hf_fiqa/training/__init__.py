"""Training: configs, task definitions and the one accelerate loop (``train.py``, ``hf-fiqa train``, the recipes)."""

from .config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig", "train"]


def train(config: TrainConfig, task=None) -> dict:
    """Run (or resume) training; see :func:`hf_fiqa.training.loop.train`."""
    from .loop import train as _train

    return _train(config, task)
