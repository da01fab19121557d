"""The ``train`` and ``test`` commands' parsers and handlers (``beitv2-zoo train|test`` and ``python -m beitv2_zoo.train``).

Both run as-is on one CPU/GPU and under ``torchrun`` (``torchrun --nproc_per_node=8 -m beitv2_zoo
train RECIPE --data DIR``). The training code (:mod:`beitv2_zoo.train`) is imported only
inside the handlers, so that ``beitv2-zoo --help`` starts without torch. ``train`` takes ``key=value`` recipe overrides anywhere on its command
line, so its own arguments are parsed by :func:`train_parser` (argparse's intermixed mode).
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..arguments import USAGE_EXIT, OneLineParser, UsageError, non_negative_int, positive_int

EPILOG = """examples:
  beitv2-zoo train --list
  beitv2-zoo train beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k --data data/imagenet
  beitv2-zoo train beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k --data data/imagenet batch_size=128 accum_steps=2 --resume
  torchrun --nproc_per_node=8 -m beitv2_zoo train RECIPE --data data/imagenet --work-dir work_dirs/run1
  beitv2-zoo train examples/reproduction/recipes/tiny_p4_digits_teacher.py --data work_dirs/digits_reproduction/data/teacher

RECIPE is a published recipe's name (--list), a .py file defining RECIPE (a dataclass of
beitv2_zoo.train.config, e.g. the CPU reproduction's in examples/reproduction/recipes/), a
recipe.json, or a run folder (its recipe.json). Other runs are referred to by weight specs:
pretrained=, tokenizer= or teacher= take a registered name, a file or a run folder.
"""


TEST_EPILOG = """examples:
  beitv2-zoo test beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k --data data/imagenet
  beitv2-zoo test work_dirs/my_finetune_run --data data/imagenet --out report.json
  beitv2-zoo test beitv2_base_patch16_224_pt1k_ftade20k --data data/ade/ADEChallengeData2016
  torchrun --nproc_per_node=8 -m beitv2_zoo test beitv2_base_patch16_224_pt1k_ftade20k --data data/ade/ADEChallengeData2016 --mode slide

A segmenter's report has mIoU, mAcc, aAcc and per-class IoU / Acc in percent, measured on every
label map at its original size (mmsegmentation's protocol); under torchrun the images are split
over the ranks and the per-class areas summed.
"""


def train_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``beitv2-zoo train`` (used with ``parse_intermixed_args``)."""
    parser = OneLineParser(
        prog="beitv2-zoo train", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Train a recipe (VQ-KD tokenizer, MIM pretraining, fine-tuning or linear probing) on one "
                    "process or under torchrun; key=value arguments override recipe fields.")
    parser.add_argument("recipe", nargs="?",
                        help="a recipe name (see --list), a recipe .py file, or a run folder / recipe.json to reuse")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. lr=1e-3 batch_size=64")
    parser.add_argument("--data", help="data root: DIR/train and DIR/val ImageFolders (or the recipe's ann_file lists)")
    parser.add_argument("--work-dir", type=Path, help="output folder (default work_dirs/RECIPE)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest complete checkpoint in the work folder (fresh start if none)")
    parser.add_argument("--resume-from", type=Path, help="continue from this checkpoint folder")
    parser.add_argument("--stop-at", type=int, default=0, metavar="STEP",
                        help="stop with a checkpoint after this optimizer step (continue later with --resume)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (JSON log lines still go to stderr)")
    parser.add_argument("--list", action="store_true", help="list the published recipes and exit")
    return parser


def register(commands: argparse._SubParsersAction) -> None:
    # '+' as prefix: every token (options included) reaches the handler, which parses them intermixed.
    train = commands.add_parser("train", help="train a recipe (beitv2-zoo train --help)", add_help=False, prefix_chars="+")
    train.add_argument("argv", nargs=argparse.REMAINDER)
    train.set_defaults(handler=run_train, log_info=1)

    test = commands.add_parser(
        "test", help="accuracy of a classifier on an image folder, or mIoU of a segmenter on an ADE20K-layout "
                     "folder, as JSON", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TEST_EPILOG)
    test.add_argument("target", help="a registered model name, a recipe name or .py file (with --weights), "
                                     "a training run folder, or a segmentation checkpoint file")
    test.add_argument("--data", required=True,
                      help="data root: DIR/SPLIT (or DIR itself) as an ImageFolder for a classifier; for a segmenter "
                           "DIR/images/SPLIT and DIR/annotations/SPLIT (ADEChallengeData2016)")
    test.add_argument("--weights", help="local file, run folder, https:// URL or hf-hub: spec (default: the model's own)")
    test.add_argument("--split", default=None,
                      help="split to evaluate (default val for a classifier, DIR itself if absent; validation for a segmenter)")
    test.add_argument("--ann-file", default="", help="mmpretrain list file relative to --data, instead of folders")
    test.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (classifiers)")
    test.add_argument("--workers", type=non_negative_int, default=4)
    test.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    test.add_argument("--mode", choices=("slide", "whole"), default=None,
                      help="segmenters: sliding windows or the whole image at once (default: the model's own, "
                           "slide for ADE20K)")
    test.add_argument("--reduce-zero-label", action=argparse.BooleanOptionalAction, default=None,
                      help="segmenters: label 0 is ignored and 1..K become 0..K-1 (default: the model's own; "
                           "on for ADE20K). --no-reduce-zero-label for label maps already in 0..K-1 (255 ignored)")
    test.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    test.add_argument("--out", type=Path, help="write the JSON report here (default: print it)")
    test.set_defaults(handler=run_test, log_info=1)


def run_train(args: argparse.Namespace) -> int:
    options = train_parser().parse_intermixed_args(args.argv)
    from .main import train_command

    return train_command(options)


def run_test(args: argparse.Namespace) -> int:
    from .main import test_command

    return test_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m beitv2_zoo.train {train,test} ...``."""
    from ..errors import BeitZooError

    parser = OneLineParser(prog="python -m beitv2_zoo.train", description="BEiT v2 training and evaluation.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(commands)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_EXIT
    except BeitZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
