"""Every registered checkpoint, as data.

Facts come from mmpretrain 1.2.0's metafiles, the microsoft/unilm ``beit2`` README and
timm's ``beit.py`` pretrained configs. Hashes: mmpretrain files carry the first 8 hex
digits of their sha256 in the file name, and that is all that is published; the official
release files and timm's Hub files publish no hash.
"""

from ._common import (BEIT_PAPER, BEIT_V2_PAPER, HALF_EVAL, IMAGENET_EVAL, OFFICIAL_README, TIMM_BASE_EVAL,
                      TIMM_LARGE_EVAL, UNILM_BLOB, official, openmmlab, timm_hub)
from .schema import Metric, WeightRecord


BASE_PARAMS, BASE_21K_PARAMS = 86_530_984, 102_557_713
LARGE_PARAMS, LARGE_21K_PARAMS = 304_430_568, 325_792_593
BASE_GMACS, LARGE_GMACS = 17.58, 61.60  # mmpretrain metafile (17,581,219,584) and timm's benchmark table
BASE_21K_GMACS, LARGE_21K_GMACS = 17.60, 61.62  # the same plus the larger head's 768·20841 / 1024·20841 MACs
IN1K = ("ImageNet-1k",)
IN21K_THEN_1K = ("ImageNet-1k (pretraining)", "ImageNet-21k", "ImageNet-1k")


MMPRETRAIN_RECORDS = (
    WeightRecord(
        name="beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k",
        architecture="beit_base_patch16",
        num_classes=1000,
        label_set="imagenet-1k",
        sources=(
            openmmlab(
                "mmselfsup/1.x/beitv2/beitv2_vit-base-p16_8xb256-amp-coslr-300e_in1k/"
                "vit-base-p16_ft-8xb128-coslr-100e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k_20221212-d1c0789e.pth",
                "d1c0789e",
            ),
        ),
        preprocessing=IMAGENET_EVAL,
        params=BASE_PARAMS,
        gmacs=BASE_GMACS,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        metrics=(Metric("ImageNet-1k", 85.0, None, "mmpretrain configs/beitv2/metafile.yml"),),
        upstream="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k",
        training_data=IN1K,
        notes="BEiT v2 pretrained 300 epochs and fine-tuned 100 epochs by OpenMMLab.",
    ),
    WeightRecord(
        name="beit-base-p16_beitv2-in21k-pre_3rdparty_in1k",
        architecture="beit_base_patch16",
        num_classes=1000,
        label_set="imagenet-1k",
        sources=(
            openmmlab("mmclassification/v0/beit/beitv2-base_3rdparty_in1k_20221114-73e11905.pth", "73e11905"),
            official("beitv2_base_patch16_224_pt1k_ft21kto1k.pth"),
        ),
        preprocessing=IMAGENET_EVAL,
        params=BASE_PARAMS,
        gmacs=BASE_GMACS,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        metrics=(
            Metric("ImageNet-1k", 86.47, 97.99, "mmpretrain configs/beitv2/metafile.yml"),
            Metric("ImageNet-1k", 86.458, 97.978, "microsoft/unilm beit2/get_started_for_image_classification.md"),
        ),
        converted_from=f"{UNILM_BLOB}/beitv2/beitv2_base_patch16_224_pt1k_ft21kto1k.pth",
        upstream="beitv2_base_patch16_224_pt1k_ft21k",
        training_data=IN21K_THEN_1K,
        aliases=("beitv2-base_3rdparty_in1k",),
        notes="Official BEiT v2 weights re-packaged by OpenMMLab; the official file is the second source.",
    ),
    WeightRecord(
        name="beit-base-p16_beit-pre_8xb128-coslr-100e_in1k",
        architecture="beit_base_patch16",
        num_classes=1000,
        label_set="imagenet-1k",
        sources=(
            openmmlab(
                "mmselfsup/1.x/beit/beit_vit-base-p16_8xb256-amp-coslr-300e_in1k/"
                "vit-base-p16_ft-8xb128-coslr-100e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k_20221128-0ca393e9.pth",
                "0ca393e9",
            ),
        ),
        preprocessing=HALF_EVAL,
        params=BASE_PARAMS,
        gmacs=BASE_GMACS,
        license="apache-2.0",
        paper=BEIT_PAPER,
        metrics=(Metric("ImageNet-1k", 83.1, None, "mmpretrain configs/beit/metafile.yml"),),
        upstream="beit_beit-base-p16_8xb256-amp-coslr-300e_in1k",
        training_data=IN1K,
        notes="BEiT (v1) pretrained 300 epochs and fine-tuned 100 epochs by OpenMMLab.",
    ),
    WeightRecord(
        name="beit-base-p16_beit-in21k-pre_3rdparty_in1k",
        architecture="beit_base_patch16",
        num_classes=1000,
        label_set="imagenet-1k",
        sources=(openmmlab("mmclassification/v0/beit/beit-base_3rdparty_in1k_20221114-c0a4df23.pth", "c0a4df23"),),
        preprocessing=HALF_EVAL,
        params=BASE_PARAMS,
        gmacs=BASE_GMACS,
        license="apache-2.0",
        paper=BEIT_PAPER,
        metrics=(Metric("ImageNet-1k", 85.28, 97.59, "mmpretrain configs/beit/metafile.yml"),),
        converted_from=f"{UNILM_BLOB}/beit/beit_base_patch16_224_pt22k_ft22kto1k.pth",
        training_data=("ImageNet-21k", "ImageNet-1k"),
        aliases=("beit-base_3rdparty_in1k",),
        notes="Official BEiT (v1) weights re-packaged by OpenMMLab.",
    ),
)


