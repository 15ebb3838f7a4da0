"""Training behind ``train.py``: configs, task definitions and the accelerate loop."""

from .config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig", "train"]


def train(config: TrainConfig) -> dict:
    from .loop import train as _train

    return _train(config)
