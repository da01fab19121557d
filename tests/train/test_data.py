"""Data: layouts, unreadable files, determinism of augmentation, resumable sampler, MIM views, Mixup/CutMix."""

import numpy as np
import pytest
import torch
from PIL import Image

from beitv2_zoo.train.augment import ClassifierTrainTransform, MIMTransform, MixupCutmix
from beitv2_zoo.train.data import (ImageDataset, ResumableSampler, read_ann_file, sample_seed, scan_image_folder,
                                   split_samples, train_loader)
from beitv2_zoo.train.errors import DataError


def test_image_folder_and_ann_file_layouts(image_folder, tmp_path):
    samples = split_samples(str(image_folder), "train")
    assert samples.classes == ("class_0", "class_1", "class_2", "class_3")
    assert len(samples) == 65 and samples.labels.count(0) == 17
    ann = tmp_path / "meta" / "train.txt"
    ann.parent.mkdir()
    ann.write_text("class_1/000.png 1\nclass_2/003.png 2\n\nclass_3/001.png\n")
    listed = read_ann_file(ann, image_folder / "train")
    assert listed.labels == (1, 2, -1) and listed.paths[0] == image_folder / "train" / "class_1" / "000.png"
    assert split_samples(str(tmp_path), "../" + image_folder.name + "/train", "meta/train.txt").labels == (1, 2, -1)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    assert scan_image_folder(flat).labels == (-1,)
    with pytest.raises(DataError, match="does not exist"):
        scan_image_folder(tmp_path / "missing")


def test_unreadable_images_are_replaced_and_counted(image_folder, caplog):
    samples = split_samples(str(image_folder), "train")
    broken = samples.paths.index(image_folder / "train" / "class_0" / "broken.png")
    dataset = ImageDataset(samples, ClassifierTrainTransform(32, (0.5,) * 3, (0.5,) * 3, (0.5, 1.0)))
    item = dataset[(0, broken)]
    assert item["replaced"].item() == 1 and item["image"].shape == (3, 32, 32)
    assert "broken.png" in caplog.text
    assert dataset[(0, broken + 1)]["replaced"].item() == 0


def test_augmentation_depends_only_on_seed_epoch_and_index(image_folder):
    samples = split_samples(str(image_folder), "train")
    dataset = ImageDataset(samples, ClassifierTrainTransform(32, (0.5,) * 3, (0.5,) * 3, (0.2, 1.0)), seed=3)
    first = dataset[(2, 5)]["image"]
    torch.manual_seed(123)  # the global generator does not matter and is left as it was
    state = torch.get_rng_state()
    assert torch.equal(dataset[(2, 5)]["image"], first)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(dataset[(3, 5)]["image"], first)
    assert sample_seed(0, 1, 2) != sample_seed(0, 2, 1)
    # the same batches with or without worker processes
    loader, sampler = train_loader(dataset, 8, 0, 0, 1, seed=3)
    with_workers, _ = train_loader(dataset, 8, 2, 0, 1, seed=3)
    sampler.set_position(1)
    with_workers.sampler.set_position(1)
    assert torch.equal(next(iter(loader))["image"], next(iter(with_workers))["image"])


def test_resumable_sampler_position_and_ranks(image_folder):
    dataset = list(range(20))
    full = ResumableSampler(dataset, seed=7)
    full.set_position(3)
    order = list(full)
    partial = ResumableSampler(dataset, seed=7)
    partial.set_position(3, skip=6)
    assert list(partial) == order[6:] and len(partial) == 14
    ranks = [ResumableSampler(dataset, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_position(3)
    interleaved = [pair for pairs in zip(*ranks) for pair in pairs]
    assert interleaved == order  # two ranks see exactly one process's samples
    assert all(epoch == 3 for epoch, _ in order)


def test_mim_views_share_the_crop_and_masks_are_exact():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    transform = MIMTransform(32, 32, 8, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (0.2, 1.0), 0.0, 6, 2, None)
    out = transform(image, seed=11)
    assert out["image"].shape == out["target_image"].shape == (3, 32, 32)
    assert 0.0 <= out["target_image"].min() and out["target_image"].max() <= 1.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(out["image"] * std + mean, out["target_image"], atol=1e-5, rtol=0)  # one crop, two normalisations
    assert out["mask"].shape == (4, 4) and out["mask"].dtype == torch.bool and int(out["mask"].sum()) == 6
    assert torch.equal(transform(image, seed=11)["mask"], out["mask"])


def test_mixup_cutmix_targets():
    labels = torch.tensor([0, 1, 2, 3])
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 8, 8).clone()
    plain = MixupCutmix(4, mixup=0.0, cutmix=0.0, label_smoothing=0.1)
    _, targets = plain(images, labels, torch.Generator().manual_seed(0))
    torch.testing.assert_close(targets[0], torch.tensor([0.925, 0.025, 0.025, 0.025]))
    for seed in range(6):
        mixed, soft = MixupCutmix(4, 0.8, 1.0, label_smoothing=0.1)(images, labels, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(soft.sum(-1), torch.ones(4))
        # the share of the first image's label equals the share of its own pixels (Mixup: λ; CutMix: area)
        own = float(((3.0 - mixed[0]) / 3.0).mean())  # image 0 is mixed with image 3 (the batch reversed)
        assert own == pytest.approx((soft[0, 0].item() - 0.025) / 0.9, abs=1e-5)
