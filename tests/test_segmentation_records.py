"""The ADE20K segmentation records: names, sources, protocol, published numbers, counts, cards and listings."""

import json

import pytest
import torch

from beitv2_zoo.cards import readme_model_table, render_card
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.weights import get_record, list_models
from beitv2_zoo.weights.labels import class_names
from beitv2_zoo.weights.schema import SegmentationPreprocessing
from beitv2_zoo.weights.segmentation import SEGMENTATION_RECORDS

V2 = [f"beitv2_{size}_patch16_224_pt1k_{suffix}"
      for size in ("base", "large") for suffix in ("ftade20k", "ft21ktoade20k")]
V1 = [f"beit_{size}_patch16_640_pt22k_ft22ktoade20k" for size in ("base", "large")]
MMSEG = {"upernet_beit-base_8x2_640x640_160k_ade20k": "eead221d",
         "upernet_beit-large_fp16_8x1_640x640_160k_ade20k": "8fc0dd5d"}
PUBLISHED = V2 + V1 + list(MMSEG)
SHIPPED = ["beitv2_tiny_patch4_64_canvas_upernet"]  # the segmentation reproduction's, inside the package
# (mIoU, mIoU ms+flip) of the first metric: reference/segmentation_ade20k.md §1 and the sources it cites
MIOU = {
    "beitv2_base_patch16_224_pt1k_ftade20k": (53.1, None),
    "beitv2_base_patch16_224_pt1k_ft21ktoade20k": (53.5, None),
    "beitv2_large_patch16_224_pt1k_ftade20k": (56.7, None),
    "beitv2_large_patch16_224_pt1k_ft21ktoade20k": (57.5, None),
    "beit_base_patch16_640_pt22k_ft22ktoade20k": (53.6, 54.2),
    "beit_large_patch16_640_pt22k_ft22ktoade20k": (56.7, 57.0),
    "upernet_beit-base_8x2_640x640_160k_ade20k": (53.08, 53.84),
    "upernet_beit-large_fp16_8x1_640x640_160k_ade20k": (56.33, 56.84),
}


def test_the_eight_files_and_the_test_name_are_registered_by_task():
    assert sorted(list_models(task="semantic-segmentation")) == sorted(PUBLISHED + SHIPPED)
    assert "test_beit_tiny_upernet" in list_models(task="semantic-segmentation", include_test=True)
    assert {r.name for r in SEGMENTATION_RECORDS} == set(PUBLISHED) | {"test_beit_tiny_upernet"}
    assert list_models("*ade20k*", task="image-classification") == []
    assert get_record("BEIT-BASE_UPERNET_8XB2-160K_ADE20K-640X640").name == "upernet_beit-base_8x2_640x640_160k_ade20k"
    large = get_record("beit-large_upernet_8xb1-amp-160k_ade20k-640x640")  # the mmsegmentation 1.x config name
    assert large.name == "upernet_beit-large_fp16_8x1_640x640_160k_ade20k"


@pytest.mark.parametrize("name", PUBLISHED)
def test_sources_follow_the_file_names(name):
    record = get_record(name)
    first = record.sources[0]
    if name in MMSEG:
        prefix = MMSEG[name]
        assert first.url == (f"https://download.openmmlab.com/mmsegmentation/v0.5/beit/{name}/{name}-{prefix}.pth")
        assert first.sha256_prefix == prefix and first.host == "openmmlab" and record.license == "apache-2.0"
    else:
        release = "BEiT-v2" if name in V2 else "v1.0"
        assert first.url == f"https://github.com/addf400/files/releases/download/{release}/{name}.pth"
        assert first.sha256_prefix is None and first.sha256 is None  # none is published
        assert first.host == "official" and record.license == "mit"
    assert first.filename == first.url.rsplit("/", 1)[-1]
    if name in V1:  # the same official weights, converted to transformers' layout by Hugging Face
        size = "base" if "base" in name else "large"
        hub = record.sources[1]
        assert (hub.hf_repo, hub.hf_filename, hub.host) == (f"microsoft/beit-{size}-finetuned-ade-640-640",
                                                           "pytorch_model.bin", "hf-hub")
        assert "transformers" in record.notes and hub.hf_repo in record.notes
    else:
        assert len(record.sources) == 1


@pytest.mark.parametrize("record", SEGMENTATION_RECORDS, ids=lambda r: r.name)
def test_protocol_classes_and_architecture(record):
    prep = record.preprocessing
    architecture = ARCHITECTURES[record.architecture]
    assert record.task == architecture.task == "semantic-segmentation"
    assert isinstance(prep, SegmentationPreprocessing) and prep.mode == "slide"
    assert prep.crop_size == record.model_kwargs["img_size"] == prep.scale[1] == prep.resize_size
    assert record.label_set == "ade20k" and record.num_classes == len(class_names("ade20k")) == 150
    if record.name.startswith("test_"):
        assert not record.sources and prep.crop_size == 64
        return
    size = "base" if "base" in record.name else "large"
    assert record.architecture == f"beit_{size}_patch16_upernet"
    crop = 512 if record.name in V2 else 640
    expected = (512, 341, (2048, 512)) if crop == 512 else (640, 426, (2560, 640))
    assert (prep.crop_size, prep.stride, prep.scale) == expected
    assert prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)  # every config: ImageNet mean/std
    assert prep.interpolation == "bilinear"
    assert set(record.model_kwargs) == {"img_size"}  # everything else is the architecture's default
    assert record.upstream and record.training_data[-1] == "ADE20K"


