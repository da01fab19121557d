"""``beitv2-zoo predict``: classify image files or folders."""

import argparse
import json
import sys
from pathlib import Path

from ..arguments import UsageError, checked_device, non_negative_int, positive_int

DEFAULT_MODEL = "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"


def register(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="classify images (files or folders)")
    predict.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    predict.add_argument("--model", default=DEFAULT_MODEL, help=f"registered name (default {DEFAULT_MODEL})")
    predict.add_argument("--weights", help="local checkpoint file, https:// URL or hf-hub:org/repo instead of the default weights")
    predict.add_argument("--topk", type=positive_int, default=5, help="classes to show per image (default 5)")
    predict.add_argument("--batch-size", type=positive_int, default=8)
    predict.add_argument("--workers", type=non_negative_int, default=None,
                         help="threads decoding the next batch during compute (default: 2, or 0 when torch already uses every CPU core)")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, … (default cpu)")
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    predict.add_argument("--show", type=Path, metavar="OUT",
                         help="draw each image beside its top-k bar chart: a .png file for one image, a folder for several "
                              "(never one of the input folders)")
    predict.set_defaults(handler=run_predict, one_line_errors=True)


def run_predict(args: argparse.Namespace) -> int:
    from ..api import get_model
    from ..api import inference_model
    from ..transforms import expand_images
    from ..weights import get_record, is_model

    images = expand_images(args.images)
    if not images:
        print("error: no images found in the given folders", file=sys.stderr)
        return 1
    device = checked_device(args.device)
    pictures = picture_paths(images, args.show, args.topk) if args.show else None  # checked before any work
    if is_model(args.model) and get_record(args.model).task == "semantic-segmentation":  # before any download
        raise UsageError(f"{args.model} is a segmenter: use `beitv2-zoo segment IMAGE... --model {args.model}`")
    model = get_model(args.model, pretrained=args.weights or True, device=device)
    if getattr(model, "task", None) == "semantic-segmentation":
        raise UsageError(f"{args.weights or args.model} holds a segmenter: use `beitv2-zoo segment`")
    _say_which_head(args, model)
    predictions = inference_model(model, images, topk=args.topk, batch_size=args.batch_size,
                                  num_workers=args.workers, on_error="skip" if len(images) > 1 else "raise")
    if pictures:
        _draw_predictions(images, predictions, pictures, args.model)
    skipped = sum(p is None for p in predictions)
    for path, prediction in zip(images, predictions):
        if prediction is None:
            continue
        if args.json:
            print(json.dumps({"image": str(path), "pred_label": prediction["pred_label"],
                              "pred_score": prediction["pred_score"], "pred_class": prediction.get("pred_class"),
                              "topk": [{"label": i, "class": c, "score": s} for i, c, s in prediction["pred_topk"]]}))
            continue
        print(f"{path}  ({args.model})")
        for rank, (label, name, score) in enumerate(prediction["pred_topk"], start=1):
            print(f"  {rank}. {score:7.2%}  {name}  [{label}]")
    if skipped:
        print(f"skipped {skipped} unreadable image(s) of {len(images)}", file=sys.stderr)
    return 0 if skipped < len(images) else 1


def _say_which_head(args: argparse.Namespace, model) -> None:
    """One line on stderr when ``--weights`` brought a head of its own (its classes, not the model's)."""
    record = model.weights_info
    if args.weights and record is not None and model.num_classes != record.num_classes:
        labels = "its class names" if model.class_names else "label indices (the file names no classes)"
        print(f"note: {args.weights} has a {model.num_classes}-class head: showing {labels}, not the "
              f"{record.num_classes} classes of {args.model}", file=sys.stderr)


def picture_paths(images: list[Path], show: Path, topk: int) -> list[Path]:
    """Where ``--show`` writes each image's picture: ``show`` itself for one image (or a file in it when it
    is a folder), else one file per image in the folder ``show``, named so that no two collide.

    Raises:
        UsageError: several images and ``show`` is a file (or looks like one), or the folder holds input images.
    """
    if len(images) == 1 and not show.is_dir():
        return [show]
    if show.exists() and not show.is_dir() or (not show.exists() and show.suffix.lower() in (".png", ".jpg", ".jpeg")):
        raise UsageError(f"--show {show}: with {len(images)} images it takes a folder, not a file")
    inputs = {image.parent.resolve() for image in images}
    if show.resolve() in inputs:
        raise UsageError(f"--show {show} holds input images: the pictures would be classified next time; choose "
                         "another folder")
    return [show / f"{name}_top{topk}.png" for name in unique_stems(images)]


def unique_stems(images: list[Path]) -> list[str]:
    """File stems, made unique where two images share one (``a/x.png``, ``b/x.png`` → ``a_x``, ``b_x``)."""
    stems = [image.stem for image in images]
    taken: dict[str, int] = {}
    for stem in stems:
        taken[stem] = taken.get(stem, 0) + 1
    names, seen = [], set()
    for image, stem in zip(images, stems):
        name = stem if taken[stem] == 1 else "_".join([*image.resolve().parent.parts[-1:], stem])
        base, count = name, 2
        while name in seen:
            name, count = f"{base}_{count}", count + 1
        seen.add(name)
        names.append(name)
    return names


def _draw_predictions(images: list[Path], predictions: list, pictures: list[Path], model_name: str) -> None:
    from ..transforms import load_image
    from ..viz import predictions_figure

    for path, prediction, target in zip(images, predictions, pictures):
        if prediction is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        predictions_figure(load_image(path), prediction["pred_topk"], title=f"{path.name}  |  {model_name}").save(target)
        print(f"wrote {target}", file=sys.stderr)
