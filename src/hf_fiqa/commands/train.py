"""Training from the command line: ``accelerate launch train.py --config hub_configs/X.yaml [key=value ...]``, or
without the repository's ``train.py``, ``accelerate launch -m hf_fiqa.cli train --config X.yaml [key=value ...]``."""

from __future__ import annotations

import argparse
import difflib
import json
import sys

DESCRIPTION = "Train hf-fiqa models (iqa, fiqa, recognition) with accelerate."
EPILOG = "Overrides use dotted keys, e.g. optim.lr=1e-4 data.root=../shared/data/lfw max_steps=200."


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file (see hub_configs/)")
    parser.add_argument("--resume", help="'latest' or a checkpoint folder")
    parser.add_argument("--output-dir", help="shortcut for output_dir=...")
    parser.add_argument("overrides", nargs="*", help="key=value")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model with accelerate (iqa, fiqa, recognition)",
                                   description=DESCRIPTION, epilog=EPILOG)
    _add_arguments(parser)
    parser.set_defaults(func=lambda args: run(args, []), loads_models=True)


def main(argv: list[str] | None = None) -> int:
    """``train.py``: unknown flags get a hint (devices and precision are accelerate's), not argparse's usage."""
    parser = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION, epilog=EPILOG)
    _add_arguments(parser)
    args, unknown = parser.parse_known_args(argv)
    return run(args, unknown)


def run(args: argparse.Namespace, unknown: list[str]) -> int:
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        print(f"train.py: {_unknown_flag_message(flags[0].split('=', 1)[0])}", file=sys.stderr)
        return 2
    overrides = list(args.overrides) + unknown
    if args.resume:
        overrides.append(f"resume={args.resume}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    from ..training.config import ConfigError, TrainConfig
    from ..training.loop import train

    try:
        config = TrainConfig.from_file(args.config, overrides)

        state = train(config)
    except ConfigError as exc:
        print(f"train.py: config error: {exc}", file=sys.stderr)
        return 2
    summary = {k: state[k] for k in ("global_step", "best_metric", "best_step", "metric")}
    print(json.dumps(summary))
    return 0


_OPTIONS = ("--config", "--resume", "--output-dir", "--help")
_DEVICE_FLAGS = ("--device", "--devices", "--gpu", "--gpus", "--cuda", "--cpu", "--num_processes", "--num-processes",
                 "--multi_gpu", "--multi-gpu", "--local_rank", "--local-rank", "--mixed_precision", "--mixed-precision")


def _unknown_flag_message(flag: str) -> str:
    if flag in _DEVICE_FLAGS:
        hint = ("devices, processes and precision are not options of train.py: accelerate chooses them "
                "(`accelerate launch [--cpu | --multi_gpu --num_processes N] [--mixed_precision bf16] train.py ...`, "
                "`accelerate config`, CUDA_VISIBLE_DEVICES=...); the config key mixed_precision=... also sets precision")
    else:
        close = difflib.get_close_matches(flag, _OPTIONS, n=1, cutoff=0.5)
        hint = (f"did you mean {close[0]}? " if close else "") + "settings are given as key=value (e.g. max_steps=200)"
    return f"unknown option {flag}; train.py takes {', '.join(_OPTIONS)}. {hint}"


if __name__ == "__main__":
    sys.exit(main())
