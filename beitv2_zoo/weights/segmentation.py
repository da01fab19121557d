"""Weight records of the ADE20K semantic segmenters (BEiT backbone + UPerNet head), as data.

Facts come from the microsoft/unilm READMEs (``beit2/README.md``, ``beit2/semantic_segmentation/README.md``,
``beit/README.md``, ``beit/semantic_segmentation/README.md``) and their configs, and from mmsegmentation
1.2.2's ``configs/beit`` (metafile and configs). The official files publish no hash; mmsegmentation's
names carry the first 8 hex digits of their sha256.

* Every file evaluates with ImageNet mean/std (``img_norm_cfg`` / ``data_preprocessor`` of all configs):
  :data:`ADE20K_EVAL_512` for the BEiT v2 files, :data:`ADE20K_EVAL_640` for the BEiT (v1) and
  mmsegmentation ones. ``model_kwargs`` set ``img_size`` to the crop; the other backbone settings of every
  config (relative position bias in each block, no absolute position embedding, layer scale 0.1 base /
  1e-6 large, taps after blocks 3, 5, 7, 11 base / 7, 11, 15, 23 large) are the architectures' defaults.
* ``params`` are the models built here, the auxiliary FCN head included (it is in every file), and equal
  mmsegmentation 1.2.2's count of the same model (163.1 M for BEiT-B + UPerNet at 512). The crop size
  changes only the relative position tables.
* ``gmacs``: one forward of one crop (``model(x)``, decode head only, as at test time), counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (convolutions, linear layers and the
  attention matmuls; FLOPs / 2). Slide inference runs one such forward per window.
"""

from ._common import (ADE20K_EVAL_512, ADE20K_EVAL_640, BEIT_PAPER, BEIT_V2_PAPER, hf_file, mmseg, official,
                      official_v1)
from .schema import Metric, SegmentationPreprocessing, WeightRecord

BASE_512_PARAMS, BASE_640_PARAMS = 163_080_812, 163_407_980
LARGE_512_PARAMS, LARGE_640_PARAMS = 440_398_636, 441_271_084
BASE_512_GMACS, BASE_640_GMACS = 604.96, 962.18
LARGE_512_GMACS, LARGE_640_GMACS = 1246.36, 1992.54

ADE20K = "ADE20K"
V2_README = "microsoft/unilm beit2/README.md"
V2_SEG_README = "microsoft/unilm beit2/semantic_segmentation/README.md"
V1_README = "microsoft/unilm beit/README.md"
V1_SEG_README = "microsoft/unilm beit/semantic_segmentation/README.md"
MMSEG_METAFILE = "mmsegmentation 1.2.2 configs/beit/metafile.yaml"

_V2_SCALE = ("BEiT v2 publishes single-scale results only: the official multi-scale test fails on small "
             "crops (microsoft/unilm#871).")
_V1_HF = ("The same official weights are on the Hugging Face Hub as {repo} (pytorch_model.bin, converted by "
          "Hugging Face to the 'transformers' layout; its model card says the model was first released in "
          "microsoft/unilm and is licensed apache-2.0): the second source, read through our key map and run "
          "with the official tap blocks. transformers' own BeitForSemanticSegmentation reads the outputs of the "
          "blocks two before the official taps (for out_indices [3, 5, 7, 11]: blocks 1, 3, 5, 9), so its "
          "results on this file differ from the official ones.")


def _v2_record(size: str, suffix: str, metrics: tuple[Metric, ...], upstream: str, data: tuple[str, ...],
               recipe: str) -> WeightRecord:
    base = size == "base"
    name = f"beitv2_{size}_patch16_224_{suffix}"
    return WeightRecord(
        name=name,
        architecture=f"beit_{size}_patch16_upernet",
        model_kwargs=dict(img_size=512),
        num_classes=150,
        label_set="ade20k",
        task="semantic-segmentation",
        sources=(official(f"{name}.pth"),),
        preprocessing=ADE20K_EVAL_512,
        params=BASE_512_PARAMS if base else LARGE_512_PARAMS,
        gmacs=BASE_512_GMACS if base else LARGE_512_GMACS,
        license="mit",
        paper=BEIT_V2_PAPER,
        metrics=metrics,
        upstream=upstream,
        training_data=data,
        notes=(f"Official BEiT v2 {size} + UPerNet fine-tuned on ADE20K at 512x512 for 160k iterations "
               f"({recipe}; the config is inferred from the file name). {_V2_SCALE}"),
    )


