"""``checkpoint.aligned.save_aligned``: every tensor 64-byte aligned, a valid file for any reader."""

import hashlib

import pytest
import torch
from safetensors.torch import load_file

from beitv2_zoo.models import build_beit
from beitv2_zoo.checkpoint.aligned import ALIGNMENT, save_aligned
from beitv2_zoo.checkpoint.safetensors_io import PAD_PREFIX, load_mmap, read_header

from .conftest import image_batch, randomize_


def _odd_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "odd": torch.randn(3, 5, generator=generator),  # 60 bytes: the next tensor needs a filler
        "bf16": torch.randn(7, generator=generator).to(torch.bfloat16),
        "flags": torch.tensor([True, False, True]),
        "index": torch.arange(11, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "strided": torch.randn(4, 6, generator=generator).t(),  # not contiguous
    }


def test_every_tensor_is_aligned_and_reads_back_exactly(tmp_path):
    tensors = _odd_tensors()
    path = tmp_path / "aligned.safetensors"
    digest = save_aligned(path, tensors, {"note": "kept"})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    header = read_header(path)
    assert header.metadata == {"note": "kept"} and header.data_start % ALIGNMENT == 0
    assert any(name.startswith(PAD_PREFIX) for name in header.tensors)
    for name in tensors:
        assert header.tensors[name].begin % ALIGNMENT == 0, name

    loaded = load_mmap(path)
    assert list(loaded) == list(tensors)  # fillers skipped, order kept
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
        assert loaded[name].numel() == 0 or loaded[name].data_ptr() % ALIGNMENT == 0, name
    by_library = load_file(str(path))  # the reference implementation accepts the file (fillers included)
    assert all(torch.equal(by_library[name], tensor) for name, tensor in tensors.items())
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_mapped_model_computes_exactly_what_the_model_in_memory_computes(tmp_path):
    model = randomize_(build_beit("test_beit_tiny")).eval()
    save_aligned(tmp_path / "m.safetensors", model.state_dict())
    with torch.device("meta"):
        mapped = build_beit("test_beit_tiny")
    mapped.load_state_dict(load_mmap(tmp_path / "m.safetensors"), assign=True)
    with torch.no_grad():
        for batch in (1, 2):  # kernels differ with the batch size
            assert torch.equal(mapped.eval()(image_batch(batch)), model(image_batch(batch))), batch


def test_filler_names_are_reserved(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_aligned(tmp_path / "x.safetensors", {f"{PAD_PREFIX}0": torch.zeros(1)})
    assert list(tmp_path.iterdir()) == []
