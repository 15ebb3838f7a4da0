"""``hf-fiqa convert MODEL SRC DST``: official checkpoints -> saved hf-fiqa model folders."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

# Each model family adds its converter here: name -> (add arguments, run).
CONVERTERS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def _maniqa_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--feature-layers", default="6,7,8,9",
                        help="ViT blocks feeding the model (cannot be read off the weights); default: the paper's")
    parser.add_argument("--swin-residual-scale", type=float, default=0.8,
                        help="0.8 in the paper; some released checkpoints use 0.13")
    parser.add_argument("--backbone-num-heads", type=int, default=None,
                        help="ViT heads (default: width / 64, true for standard ViTs)")
    parser.add_argument("--policy", default="resize", choices=["resize", "center_crop", "five_crop", "grid"],
                        help="test-time view policy written to preprocessor_config.json")


def _maniqa_run(args: argparse.Namespace) -> int:
    from .maniqa.convert_maniqa import CheckpointError, convert_maniqa_checkpoint

    overrides = {} if args.backbone_num_heads is None else {"backbone_num_heads": args.backbone_num_heads}
    try:
        model = convert_maniqa_checkpoint(
            args.src, args.dst, feature_layers=[int(i) for i in args.feature_layers.split(",")],
            swin_residual_scale=args.swin_residual_scale, policy=args.policy, **overrides)
    except (CheckpointError, ValueError) as exc:
        print(f"hf-fiqa convert maniqa: {exc}", file=sys.stderr)
        return 2
    print(f"converted {args.src} -> {args.dst} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return 0


def _musiq_arguments(parser: argparse.ArgumentParser) -> None:
    from .musiq.convert_musiq import add_cli_arguments

    add_cli_arguments(parser)


def _musiq_run(args: argparse.Namespace) -> int:
    from .musiq.convert_musiq import run_cli

    return run_cli(args)


CONVERTERS["maniqa"] = (_maniqa_arguments, _maniqa_run)
CONVERTERS["musiq"] = (_musiq_arguments, _musiq_run)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert an official checkpoint into a saved hf-fiqa model folder")
    models = parser.add_subparsers(dest="model", required=True)
    for name, (add_arguments, run) in CONVERTERS.items():
        sub = models.add_parser(name, help=f"{name} checkpoint in the official key layout")
        sub.add_argument("src", help="checkpoint file (.pth/.pt/.bin/.safetensors read with weights_only=True; MUSIQ: official .npz)")
        sub.add_argument("dst", help="output folder (save_pretrained layout)")
        add_arguments(sub)
        sub.set_defaults(func=run)
    from .recognition_commands import register_convert

    register_convert(models)
