"""Classify images or folders and print a top-5 table per image.

    python examples/classify.py examples/images
    python examples/classify.py photo.jpg --model beitv2_large_patch16_224_pt1k_ft21kto1k
"""

import argparse
from pathlib import Path

from beitv2_zoo import get_model, inference_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
parser.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
parser.add_argument("--weights", help="a local checkpoint instead of downloading the model's weights")
args = parser.parse_args()

images = [p for item in args.inputs for p in (sorted(item.glob("*.jp*g")) + sorted(item.glob("*.png")) if item.is_dir() else [item])]
model = get_model(args.model, pretrained=args.weights or True)
predictions = inference_model(model, images, topk=5, batch_size=8)

for path, prediction in zip(images, predictions):
    if prediction is None:  # only with on_error='skip'
        continue
    print(f"\n{path.name}")
    print(f"  {'rank':<5}{'score':>8}  class")
    for rank, (label, name, score) in enumerate(prediction["pred_topk"], start=1):
        print(f"  {rank:<5}{score:>8.2%}  {name} [{label}]")
