"""VQ-KD teachers: frozen, eval-mode, normalising, on the tokenizer's grid; CLIP's target is the official one."""

import pytest
import torch

from beitv2_zoo.train.teachers import BeitTeacher, build_teacher


def test_registry_teacher_is_frozen_and_resampled_to_the_grid():
    teacher = build_teacher("test_beit_tiny", weights="random", img_size=32)  # patch 16: a 2 × 2 grid
    assert isinstance(teacher, BeitTeacher) and teacher.out_dim == 64
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    images = torch.rand(3, 3, 32, 32)
    features = teacher(images, (4, 4))
    assert features.shape == (3, 16, 64) and not features.requires_grad
    same_grid = teacher(images, (2, 2))
    model = teacher.model
    normalised = (images - teacher.mean) / teacher.std
    expected = model.fc_norm(model.forward_features(normalised)[:, 1:])
    torch.testing.assert_close(same_grid, expected)


def test_clip_teacher_features_are_the_official_target():
    pytest.importorskip("open_clip")
    teacher = build_teacher("clip:ViT-B-16:")  # random weights: no download
    seen = {}
    teacher.visual.ln_post.register_forward_hook(lambda module, args, out: seen.setdefault("out", out))
    features = teacher(torch.rand(1, 3, 224, 224), (14, 14))
    assert features.shape == (1, 196, 512)
    torch.testing.assert_close(features, seen["out"][:, 1:] @ teacher.visual.proj)  # ln_post, CLS dropped, proj