PT1K = ("ImageNet-1k (pretraining)", ADE20K)
PT1K_21K = ("ImageNet-1k (pretraining)", "ImageNet-21k", ADE20K)

OFFICIAL_V2_SEG_RECORDS = (
    _v2_record("base", "pt1k_ftade20k", (Metric(ADE20K, miou=53.1, source=V2_README),),
               "beitv2_base_patch16_224_pt1k", PT1K, "AdamW lr 5e-5, layer decay 0.75"),
    _v2_record("base", "pt1k_ft21ktoade20k", (Metric(ADE20K, miou=53.5, source=V2_README),),
               "beitv2_base_patch16_224_pt1k_ft21k", PT1K_21K, "AdamW lr 5e-5, layer decay 0.85"),
    _v2_record("large", "pt1k_ftade20k", (Metric(ADE20K, miou=56.7, source=V2_README),),
               "beitv2_large_patch16_224_pt1k", PT1K, "AdamW lr 4e-5, layer decay 0.9; the paper's headline result"),
    _v2_record("large", "pt1k_ft21ktoade20k",
               (Metric(ADE20K, miou=57.5, source=V2_README),
                Metric(ADE20K, miou=57.54, macc=68.78, aacc=86.22, source=V2_SEG_README)),
               "beitv2_large_patch16_224_pt1k_ft21k", PT1K_21K, "AdamW lr 3e-5, layer decay 0.9"),
)

PT22K = ("ImageNet-21k (pretraining)", "ImageNet-21k", ADE20K)
"""BEiT (v1) calls ImageNet-21k '22k' (``pt22k_ft22k``): self-supervised pretraining, supervised fine-tuning, ADE20K."""


def _v1_record(size: str, metrics: tuple[Metric, ...], recipe: str, extra: str = "") -> WeightRecord:
    base = size == "base"
    name = f"beit_{size}_patch16_640_pt22k_ft22ktoade20k"
    hub = f"microsoft/beit-{size}-finetuned-ade-640-640"
    return WeightRecord(
        name=name,
        architecture=f"beit_{size}_patch16_upernet",
        model_kwargs=dict(img_size=640),
        num_classes=150,
        label_set="ade20k",
        task="semantic-segmentation",
        sources=(official_v1(f"{name}.pth"), hf_file(hub, "pytorch_model.bin")),
        preprocessing=ADE20K_EVAL_640,
        params=BASE_640_PARAMS if base else LARGE_640_PARAMS,
        gmacs=BASE_640_GMACS if base else LARGE_640_GMACS,
        license="mit",
        paper=BEIT_PAPER,
        metrics=metrics,
        upstream=f"beit_{size}_patch16_224_pt22k_ft22k",
        training_data=PT22K,
        notes=(f"Official BEiT (v1) {size} + UPerNet fine-tuned on ADE20K at 640x640 ({recipe}). {extra}"
               f"{_V1_HF.format(repo=hub)}"),
    )


OFFICIAL_V1_SEG_RECORDS = (
    _v1_record("base",
               (Metric(ADE20K, miou=53.6, miou_ms=54.2, source=V1_README),
                Metric(ADE20K, miou=53.61, miou_ms=54.26, macc=64.82, aacc=84.62, source=V1_SEG_README)),
               "160k iterations, AdamW lr 3e-5, layer decay 0.9",
               "mAcc and aAcc are single-scale; with multi-scale + flip the segmentation README gives mAcc 65.28, "
               "aAcc 84.9. "),
    _v1_record("large", (Metric(ADE20K, miou=56.7, miou_ms=57.0, source=V1_README),),
               "160k updates of one image per GPU and two iterations per update, AdamW lr 2e-5, layer decay 0.95"),
)

