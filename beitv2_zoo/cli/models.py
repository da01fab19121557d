"""``beitv2-zoo list`` and ``beitv2-zoo info``."""

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..weights.schema import Metric, Preprocessing


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list registered model names")
    listing.add_argument("pattern", nargs="?", help="fnmatch wildcard, e.g. '*beitv2*'")
    listing.add_argument("--task", help="only this task: image-classification, semantic-segmentation, "
                                        "masked-image-modeling, visual-tokenizer")
    listing.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                         help="only names with published weights (--no-pretrained: only those without)")
    listing.add_argument("--all", action="store_true", help="also the weightless test_* names")
    listing.add_argument("--json", action="store_true", help="one JSON object per name")
    listing.set_defaults(handler=run_list, one_line_errors=True)

    info = commands.add_parser("info", help="show a model's weight record")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print the record as JSON")
    info.set_defaults(handler=run_info)


def run_list(args: argparse.Namespace) -> int:
    from ..arguments import UsageError
    from ..weights import aliases_of, get_record, list_models
    from .predict import DEFAULT_MODEL

    try:
        names = list_models(args.pattern, pretrained=args.pretrained, task=args.task, include_test=args.all)
    except ValueError as error:
        raise UsageError(f"--task: {error}") from None
    for name in names:
        record = get_record(name)
        aliases, default = aliases_of(name), name == DEFAULT_MODEL
        if args.json:
            print(json.dumps({"name": name, "task": record.task, "pretrained": bool(record.sources),
                              "aliases": list(aliases), "default": default}))
            continue
        marks = [*(["default of predict"] if default else []), *(["aliases: " + ", ".join(aliases)] if aliases else [])]
        print(f"{name}  ({'; '.join(marks)})" if marks else name)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..hub import cached_file
    from ..weights import get_record

    record = get_record(args.name)
    if args.json:
        print(json.dumps(asdict(record), indent=2))
        return 0
    rows = [("name", record.name)]
    if record.aliases:
        rows.append(("aliases", ", ".join(record.aliases)))
    rows += [
        ("architecture", f"{record.architecture}  ({record.params:,} params, {record.gmacs} GMACs)"),
        ("task", record.task),
        ("classes", f"{record.num_classes} ({record.label_set})" if record.num_classes else "none (no classification head)"),
        ("preprocessing", _preprocessing(record.preprocessing)),
    ]
    rows += [("result", f"{_result(metric)}  [{metric.source}]") for metric in record.metrics]
    rows += [("licence", record.license), ("paper", record.paper)]
    if record.converted_from:
        rows.append(("converted from", record.converted_from))
    if record.upstream:
        rows.append(("fine-tuned from", record.upstream))
    if record.tokenizer:
        rows.append(("tokenizer", record.tokenizer))
    for source in record.sources:
        if source.url is None:
            rows.append(("source", f"hf-hub:{source.hf_repo}/{source.hf_filename}"))
            continue
        digest = f"sha256 {source.sha256}" if source.sha256 else (
            f"sha256 {source.sha256_prefix}…" if source.sha256_prefix else "no published hash")
        if source.url.startswith("package:"):  # shipped inside the package, never cached
            rows.append(("source", f"{source.url}  ({digest}; installed with the package)"))
            continue
        cached = cached_file(source)
        state = "cached" if cached.is_file() else "not cached"
        rows.append(("source", f"{source.url}  ({digest}; {state} at {cached})"))
    if record.notes:
        rows.append(("notes", record.notes))
    for key, value in rows:
        print(f"{key + ':':<17}{value}")
    return 0


def _preprocessing(prep: "Preprocessing") -> str:
    """One line: short edge + centre crop, or a segmenter's keep-ratio resize and slide windows."""
    from ..weights.schema import SegmentationPreprocessing

    if isinstance(prep, SegmentationPreprocessing):
        windows = f"slide {prep.crop_size} every {prep.stride}" if prep.mode == "slide" else "whole image"
        return (f"fit {prep.scale} keeping the aspect ratio ({prep.interpolation}), {windows}, "
                f"mean {prep.mean}, std {prep.std}")
    return (f"short edge {prep.resize_size} {prep.interpolation}, centre crop {prep.crop_size}, "
            f"mean {prep.mean}, std {prep.std}")


def _result(metric: "Metric") -> str:
    """``'ImageNet-1k top-1 85.0, top-5 97.5'`` or ``'ADE20K mIoU 53.61, ms+flip 54.26, mAcc 64.82, aAcc 84.62'``."""
    if metric.top1 is None and metric.top5 is None:
        scores = [(label, getattr(metric, field)) for field, label in
                  (("miou", "mIoU"), ("miou_ms", "ms+flip mIoU"), ("macc", "mAcc"), ("aacc", "aAcc"))]
        return metric.dataset + " " + ", ".join(f"{label} {value}" for label, value in scores if value is not None)
    top5 = f", top-5 {metric.top5}" if metric.top5 is not None else ""
    return f"{metric.dataset} top-1 {metric.top1}{top5}"
