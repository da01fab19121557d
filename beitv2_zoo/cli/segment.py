"""``beitv2-zoo segment``: label every pixel of image files or folders with a semantic segmenter."""

import argparse
import json
import sys
from pathlib import Path

from ..arguments import UsageError, checked_device
from .predict import unique_stems

DEFAULT_MODEL = "beitv2_base_patch16_224_pt1k_ftade20k"
TOP_CLASSES = 5
"""Classes named per image in text mode (``--json`` lists all of them)."""


def register(commands: argparse._SubParsersAction) -> None:
    segment = commands.add_parser("segment", help="label every pixel of images (files or folders) with a segmenter")
    segment.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    segment.add_argument("--model", default=DEFAULT_MODEL, help=f"registered segmenter name (default {DEFAULT_MODEL})")
    segment.add_argument("--weights", help="local checkpoint file, https:// URL or hf-hub:org/repo instead of the default weights")
    segment.add_argument("--out", type=Path, metavar="DIR",
                         help="write DIR/<stem>_seg.png (the image under its label colours, with a legend) and "
                              "DIR/<stem>_labels.png (the label map) per image; never one of the input folders")
    segment.add_argument("--json", action="store_true", help="print one JSON object per image")
    segment.add_argument("--mode", choices=("slide", "whole"), default=None,
                         help="sliding windows as the published numbers were measured (the record's default) or the "
                              "whole resized image at once")
    segment.add_argument("--device", default=None, help="cpu, cuda, cuda:1, … (default cpu)")
    segment.add_argument("--alpha", type=_alpha, default=0.5, help="weight of the label colours in _seg.png (default 0.5)")
    segment.set_defaults(handler=run_segment, one_line_errors=True)


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def run_segment(args: argparse.Namespace) -> int:
    from ..api import get_model
    from ..errors import ImageLoadError, InvalidInputError
    from ..segment import is_segmenter, segment
    from ..transforms import expand_images, load_image
    from ..weights import get_record, is_model

    images = expand_images(args.images)
    if not images:
        print("error: no images found in the given folders", file=sys.stderr)
        return 1
    device = checked_device(args.device)
    stems = output_stems(images, args.out) if args.out else None  # checked before any work
    if is_model(args.model) and get_record(args.model).task != "semantic-segmentation":  # before any download
        raise UsageError(f"--model {args.model} is not a semantic segmenter ({get_record(args.model).task}); "
                         "`beitv2-zoo predict` classifies images, `beitv2-zoo list --task semantic-segmentation` "
                         "lists the segmenters")
    model = get_model(args.model, pretrained=args.weights or True, device=device)
    if not is_segmenter(model):
        raise UsageError(f"--model {args.model} is not a semantic segmenter; use `beitv2-zoo predict` for a classifier")
    failed = 0
    for index, path in enumerate(images):
        try:
            picture = load_image(path)
            result = segment(model, picture, mode=args.mode)  # type: ignore[arg-type, call-overload]
        except (ImageLoadError, InvalidInputError) as error:
            failed += 1
            message = " ".join(str(error).split())
            print(f"error: {message if str(path) in message else f'{path}: {message}'}", file=sys.stderr)
            continue
        written = _write(picture, result, args.out / stems[index], args.alpha) if stems and args.out else {}
        _report(path, result, written, args)
    if failed:
        print(f"failed on {failed} unreadable image(s) of {len(images)}", file=sys.stderr)
    return 1 if failed else 0


def output_stems(images: list[Path], out: Path) -> list[str]:
    """The name stem of each image's files in ``out`` (``unique_stems``: ``a/x.png``, ``b/x.png`` → ``a_x``, ``b_x``).

    Raises:
        UsageError: ``out`` is a file, or a folder that holds input images (the label maps would be
            segmented next time).
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; it takes a folder")
    if out.resolve() in {image.parent.resolve() for image in images}:
        raise UsageError(f"--out {out} holds input images: the pictures would be segmented next time; choose another folder")
    return unique_stems(images)


def _write(picture, result: dict, stem: Path, alpha: float) -> dict[str, str]:
    """Write ``<stem>_seg.png`` and ``<stem>_labels.png``; return their paths."""
    import numpy as np
    from PIL import Image

    from ..viz import segmentation_overlay

    stem.parent.mkdir(parents=True, exist_ok=True)
    labels = result["pred_sem_seg"]
    overlay_path, labels_path = stem.with_name(stem.name + "_seg.png"), stem.with_name(stem.name + "_labels.png")
    segmentation_overlay(picture, labels, result["palette"], result["classes"], alpha=alpha).save(overlay_path)
    if len(result["classes"]) <= 256:  # one byte per pixel: the label index itself
        Image.fromarray(labels.astype(np.uint8), mode="L").save(labels_path)
    else:  # 16-bit grey
        Image.fromarray(labels.astype(np.uint16)).save(labels_path)
    for target in (overlay_path, labels_path):
        print(f"wrote {target}", file=sys.stderr)
    return {"overlay": str(overlay_path), "labels": str(labels_path)}


def class_shares(result: dict) -> list[tuple[int, str, float]]:
    """``(label, class name, fraction of the pixels)`` of each class present, largest share first."""
    import numpy as np

    labels = result["pred_sem_seg"]
    counts = np.bincount(labels.ravel(), minlength=len(result["classes"]))
    present = sorted(np.flatnonzero(counts).tolist(), key=lambda k: (-counts[k], k))
    return [(k, result["classes"][k].strip(), float(counts[k] / labels.size)) for k in present]


def _report(path: Path, result: dict, written: dict[str, str], args: argparse.Namespace) -> None:
    shares = class_shares(result)
    height, width = result["pred_sem_seg"].shape
    if args.json:
        print(json.dumps({"image": str(path), "width": int(width), "height": int(height), "model": args.model,
                          "classes": [{"label": k, "class": name, "fraction": share} for k, name, share in shares],
                          **written}))
        return
    named = ", ".join(f"{name} {share:.1%}" for _, name, share in shares[:TOP_CLASSES])
    more = f", … {len(shares) - TOP_CLASSES} more" if len(shares) > TOP_CLASSES else ""
    print(f"{path}  {width}x{height}  {len(shares)} classes: {named}{more}")