MMSEG_SEG_RECORDS = (
    WeightRecord(
        name="upernet_beit-base_8x2_640x640_160k_ade20k",
        architecture="beit_base_patch16_upernet",
        model_kwargs=dict(img_size=640),
        num_classes=150,
        label_set="ade20k",
        task="semantic-segmentation",
        sources=(mmseg("upernet_beit-base_8x2_640x640_160k_ade20k", "eead221d"),),
        preprocessing=ADE20K_EVAL_640,
        params=BASE_640_PARAMS,
        gmacs=BASE_640_GMACS,
        license="apache-2.0",
        paper=BEIT_PAPER,
        metrics=(Metric(ADE20K, miou=53.08, miou_ms=53.84, source=MMSEG_METAFILE),),
        upstream="beit_base_patch16_224_pt22k_ft22k",
        training_data=PT22K,
        aliases=("beit-base_upernet_8xb2-160k_ade20k-640x640",),
        notes=("BEiT (v1) base + UPerNet fine-tuned on ADE20K at 640x640 for 160k iterations by OpenMMLab "
               "(8 GPUs x 2 images, AdamW lr 3e-5, layer decay 0.9) from the official "
               "beit_base_patch16_224_pt22k_ft22k file; mmsegmentation 'mmseg' key layout. The alias is the "
               "mmsegmentation 1.x config name."),
    ),
    WeightRecord(
        name="upernet_beit-large_fp16_8x1_640x640_160k_ade20k",
        architecture="beit_large_patch16_upernet",
        model_kwargs=dict(img_size=640),
        num_classes=150,
        label_set="ade20k",
        task="semantic-segmentation",
        sources=(mmseg("upernet_beit-large_fp16_8x1_640x640_160k_ade20k", "8fc0dd5d"),),
        preprocessing=ADE20K_EVAL_640,
        params=LARGE_640_PARAMS,
        gmacs=LARGE_640_GMACS,
        license="apache-2.0",
        paper=BEIT_PAPER,
        metrics=(Metric(ADE20K, miou=56.33, miou_ms=56.84, source=MMSEG_METAFILE),),
        upstream="beit_large_patch16_224_pt22k_ft22k",
        training_data=PT22K,
        aliases=("beit-large_upernet_8xb1-amp-160k_ade20k-640x640",),
        notes=("BEiT (v1) large + UPerNet fine-tuned on ADE20K at 640x640 for 160k iterations by OpenMMLab "
               "(8 GPUs x 1 image, 2-step gradient accumulation, mixed precision, AdamW lr 2e-5, layer decay 0.95) "
               "from the official beit_large_patch16_224_pt22k_ft22k file; mmsegmentation 'mmseg' key layout. "
               "The alias is the mmsegmentation 1.x config name."),
    ),
)

TINY_SEG_EVAL = SegmentationPreprocessing(resize_size=64, crop_size=64, scale=(256, 64), stride=43)
"""The ADE20K protocol scaled to a 64-pixel crop: fit (256, 64), slide 64 every 43 pixels (2/3 of the crop)."""

SEGMENTATION_TEST_RECORDS = (
    WeightRecord(
        name="test_beit_tiny_upernet",
        architecture="test_beit_tiny_upernet",
        model_kwargs=dict(img_size=64),
        num_classes=150,
        label_set="ade20k",
        task="semantic-segmentation",
        sources=(),
        preprocessing=TINY_SEG_EVAL,
        params=451_020,
        gmacs=0.021,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        notes=("A 4-block, 64-wide BEiT with a 32-channel UPerNet head (150 ADE20K classes) and random weights, "
               "for tests and demos. It has no pretrained weights."),
    ),
)

SEGMENTATION_RECORDS: tuple[WeightRecord, ...] = (
    OFFICIAL_V2_SEG_RECORDS + OFFICIAL_V1_SEG_RECORDS + MMSEG_SEG_RECORDS + SEGMENTATION_TEST_RECORDS)
"""Every segmentation record, in the order ``weights.ALL_RECORDS`` lists them."""
