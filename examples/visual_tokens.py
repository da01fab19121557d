"""Turn an image into its BEiT v2 visual tokens (one code id per 16×16 patch) and draw the token map.

    python examples/visual_tokens.py examples/images/chelsea.jpg --out chelsea_tokens.png
"""

import argparse

import torch

from beitv2_zoo import get_model
from beitv2_zoo.transforms import center_crop, load_image, normalize, resize_short_edge
from beitv2_zoo.viz import token_map_figure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("image")
parser.add_argument("--tokenizer", default="vqkd_encoder_base_decoder_3x768x12_clip")
parser.add_argument("--weights", help="a local checkpoint instead of downloading the tokenizer's weights")
parser.add_argument("--out", required=True, help="the PNG to write")
args = parser.parse_args()

tokenizer = get_model(args.tokenizer, pretrained=args.weights or True)
size = tokenizer.encoder.patch_embed.img_size
crop = center_crop(resize_short_edge(load_image(args.image), size), size)
pixels = normalize(crop, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).unsqueeze(0)  # [1, 3, S, S] in [0, 1]

with torch.inference_mode():
    codes = tokenizer.encode(pixels)[0]  # [S/16, S/16] code ids

for row in codes.tolist():
    print(" ".join(f"{code:4d}" for code in row))
print(f"{codes.unique().numel()} distinct codes of {codes.numel()} patches")
token_map_figure(crop, codes.numpy(), title=f"{args.tokenizer}").save(args.out)
print(f"wrote {args.out}")