def _official_record(
    size: str, suffix: str, num_classes: int, metrics: tuple[Metric, ...], upstream: str, data: tuple[str, ...], notes: str
) -> WeightRecord:
    base = size == "base"
    in21k = num_classes == 21841
    return WeightRecord(
        name=f"beitv2_{size}_patch16_224_{suffix}",
        architecture=f"beit_{size}_patch16",
        num_classes=num_classes,
        label_set="imagenet-21k" if in21k else "imagenet-1k",
        sources=(official(f"beitv2_{size}_patch16_224_{suffix}.pth"),),
        preprocessing=IMAGENET_EVAL,
        params={(True, False): BASE_PARAMS, (True, True): BASE_21K_PARAMS,
                (False, False): LARGE_PARAMS, (False, True): LARGE_21K_PARAMS}[(base, in21k)],
        gmacs={(True, False): BASE_GMACS, (True, True): BASE_21K_GMACS,
               (False, False): LARGE_GMACS, (False, True): LARGE_21K_GMACS}[(base, in21k)],
        license="mit",
        paper=BEIT_V2_PAPER,
        metrics=metrics,
        upstream=upstream,
        training_data=data,
        notes=notes,
    )


_M = Metric
OFFICIAL_RECORDS = (
    _official_record("base", "pt1k_300e_ft1k", 1000, (_M("ImageNet-1k", 85.0, None, OFFICIAL_README),),
                     "beitv2_base_patch16_224_pt1k_300e", IN1K, "300-epoch pretraining, 100-epoch fine-tuning."),
    _official_record("base", "pt1k_ft1k", 1000, (_M("ImageNet-1k", 85.5, 97.5, OFFICIAL_README),),
                     "beitv2_base_patch16_224_pt1k", IN1K, "1600-epoch pretraining, 100-epoch fine-tuning."),
    _official_record("base", "pt1k_ft21k", 21841, (),
                     "beitv2_base_patch16_224_pt1k", ("ImageNet-1k (pretraining)", "ImageNet-21k"),
                     "Intermediate fine-tuning on ImageNet-21k (21841 classes, sorted WordNet ids), 90 epochs."),
    _official_record("base", "pt1k_ft21kto1k", 1000,
                     (_M("ImageNet-1k", 86.5, 98.0, OFFICIAL_README),
                      _M("ImageNet-1k", 86.458, 97.978, "microsoft/unilm beit2/get_started_for_image_classification.md")),
                     "beitv2_base_patch16_224_pt1k_ft21k", IN21K_THEN_1K, "ImageNet-21k 90 epochs, then ImageNet-1k 30 epochs."),
    _official_record("large", "pt1k_300e_ft1k", 1000, (_M("ImageNet-1k", 86.6, None, OFFICIAL_README),),
                     "beitv2_large_patch16_224_pt1k_300e", IN1K, "300-epoch pretraining, 50-epoch fine-tuning."),
    _official_record("large", "pt1k_ft1k", 1000, (_M("ImageNet-1k", 87.3, 98.2, OFFICIAL_README),),
                     "beitv2_large_patch16_224_pt1k", IN1K, "1600-epoch pretraining, 50-epoch fine-tuning."),
    _official_record("large", "pt1k_ft21k", 21841, (),
                     "beitv2_large_patch16_224_pt1k", ("ImageNet-1k (pretraining)", "ImageNet-21k"),
                     "Intermediate fine-tuning on ImageNet-21k (21841 classes, sorted WordNet ids), 90 epochs."),
    _official_record("large", "pt1k_ft21kto1k", 1000,
                     (_M("ImageNet-1k", 88.4, 98.6, OFFICIAL_README),
                      _M("ImageNet-1k", 88.370, 98.578, "microsoft/unilm beit2/get_started_for_image_classification.md")),
                     "beitv2_large_patch16_224_pt1k_ft21k", IN21K_THEN_1K, "ImageNet-21k 90 epochs, then ImageNet-1k 20 epochs."),
)


