"""Fine-tune a BEiT v2 classifier on your own ImageFolder (root/class_name/*.jpg) in a plain loop.

    python examples/finetune_folder.py path/to/root --epochs 3 --out my_classifier.safetensors

A new head sized to your classes replaces the ImageNet one; everything else starts from
the pretrained weights. The result is saved with its class names, so
``inference_model(get_model('my_classifier.safetensors'), image)['pred_class']`` is one of your
folder names. For the full recipe (layer decay, mixup, …) use the training subpackage.
"""

import argparse

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from beitv2_zoo import create_transform, get_model
from beitv2_zoo.api import save_checkpoint

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("root")
parser.add_argument("--out", required=True, help="the .safetensors file to write (with the class names)")
parser.add_argument("--model", default="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k")
parser.add_argument("--weights", help="a local checkpoint instead of downloading the model's weights")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--lr", type=float, default=5e-5)
parser.add_argument("--batch-size", type=int, default=16)
args = parser.parse_args()

probe = datasets.ImageFolder(args.root)
model = get_model(args.model, pretrained=args.weights or True, num_classes=len(probe.classes))
model.class_names = tuple(probe.classes)
prep = create_transform(model).preprocessing
train_transform = transforms.Compose([
    transforms.RandomResizedCrop(prep.crop_size, interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(prep.mean, prep.std),
])
loader = DataLoader(datasets.ImageFolder(args.root, train_transform), batch_size=args.batch_size, shuffle=True)
eval_set = datasets.ImageFolder(args.root, create_transform(model))

optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
for epoch in range(args.epochs):
    model.train()
    for images, labels in loader:
        loss = torch.nn.functional.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        correct = sum(int(model(x.unsqueeze(0)).argmax() == y) for x, y in eval_set)
    print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}, accuracy on the folder {correct / len(eval_set):.1%}")

save_checkpoint(model.eval(), args.out)
print(f"saved {args.out} with its {len(probe.classes)} class names; reload it with get_model({args.out!r})")
