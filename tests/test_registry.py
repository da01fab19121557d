"""Names, records and their metadata."""

import pytest
import torch

from beitv2_zoo import get_record, list_models
from beitv2_zoo.errors import UnknownModelError
from beitv2_zoo.labels import class_names, imagenet1k_classes, imagenet21k_classes, imagenet21k_wnids
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.weights import ALL_RECORDS

MMPRETRAIN_CLASSIFIERS = [
    "beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k",
    "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k",
    "beit-base-p16_beit-pre_8xb128-coslr-100e_in1k",
    "beit-base-p16_beit-in21k-pre_3rdparty_in1k",
]
OFFICIAL_FINETUNED = [
    f"beitv2_{size}_patch16_224_{suffix}"
    for size in ("base", "large")
    for suffix in ("pt1k_300e_ft1k", "pt1k_ft1k", "pt1k_ft21k", "pt1k_ft21kto1k")
]
TIMM_TAGS = [
    f"beitv2_{size}_patch16_224.{tag}"
    for size in ("base", "large")
    for tag in ("in1k_ft_in22k_in1k", "in1k_ft_in1k", "in1k_ft_in22k")
]


def test_every_named_classifier_is_registered():
    names = set(list_models())
    assert set(MMPRETRAIN_CLASSIFIERS + OFFICIAL_FINETUNED + TIMM_TAGS) <= names
    assert list_models() == sorted(list_models())


def test_wildcards_and_prefixes():
    beitv2 = list_models("*beitv2*")
    assert set(OFFICIAL_FINETUNED + TIMM_TAGS + MMPRETRAIN_CLASSIFIERS[:2]) <= set(beitv2)
    assert not set(MMPRETRAIN_CLASSIFIERS[2:]) & set(beitv2)
    assert list_models("beit-base") == sorted(MMPRETRAIN_CLASSIFIERS)  # mmpretrain-style prefix match
    assert list_models("*pt1k_ft21k") == sorted(n for n in OFFICIAL_FINETUNED if "pt1k_ft21k" in n)  # pattern + '*' 
    assert list_models("no-such-thing*") == []


def test_aliases_and_case():
    assert get_record("beitv2_base_patch16_224").name == "beitv2_base_patch16_224.in1k_ft_in22k_in1k"
    assert get_record("beitv2-base_3rdparty_in1k").name == "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"
    assert get_record("BEIT-BASE-P16_BEITV2-IN21K-PRE_3RDPARTY_IN1K").name == "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownModelError) as error:
        get_record("beit-base-p16_beitv2-in21k_3rdparty_in1k")
    assert isinstance(error.value, ValueError)
    assert "beit-base-p16_beitv2-in21k-pre_3rdparty_in1k" in str(error.value)
    assert "list_models" in str(error.value)


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: r.name)
def test_record_is_complete_and_its_param_count_is_exact(record):
    assert record.architecture in ARCHITECTURES
    assert record.label_set in ("imagenet-1k", "imagenet-21k")
    assert len(class_names(record.label_set)) == record.num_classes
    assert record.license and record.paper.startswith("https://arxiv.org/")
    if not record.name.startswith("test_"):
        assert record.sources, "every published record names where to get its file"
        assert record.metrics or record.num_classes == 21841
    for source in record.sources:
        assert (source.url is None) != (source.hf_repo is None)
        if source.host == "openmmlab":
            assert source.sha256_prefix and source.url.endswith(f"-{source.sha256_prefix}.pth")
    with torch.device("meta"):
        model = ARCHITECTURES[record.architecture].build(**record.model_kwargs, num_classes=record.num_classes)
    assert sum(p.numel() for p in model.parameters()) == record.params


def test_published_parameter_counts():
    assert get_record("beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k").params == 86_530_984
    assert get_record("beitv2_large_patch16_224_pt1k_ft1k").params == 304_430_568


def test_preprocessing_follows_each_source():
    assert get_record("beit-base-p16_beit-in21k-pre_3rdparty_in1k").preprocessing.mean == (0.5, 0.5, 0.5)
    v2 = get_record("beit-base-p16_beitv2-in21k-pre_3rdparty_in1k").preprocessing
    assert (v2.resize_size, v2.crop_size, v2.interpolation, v2.mean) == (256, 224, "bicubic", (0.485, 0.456, 0.406))
    assert get_record("beitv2_base_patch16_224.in1k_ft_in1k").preprocessing.resize_size == 248  # crop_pct 0.9
    assert get_record("beitv2_large_patch16_224.in1k_ft_in1k").preprocessing.resize_size == 235  # crop_pct 0.95


def test_label_sets():
    names = imagenet1k_classes()
    assert len(names) == 1000 and len(set(names)) == 999  # ImageNet has two classes named 'crane' 
    assert names[0] == "tench, Tinca tinca"
    assert names[1] == "goldfish, Carassius auratus"
    assert names[65] == "sea snake"
    assert names[999] == "toilet tissue, toilet paper, bathroom tissue"
    wnids = imagenet21k_wnids()
    assert len(wnids) == 21841 and list(wnids) == sorted(wnids) and len(set(wnids)) == 21841
    assert len(imagenet21k_classes()) == 21841 and all(imagenet21k_classes())
