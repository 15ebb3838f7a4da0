"""Command line of ``train.py``: ``accelerate launch train.py --config hub_configs/X.yaml [key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train.py", description="Train hf-fiqa models (iqa, fiqa, recognition) with accelerate.",
        epilog="Overrides use dotted keys, e.g. optim.lr=1e-4 data.root=../shared/data/lfw max_steps=200.")
    parser.add_argument("--config", help="YAML file (see hub_configs/)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder")
    parser.add_argument("--output-dir", help="shortcut for output_dir=...")
    parser.add_argument("overrides", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.resume:
        overrides.append(f"resume={args.resume}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    try:
        config = TrainConfig.from_file(args.config, overrides)
        from .loop import train

        state = train(config)
    except ConfigError as exc:
        print(f"train.py: config error: {exc}", file=sys.stderr)
        return 2
    summary = {k: state[k] for k in ("global_step", "best_metric", "best_step", "metric")}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
