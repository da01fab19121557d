"""Names, records and their metadata."""

import pytest
import torch

from beitv2_zoo import get_record, list_models
from beitv2_zoo.errors import UnknownModelError
from beitv2_zoo.weights.labels import LABEL_SETS, class_names, imagenet1k_classes, imagenet21k_classes, imagenet21k_wnids
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
    segmenters_21k = [f"beitv2_{size}_patch16_224_pt1k_ft21ktoade20k" for size in ("base", "large")]
    assert list_models("*pt1k_ft21k") == sorted(  # pattern + '*': the 21k classifiers and the 21k-to-ADE20K segmenters
        [n for n in OFFICIAL_FINETUNED if "pt1k_ft21k" in n] + segmenters_21k)
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
    architecture = ARCHITECTURES[record.architecture]
    assert record.task in ("image-classification", "semantic-segmentation", "masked-image-modeling", "visual-tokenizer")
    assert record.task == architecture.task
    assert architecture.is_classifier == (record.task in ("image-classification", "semantic-segmentation"))
    if architecture.is_classifier:
        assert record.label_set in LABEL_SETS
        assert len(class_names(record.label_set)) == record.num_classes
    else:  # pretraining models and tokenizers have no classification head
        assert record.num_classes == 0 and record.label_set is None
    if record.task == "masked-image-modeling":
        assert record.tokenizer and get_record(record.tokenizer).task == "visual-tokenizer"
    assert record.license and record.paper.startswith("https://arxiv.org/")
    if not record.name.startswith("test_"):
        assert record.sources, "every published record names where to get its file"
        if architecture.is_classifier:
            assert record.metrics or record.num_classes == 21841
    for source in record.sources:
        assert (source.url is None) != (source.hf_repo is None)
        if source.sha256_prefix:
            assert source.url.endswith(f"-{source.sha256_prefix}.pth")
        elif source.host == "openmmlab":  # every OpenMMLab file name carries its hash, except the tokenizer's
            assert source.url.endswith("/target_generator_ckpt/vqkd_encoder.pth")
    extra = {"num_classes": record.num_classes} if architecture.is_classifier else {}
    with torch.device("meta"):
        model = architecture.build(**record.model_kwargs, **extra)
    assert sum(p.numel() for p in model.parameters()) == record.params


def test_published_parameter_counts():
    assert get_record("beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k").params == 86_530_984
    assert get_record("beitv2_large_patch16_224_pt1k_ft1k").params == 304_430_568
    assert get_record("beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k").params == 192_809_840  # as mmpretrain builds it


def test_pretraining_models_and_tokenizers_are_registered():
    pretrain = ["beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k"] + [
        f"beitv2_{size}_patch16_224_{suffix}" for size in ("base", "large") for suffix in ("pt1k_300e", "pt1k")]
    tokenizers = ["vqkd_encoder_base_decoder_1x768x12_clip", "vqkd_encoder_base_decoder_3x768x12_clip",
                  "vqkd_encoder_base_decoder_1x768x12_dino", "vqkd_encoder"]
    assert set(pretrain + tokenizers) <= set(list_models())
    assert {get_record(n).task for n in pretrain} == {"masked-image-modeling"}
    assert {get_record(n).task for n in tokenizers} == {"visual-tokenizer"}
    prefixes = {n: get_record(n).sources[0].sha256_prefix for n in tokenizers}
    assert prefixes == {"vqkd_encoder_base_decoder_1x768x12_clip": "d93179da",
                        "vqkd_encoder_base_decoder_3x768x12_clip": "d5036aa7",
                        "vqkd_encoder_base_decoder_1x768x12_dino": "663c55d7", "vqkd_encoder": None}
    assert get_record("vqkd_encoder").preprocessing.mean == (0.0, 0.0, 0.0)  # encode takes pixels in [0, 1]


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


def test_list_models_filters_by_weights_and_task():
    """Issue 15 item 5: 0.1's list_models(pretrained=True) raised TypeError and listed test names."""
    assert not [n for n in list_models() if n.startswith("test_")]
    assert "test_beit_tiny" in list_models(include_test=True)
    assert set(list_models(pretrained=True)) == {n for n in list_models() if get_record(n).sources}
    assert list_models(pretrained=False) == []  # every listed name has weights
    tokenizers = list_models(task="visual-tokenizer")
    assert tokenizers and all(get_record(n).task == "visual-tokenizer" for n in tokenizers)
    assert list_models("*3x768*", task="visual-tokenizer") == ["vqkd_encoder_base_decoder_3x768x12_clip"]
    with pytest.raises(ValueError, match="image-classification"):
        list_models(task="segmentation")


def test_list_command_marks_aliases_and_the_default(capsys):
    import json

    from beitv2_zoo.cli import main

    assert main(["list", "--json", "--task", "image-classification"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["beitv2_base_patch16_224.in1k_ft_in22k_in1k"]["aliases"] == ["beitv2_base_patch16_224"]
    assert by_name["beit-base-p16_beitv2-in21k-pre_3rdparty_in1k"]["default"] is True
    assert sum(row["default"] for row in rows) == 1 and all(row["pretrained"] for row in rows)
    assert main(["list", "--task", "nope"]) == 2
