"""The segmentation data layer: the ADE20K layout, pairing, label maps read as indices, seeded samples,
unreadable pairs replaced."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from beitv2_zoo.train.data import ShardSampler, sample_seed
from beitv2_zoo.train.errors import DataError
from beitv2_zoo.train.seg_data import SegmentationDataset, load_label, segmentation_samples


def write_ade(root: Path, split: str = "training", names=("a", "b", "c"), size=(20, 12), suffix=".jpg",
              seed: int = 0) -> Path:
    """``root/images/<split>/<name><suffix>`` with ``root/annotations/<split>/<name>.png`` (mode L, 0..5)."""
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    for name in names:
        width, height = size
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            root / "images" / split / f"{name}{suffix}", quality=95)
        Image.fromarray(rng.integers(0, 6, (height, width), dtype=np.uint8), mode="L").save(
            root / "annotations" / split / f"{name}.png")
    return root


class Seeded:
    """A transform whose output depends on the pixels, the label and both random sources."""

    def __call__(self, image, label, seed):
        noise = float(np.random.default_rng(seed).random())
        return {"image": torch.from_numpy(np.array(image, dtype=np.float32)) + noise + torch.rand(()),
                "label": torch.from_numpy(label.astype(np.int64))}


# --------------------------------------------------------------------------- layout
def test_pairs_by_name_in_sorted_order(tmp_path):
    root = write_ade(tmp_path, names=("b", "a"))
    write_ade(tmp_path, names=("c",), suffix=".png")  # any image suffix
    (tmp_path / "annotations" / "training" / "orphan.png").write_bytes(b"")  # a label without image: ignored
    samples = segmentation_samples(root, "training")
    assert [p.name for p in samples.images] == ["a.jpg", "b.jpg", "c.png"]
    assert [p.name for p in samples.labels] == ["a.png", "b.png", "c.png"]
    assert all(p.parent == tmp_path / "annotations" / "training" for p in samples.labels)
    assert len(samples) == 3


def test_sub_folders_pair_by_relative_path(tmp_path):
    write_ade(tmp_path, split="validation/x", names=("a",))
    write_ade(tmp_path, split="validation/y", names=("a",))
    samples = segmentation_samples(tmp_path, "validation")
    assert [p.relative_to(tmp_path).as_posix() for p in samples.labels] == [
        "annotations/validation/x/a.png", "annotations/validation/y/a.png"]


def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*images/training/\*\.jpg.*annotations/training/\*\.png"):
        segmentation_samples(tmp_path / "nowhere", "training")


def test_parent_of_ade_folder_suggests_the_right_root(tmp_path):
    write_ade(tmp_path / "ADEChallengeData2016")
    with pytest.raises(DataError, match=f"--data {tmp_path / 'ADEChallengeData2016'}"):
        segmentation_samples(tmp_path, "training")


def test_images_folder_itself_suggests_its_parent(tmp_path):
    write_ade(tmp_path)
    with pytest.raises(DataError, match=f"pass --data {tmp_path}"):
        segmentation_samples(tmp_path / "images", "training")


def test_missing_split_lists_the_splits_there(tmp_path):
    write_ade(tmp_path, split="training")
    with pytest.raises(DataError, match=r"validation does not exist \(.* has training\)"):
        segmentation_samples(tmp_path, "validation")


def test_missing_annotations_folder(tmp_path):
    write_ade(tmp_path)
    for path in (tmp_path / "annotations" / "training").iterdir():
        path.unlink()
    (tmp_path / "annotations" / "training").rmdir()
    with pytest.raises(DataError, match="annotations/training does not exist"):
        segmentation_samples(tmp_path, "training")


def test_images_without_labels_are_listed(tmp_path):
    write_ade(tmp_path, names=[f"n{i}" for i in range(8)])
    for i in range(7):
        (tmp_path / "annotations" / "training" / f"n{i}.png").unlink()
    with pytest.raises(DataError, match=r"7 of 8 images .* no label map .*n0\.jpg, n1\.jpg, n2\.jpg, n3\.jpg, "
                                        r"n4\.jpg and 2 more"):
        segmentation_samples(tmp_path, "training")


def test_empty_split(tmp_path):
    (tmp_path / "images" / "training").mkdir(parents=True)
    (tmp_path / "annotations" / "training").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        segmentation_samples(tmp_path, "training")


# --------------------------------------------------------------------------- labels
def test_palette_label_is_read_as_indices(tmp_path):
    indices = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = Image.fromarray(indices, mode="P")
    image.putpalette([v for i in range(256) for v in ((i * 7) % 256, (i * 13) % 256, 255 - i)])
    image.save(tmp_path / "p.png")
    label = load_label(tmp_path / "p.png")
    assert label.dtype == np.uint8 and np.array_equal(label, indices)


def test_grey_label_keeps_255(tmp_path):
    values = np.array([[0, 1, 150], [255, 7, 3]], dtype=np.uint8)
    Image.fromarray(values, mode="L").save(tmp_path / "l.png")
    assert np.array_equal(load_label(tmp_path / "l.png"), values)


def test_rgb_label_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"RGB image; label maps must be single-channel 8-bit .*mode L or P"):
        load_label(tmp_path / "rgb.png")


def test_label_of_another_size_is_refused(tmp_path):
    write_ade(tmp_path, names=("a",))
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8), mode="L").save(tmp_path / "annotations" / "training" / "a.png")
    dataset = SegmentationDataset(segmentation_samples(tmp_path, "training"), Seeded())
    with pytest.raises(DataError, match="is 5x5 but its image .* is 20x12"):
        dataset[(0, 0)]


# --------------------------------------------------------------------------- the data set
def test_samples_depend_only_on_seed_epoch_and_index(tmp_path):
    samples = segmentation_samples(write_ade(tmp_path), "training")
    first = SegmentationDataset(samples, Seeded(), seed=3)
    second = SegmentationDataset(samples, Seeded(), seed=3)
    torch.manual_seed(123)  # the global generator's state does not matter
    forward = [first[(1, i)] for i in range(3)]
    backward = [second[(1, i)] for i in reversed(range(3))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert int(a["replaced"]) == 0
    assert not torch.equal(first[(2, 0)]["image"], forward[0]["image"])  # another epoch
    assert not torch.equal(SegmentationDataset(samples, Seeded(), seed=4)[(1, 0)]["image"], forward[0]["image"])
    assert torch.equal(first[0]["image"], first[(0, 0)]["image"])  # a bare index is epoch 0


def test_transform_gets_the_sample_seed_and_raw_pair(tmp_path):
    samples = segmentation_samples(write_ade(tmp_path), "training")
    seen = []

    def transform(image, label, seed):
        seen.append((image.mode, image.size, label.dtype, label.shape, seed))
        return {}

    SegmentationDataset(samples, transform, seed=5)[(2, 1)]
    assert seen == [("RGB", (20, 12), np.uint8, (12, 20), sample_seed(5, 2, 1))]


def test_unreadable_pair_is_replaced_by_the_next_and_logged_once(tmp_path, caplog):
    samples = segmentation_samples(write_ade(tmp_path), "training")
    (tmp_path / "images" / "training" / "b.jpg").write_bytes(b"not a jpeg")
    dataset = SegmentationDataset(samples, Seeded())
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.train.seg_data"):
        replaced = dataset[(0, 1)]
        again = dataset[(0, 1)]
    expected = np.asarray(Image.open(tmp_path / "annotations" / "training" / "c.png"))
    assert int(replaced["replaced"]) == 1 and int(again["replaced"]) == 1
    assert np.array_equal(replaced["label"].numpy(), expected)
    warnings = [r for r in caplog.records if "b.jpg" in r.getMessage()]
    assert len(warnings) == 1 and "replaced by the next one" in warnings[0].getMessage()


def test_truncated_label_is_replaced_too(tmp_path):
    samples = segmentation_samples(write_ade(tmp_path), "training")
    path = tmp_path / "annotations" / "training" / "c.png"
    path.write_bytes(path.read_bytes()[:40])
    item = SegmentationDataset(samples, Seeded())[(0, 2)]  # c → a (wraps around)
    expected = np.asarray(Image.open(tmp_path / "annotations" / "training" / "a.png"))
    assert int(item["replaced"]) == 1 and np.array_equal(item["label"].numpy(), expected)


def test_all_unreadable_raises(tmp_path):
    samples = segmentation_samples(write_ade(tmp_path), "training")
    for path in (tmp_path / "images" / "training").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DataError, match="unreadable"):
        SegmentationDataset(samples, Seeded())[(0, 0)]


def test_works_with_the_evaluation_sampler(tmp_path):
    samples = segmentation_samples(write_ade(tmp_path, names=("a", "b", "c", "d", "e")), "training")
    dataset = SegmentationDataset(samples, Seeded())
    shard = [dataset[key]["label"] for key in ShardSampler(len(dataset), num_replicas=2, rank=1)]
    assert len(shard) == 2
    assert np.array_equal(shard[1].numpy(), np.asarray(Image.open(samples.labels[3])))