def test_published_numbers():
    for name, (miou, miou_ms) in MIOU.items():
        first = get_record(name).metrics[0]
        assert (first.dataset, first.miou, first.miou_ms, first.top1) == ("ADE20K", miou, miou_ms, None), name
    log = get_record("beitv2_large_patch16_224_pt1k_ft21ktoade20k").metrics[1]
    assert (log.miou, log.macc, log.aacc) == (57.54, 68.78, 86.22)
    v1 = get_record("beit_base_patch16_640_pt22k_ft22ktoade20k").metrics[1]
    assert (v1.miou, v1.miou_ms, v1.macc, v1.aacc) == (53.61, 54.26, 64.82, 84.62)
    for name in V2:  # BEiT v2 publishes single-scale only (unilm #871)
        assert all(m.miou_ms is None for m in get_record(name).metrics) and "#871" in get_record(name).notes
    assert get_record("beitv2_base_patch16_224_pt1k_ftade20k").upstream == "beitv2_base_patch16_224_pt1k"
    assert get_record("beitv2_large_patch16_224_pt1k_ft21ktoade20k").upstream == "beitv2_large_patch16_224_pt1k_ft21k"


def test_parameter_counts_match_a_meta_build():
    """163.1 M for BEiT-B + UPerNet at 512 is mmsegmentation 1.2.2's count of the same model (reference §2);
    the crop size changes only the relative position tables: (2·40 − 1)² − (2·32 − 1)² rows per head and
    block."""
    assert get_record("beitv2_base_patch16_224_pt1k_ftade20k").params == 163_080_812
    base_640 = get_record("beit_base_patch16_640_pt22k_ft22ktoade20k").params
    assert base_640 - 163_080_812 == ((2 * 40 - 1) ** 2 - (2 * 32 - 1) ** 2) * 12 * 12
    for record in SEGMENTATION_RECORDS:
        with torch.device("meta"):
            model = ARCHITECTURES[record.architecture].build(**record.model_kwargs, num_classes=record.num_classes)
        assert sum(p.numel() for p in model.parameters()) == record.params, record.name


def test_test_record_gmacs_match_a_flop_count():
    """The records' GMACs are FlopCounterMode counts of one crop (FLOPs / 2); the tiny model checks the method."""
    from torch.utils.flop_counter import FlopCounterMode

    record = get_record("test_beit_tiny_upernet")
    with torch.device("meta"):
        model = ARCHITECTURES[record.architecture].build(**record.model_kwargs, num_classes=150).eval()
        x = torch.empty(1, 3, 64, 64)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        logits = model(x)
    assert tuple(logits.shape) == (1, 150, 16, 16)
    assert round(counter.get_total_flops() / 2e9, 3) == record.gmacs


@pytest.mark.parametrize("name", PUBLISHED)
def test_cards_carry_the_miou_table_and_the_protocol(name):
    record = get_record(name)
    card = render_card(record)
    assert "pipeline_tag: image-segmentation" in card and "type: mean_iou" in card
    assert "| dataset | mIoU | mIoU (ms+flip) | mAcc | aAcc | source |" in card
    assert f"| ADE20K | {record.metrics[0].miou} |" in card and "ADE20K's validation split" in card
    prep = record.preprocessing
    assert f"every {prep.stride} pixels" in card and f"fit {prep.scale}" in card
    assert "reduce_zero_label" in card and "class_names('ade20k')" in card
    assert f"inference_model('{name}'" in card and "pred_sem_seg" in card
    table = readme_model_table()
    assert f"[`{name}`]" in table
    assert f"| {prep.crop_size} | {record.params / 1e6:.1f} M | {record.metrics[0].miou} |" in table


def test_hub_model_index_has_the_segmentation_scores():
    from huggingface_hub import ModelCard

    data = ModelCard(render_card(get_record("beitv2_large_patch16_224_pt1k_ft21ktoade20k"))).data
    scores = [(r.metric_name, r.metric_type, r.metric_value) for r in data.eval_results]
    assert scores == [("mIoU", "mean_iou", 57.5), ("mIoU", "mean_iou", 57.54), ("mAcc", "mean_accuracy", 68.78),
                      ("aAcc", "overall_accuracy", 86.22)]
    assert {r.dataset_name for r in data.eval_results} == {"ADE20K"}
    assert data.datasets == ["imagenet-1k", "imagenet-21k", "ade20k"]


def test_list_and_info_commands(capsys):
    from beitv2_zoo.cli import main

    assert main(["list", "--task", "semantic-segmentation"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert sorted(names) == sorted(PUBLISHED + SHIPPED)
    assert main(["list", "--json", "--task", "semantic-segmentation", "--all"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {row["task"] for row in rows} == {"semantic-segmentation"}
    assert {row["name"]: row["pretrained"] for row in rows}["test_beit_tiny_upernet"] is False
    assert main(["info", "beitv2_large_patch16_224_pt1k_ft21ktoade20k"]) == 0
    out = capsys.readouterr().out
    assert "ADE20K mIoU 57.54, mAcc 68.78, aAcc 86.22" in out and "440,398,636 params" in out
    assert "slide 512 every 341" in out and "fit (2048, 512)" in out
    assert main(["info", "upernet_beit-base_8x2_640x640_160k_ade20k"]) == 0
    out = capsys.readouterr().out
    assert "ADE20K mIoU 53.08, ms+flip mIoU 53.84" in out and "eead221d" in out
