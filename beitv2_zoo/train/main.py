"""Command handlers of ``beitv2-zoo train`` / ``beitv2-zoo test`` (their parsers are in :mod:`.commands`)."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..arguments import checked_device


def _configure_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=level, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s" if "RANK" in os.environ
                        else "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("beitv2_zoo").setLevel(level)


def train_command(options: argparse.Namespace) -> int:
    """Handle ``beitv2-zoo train`` (options from :func:`beitv2_zoo.train.commands.train_parser`)."""
    from .config import apply_overrides
    from .recipes import get_recipe, list_recipes

    if options.list:
        for name in list_recipes():
            print(f"{get_recipe(name).task:<13} {name}")
        return 0
    if not options.recipe:
        print("error: give a recipe name (beitv2-zoo train --list shows them)", file=sys.stderr)
        return 2
    recipe = get_recipe(options.recipe)
    overrides = list(options.overrides)
    if options.data:
        overrides.append(f"data_root={options.data}")
    recipe = apply_overrides(recipe, overrides)
    if not recipe.data_root:
        print("error: no data: pass --data DIR", file=sys.stderr)
        return 2
    _configure_logging()
    from .engine import train

    work_dir = options.work_dir or Path("work_dirs") / recipe.name
    final = train(recipe, work_dir, resume=options.resume, resume_from=options.resume_from, stop_at=options.stop_at,
                  device=checked_device(options.device) if options.device else None, progress=not options.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(final if final.is_file() else f"stopped; continue with --resume (checkpoints in {work_dir / 'checkpoints'})")
    return 0


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def test_command(args: argparse.Namespace) -> int:
    """Handle ``beitv2-zoo test``: print (or write) the JSON report (accuracy, or mIoU for a segmenter) on rank 0."""
    _configure_logging()
    from .evaluate import run_test

    report = run_test(args.target, args.data, weights=args.weights, split=args.split, ann_file=args.ann_file,
                      batch_size=args.batch_size, num_workers=args.workers,
                      device=checked_device(args.device) if args.device else None, out=args.out,
                      amp=args.amp, mode=getattr(args, "mode", None),
                      reduce_zero_label=getattr(args, "reduce_zero_label", None))
    if int(os.environ.get("RANK", "0")) == 0:
        if args.out is None:
            print(json.dumps(report, indent=2))
        elif "mIoU" in report:
            print(f"mIoU {_percent(report['mIoU'])}  mAcc {_percent(report['mAcc'])}  aAcc {_percent(report['aAcc'])}  "
                  f"({report['num_images']} images, {report['mode']}) -> {args.out}")
        else:
            print(f"top-1 {report['top1']:.2f}  top-5 {report['top5']:.2f}  ({report['num_images']} images) -> {args.out}")
    return 0
