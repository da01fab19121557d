"""Export a classifier to ONNX (dynamic batch) and run it with onnxruntime.

    python examples/export_onnx.py --model beit-base-p16_beitv2-in21k-pre_3rdparty_in1k --out beitv2.onnx
"""

import argparse

import numpy as np
import onnxruntime

from beitv2_zoo import create_transform, get_model
from beitv2_zoo.export import export_onnx

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
parser.add_argument("--weights", help="a local checkpoint instead of downloading the model's weights")
parser.add_argument("--image", default="examples/images/chelsea.jpg")
parser.add_argument("--out", default="model.onnx")
args = parser.parse_args()

model = get_model(args.model, pretrained=args.weights or True)
export_onnx(model, args.out)

session = onnxruntime.InferenceSession(args.out, providers=["CPUExecutionProvider"])
pixels = create_transform(model)(args.image).unsqueeze(0).numpy()
logits = session.run(None, {session.get_inputs()[0].name: pixels})[0][0]
probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
best = int(probabilities.argmax())
name = model.class_names[best] if model.class_names else str(best)
print(f"{args.out}: {name} ({probabilities[best]:.1%})")
