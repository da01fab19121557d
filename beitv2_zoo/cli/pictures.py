"""``beitv2-zoo attention`` and ``beitv2-zoo plot-log``: pictures of what a model attends to and how training went."""

import argparse
import json
import sys
from pathlib import Path

from ..arguments import UsageError, checked_device, existing_file


def register(commands: argparse._SubParsersAction) -> None:
    attention = commands.add_parser("attention", help="picture of the CLS token's attention over the patches")
    attention.add_argument("image", type=Path)
    attention.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
    attention.add_argument("--weights", help="local checkpoint, URL or hf-hub: spec instead of the default weights")
    attention.add_argument("--layer", type=int, default=-1, help="block index, negative from the end (default -1)")
    attention.add_argument("--out", type=Path, required=True, help="the PNG to write")
    attention.add_argument("--device", default=None, help="cpu, cuda, cuda:1, … (default cpu)")
    attention.set_defaults(handler=run_attention, one_line_errors=True)

    plot = commands.add_parser("plot-log", help="training curves from a JSON-lines log")
    plot.add_argument("log", type=existing_file, help="one JSON object per line, e.g. {\"step\": 10, \"loss\": 2.3, \"lr\": 1e-4}")
    plot.add_argument("--keys", default=None, help="comma-separated fields to plot (default: every numeric field)")
    plot.add_argument("--x", default="step", help="the x field (default step)")
    plot.add_argument("--out", type=Path, help="output PNG (default LOG.png beside the log)")
    plot.set_defaults(handler=run_plot_log)


def run_attention(args: argparse.Namespace) -> int:
    import torch

    from ..api import get_model
    from ..transforms import create_transform, load_image
    from ..viz import attention_figure

    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the PNG file to write")
    device = checked_device(args.device)
    model = get_model(args.model, pretrained=args.weights or True, device=device)
    depth = len(model.blocks)
    if not -depth <= args.layer < depth:
        raise UsageError(f"--layer {args.layer}: {args.model} has {depth} blocks, so use {-depth} to {depth - 1}")
    transform = create_transform(model)
    prep = transform.preprocessing
    image = load_image(args.image)
    with torch.inference_mode():
        probs = model.attention_maps(transform(image).unsqueeze(0).to(device), args.layer).cpu()  # [1, H, L, L]
    grid = model.patch_embed.grid_size
    cls_to_patches = probs[0, :, 0, 1:].mean(0).reshape(grid).float().numpy()
    from ..transforms import center_crop, resize_short_edge

    crop = center_crop(resize_short_edge(image, prep.resize_size, prep.interpolation), prep.crop_size)
    layer = args.layer % len(model.blocks)
    attention_figure(crop, cls_to_patches, title=f"{args.image.name}: CLS attention, block {layer} of {args.model}").save(args.out)
    print(f"wrote {args.out}")
    return 0


def read_log(path: Path) -> list[dict]:
    """Rows of a JSON-lines log; blank and malformed lines are skipped with a count on stderr."""
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
    if bad:
        print(f"skipped {bad} malformed line(s) in {path}", file=sys.stderr)
    return rows


def run_plot_log(args: argparse.Namespace) -> int:
    from ..viz import curves_figure

    rows = read_log(args.log)
    numeric = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)  # noqa: E731
    keys = args.keys.split(",") if args.keys else sorted(
        {k for row in rows for k, v in row.items() if numeric(v) and k != args.x})
    series = {}
    for key in keys:
        points = [(row[args.x], row[key]) for row in rows if numeric(row.get(args.x)) and numeric(row.get(key))]
        series[key] = points
    if not any(series.values()):
        print(f"error: no numeric {args.x!r}/{keys} pairs in {args.log}", file=sys.stderr)
        return 1
    out = args.out or args.log.with_suffix(".png")
    curves_figure(series, title=args.log.name, x_label=args.x).save(out)
    print(f"wrote {out}")
    return 0
