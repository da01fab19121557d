"""Find each image's nearest neighbours in a folder by cosine similarity of BEiT v2 features.

    python examples/knn_retrieval.py path/to/photos --k 3
"""

import argparse
from pathlib import Path

import torch

from beitv2_zoo import create_transform, get_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("folder", type=Path)
parser.add_argument("--k", type=int, default=3, help="neighbours per image")
parser.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
parser.add_argument("--weights", help="a local checkpoint instead of downloading the model's weights")
args = parser.parse_args()

paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
model = get_model(args.model, pretrained=args.weights or True)
transform = create_transform(model)

with torch.inference_mode():
    batch = torch.stack([transform(p) for p in paths])
    features = model.extract_feat(batch)[-1]  # [N, D]: fc_norm(mean of patch tokens)
features = torch.nn.functional.normalize(features, dim=-1)
similarity = features @ features.T
similarity.fill_diagonal_(-float("inf"))  # an image is not its own neighbour

k = min(args.k, len(paths) - 1)
scores, neighbours = similarity.topk(k, dim=-1)
for i, path in enumerate(paths):
    found = ", ".join(f"{paths[j].name} ({s:.3f})" for s, j in zip(scores[i].tolist(), neighbours[i].tolist()))
    print(f"{path.name}: {found}")