def _timm_record(size: str, tag: str, official_suffix: str, top1: float | None, default: bool) -> WeightRecord:
    official = next(r for r in OFFICIAL_RECORDS if r.name == f"beitv2_{size}_patch16_224_{official_suffix}")
    arch = f"beitv2_{size}_patch16_224"
    return WeightRecord(
        name=f"{arch}.{tag}",
        architecture=official.architecture,
        num_classes=official.num_classes,
        label_set=official.label_set,
        sources=(timm_hub(f"{arch}.{tag}"),),
        preprocessing=TIMM_BASE_EVAL if size == "base" else TIMM_LARGE_EVAL,
        params=official.params,
        gmacs=official.gmacs,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        metrics=(_M("ImageNet-1k", top1, None, "timm results/results-imagenet.csv"),) if top1 else (),
        converted_from=official.sources[0].url,
        upstream=official.upstream,
        training_data=official.training_data,
        aliases=(arch,) if default else (),
        notes=f"timm's copy of {official.name} on the Hugging Face Hub, evaluated at crop_pct "
        f"{'0.9' if size == 'base' else '0.95'}.",
    )


TIMM_RECORDS = (
    _timm_record("base", "in1k_ft_in22k_in1k", "pt1k_ft21kto1k", 86.494, default=True),
    _timm_record("base", "in1k_ft_in1k", "pt1k_ft1k", 85.596, default=False),
    _timm_record("base", "in1k_ft_in22k", "pt1k_ft21k", None, default=False),
    _timm_record("large", "in1k_ft_in22k_in1k", "pt1k_ft21kto1k", 88.406, default=True),
    _timm_record("large", "in1k_ft_in1k", "pt1k_ft1k", 87.414, default=False),
    _timm_record("large", "in1k_ft_in22k", "pt1k_ft21k", None, default=False),
)

TEST_RECORDS = (
    WeightRecord(
        name="test_beit_tiny",
        architecture="test_beit_tiny",
        num_classes=1000,
        label_set="imagenet-1k",
        sources=(),
        preprocessing=IMAGENET_EVAL,
        params=320_456,
        gmacs=0.0,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        notes="A 4-block, 64-wide BEiT with random weights for tests and demos. It has no pretrained weights.",
    ),
)

CLASSIFIER_RECORDS: tuple[WeightRecord, ...] = MMPRETRAIN_RECORDS + OFFICIAL_RECORDS + TIMM_RECORDS + TEST_RECORDS
