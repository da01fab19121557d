"""The ``beitv2-zoo`` command: list, info and predict."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .version import __version__

DEFAULT_MODEL = "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``beitv2-zoo``; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from .errors import BeitZooError

    try:
        return args.handler(args)
    except BeitZooError as error:
        print(f"error: {' '.join(str(error).split()) if args.command == 'predict' else error}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beitv2-zoo", description="BEiT v2 and BEiT models, weights and inference.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list registered model names")
    listing.add_argument("pattern", nargs="?", help="fnmatch wildcard, e.g. '*beitv2*'")
    listing.set_defaults(handler=_list)

    info = commands.add_parser("info", help="show a model's weight record")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print the record as JSON")
    info.set_defaults(handler=_info)

    predict = commands.add_parser("predict", help="classify images (files or folders)")
    predict.add_argument("images", nargs="+", type=Path, help="image files or folders of images")
    predict.add_argument("--model", default=DEFAULT_MODEL, help=f"registered name (default {DEFAULT_MODEL})")
    predict.add_argument("--weights", help="local checkpoint file, https:// URL or hf-hub:org/repo instead of the default weights")
    predict.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1, … (default cpu)")
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    predict.set_defaults(handler=_predict)
    return parser


def _list(args: argparse.Namespace) -> int:
    from .registry import list_models

    for name in list_models(args.pattern):
        print(name)
    return 0


def _info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .hub import cached_file
    from .registry import get_record

    record = get_record(args.name)
    if args.json:
        print(json.dumps(asdict(record), indent=2))
        return 0
    prep = record.preprocessing
    print(f"name:           {record.name}")
    if record.aliases:
        print(f"aliases:        {', '.join(record.aliases)}")
    print(f"architecture:   {record.architecture}  ({record.params:,} params, {record.gmacs} GMACs)")
    print(f"classes:        {record.num_classes} ({record.label_set})")
    print(f"preprocessing:  short edge {prep.resize_size} {prep.interpolation}, centre crop {prep.crop_size}, "
          f"mean {prep.mean}, std {prep.std}")
    for metric in record.metrics:
        top5 = f", top-5 {metric.top5}" if metric.top5 is not None else ""
        print(f"result:         {metric.dataset} top-1 {metric.top1}{top5}  [{metric.source}]")
    print(f"licence:        {record.license}")
    print(f"paper:          {record.paper}")
    if record.converted_from:
        print(f"converted from: {record.converted_from}")
    if record.upstream:
        print(f"fine-tuned from: {record.upstream}")
    for source in record.sources:
        where = source.url or f"hf-hub:{source.hf_repo}/{source.hf_filename}"
        digest = source.sha256 or (f"sha256 {source.sha256_prefix}…" if source.sha256_prefix else "no published hash")
        cached = cached_file(source)
        state = "cached" if source.url and cached.is_file() else "not cached"
        print(f"source:         {where}  ({digest}; {state} at {cached})" if source.url else f"source:         {where}")
    if record.notes:
        print(f"notes:          {record.notes}")
    return 0


def _expand_images(paths: Sequence[Path]) -> list[Path]:
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            images.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES))
        else:
            images.append(path)
    return images


def _predict(args: argparse.Namespace) -> int:
    from .factory import get_model
    from .inference import inference_model

    images = _expand_images(args.images)
    if not images:
        print("error: no images found in the given folders", file=sys.stderr)
        return 1
    model = get_model(args.model, pretrained=args.weights or True, device=args.device)
    predictions = inference_model(model, images, topk=args.topk, batch_size=args.batch_size)
    for path, prediction in zip(images, predictions):
        if args.json:
            print(json.dumps({"image": str(path), "pred_label": prediction["pred_label"],
                              "pred_score": prediction["pred_score"], "pred_class": prediction.get("pred_class"),
                              "topk": [{"label": i, "class": c, "score": s} for i, c, s in prediction["pred_topk"]]}))
            continue
        print(f"{path}  ({args.model})")
        for rank, (label, name, score) in enumerate(prediction["pred_topk"], start=1):
            print(f"  {rank}. {score:7.2%}  {name}  [{label}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
