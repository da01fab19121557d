"""``beitv2-zoo tokens``: an image's BEiT v2 visual tokens (VQ-KD code ids) and a picture of them."""

import argparse
import json
import sys
from pathlib import Path

from ..arguments import UsageError, checked_device
from ..weights.pretraining import DEFAULT_TOKENIZER


def register(commands: argparse._SubParsersAction) -> None:
    tokens = commands.add_parser("tokens", help="an image's visual tokens (VQ-KD code ids) and a picture of the token map")
    tokens.add_argument("image", type=Path)
    tokens.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                        help=f"a tokenizer or BEiT v2 pretraining-model name (default {DEFAULT_TOKENIZER})")
    tokens.add_argument("--weights", help="local checkpoint, https:// URL or hf-hub: spec instead of the default weights")
    tokens.add_argument("--out", type=Path, help="also draw the token map into this PNG")
    tokens.add_argument("--device", default=None, help="cpu, cuda, … (default cpu)")
    tokens.add_argument("--json", action="store_true", help="print the ids as one JSON list of rows")
    tokens.set_defaults(handler=run_tokens, one_line_errors=True)


def run_tokens(args: argparse.Namespace) -> int:
    import torch

    from ..api import get_model
    from ..errors import ModelConfigError
    from ..models import VQKD, BeitV2Pretrain
    from ..transforms import center_crop, create_transform, load_image, resize_short_edge
    from ..viz import token_map_figure
    from ..weights.pretraining import TOKENIZER_EVAL

    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the PNG file to write")
    model = get_model(args.tokenizer, pretrained=args.weights or True, device=checked_device(args.device))
    tokenizer = model.tokenizer if isinstance(model, BeitV2Pretrain) else model
    if not isinstance(tokenizer, VQKD):
        raise UsageError(f"--tokenizer {args.tokenizer} is neither a VQ-KD tokenizer nor a BEiT v2 pretraining model")
    if not tokenizer.quantize.embedding.is_initialised():
        raise ModelConfigError(f"{args.tokenizer}: its codebook was never trained (no k-means initialisation); load "
                               "trained weights with --weights")
    prep = TOKENIZER_EVAL  # pixels in [0, 1], the official VQ-KD resize 256 / crop 224
    transform = create_transform(prep)
    image = load_image(args.image)
    with torch.inference_mode():
        ids = tokenizer.encode(transform(image).unsqueeze(0).to(next(tokenizer.parameters()).device))[0].cpu().numpy()

    if args.json:
        print(json.dumps(ids.tolist()))
    else:
        width = len(str(tokenizer.num_codes - 1))
        print(f"{args.image}: {ids.shape[0]}x{ids.shape[1]} visual tokens ({args.tokenizer}, {tokenizer.num_codes} codes)")
        for row in ids:
            print(" ".join(f"{int(v):>{width}}" for v in row))
    if args.out is None:
        return 0
    crop = center_crop(resize_short_edge(image, prep.resize_size, prep.interpolation), prep.crop_size)
    out = args.out
    title = f"{args.image.name}: {ids.size} visual tokens of {args.tokenizer}, {len(set(ids.flat))} distinct"
    token_map_figure(crop, ids, title=title).save(out)
    print(f"wrote {out}", file=sys.stderr if args.json else sys.stdout)  # keep stdout pure JSON with --json
    return 0
