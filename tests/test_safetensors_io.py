"""Memory-mapped safetensors reading: values, dtypes, shapes, offsets, no copy, clear errors."""

import json
import struct
import sys

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo.errors import CheckpointError
from beitv2_zoo.checkpoint.safetensors_io import load_mmap, read_header, save


def _tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=generator),
        "f16": torch.randn(7, generator=generator).half(),
        "bf16": torch.randn(2, 3, 4, generator=generator).bfloat16(),
        "i64": torch.arange(-5, 6, dtype=torch.int64).reshape(11, 1),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "flags": torch.tensor([True, False, True]),
    }


def _file_mappings(path) -> list[tuple[int, int]]:
    """Address ranges of this process's memory mappings of ``path`` (Linux)."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith(str(path)):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                ranges.append((start, end))
    return ranges


def test_values_dtypes_shapes_and_offsets_match_the_file(tmp_path):
    tensors = _tensors()
    path = tmp_path / "several.safetensors"
    save_file(tensors, str(path), metadata={"note": "kept"})
    header = read_header(path)
    loaded = load_mmap(path)
    raw = path.read_bytes()
    assert header.metadata == {"note": "kept"}
    assert list(loaded) == list(header.tensors) and set(loaded) == set(tensors)
    for name, expected in tensors.items():
        info, tensor = header.tensors[name], loaded[name]
        assert tensor.dtype == expected.dtype and tuple(tensor.shape) == tuple(expected.shape), name
        assert torch.equal(tensor, expected), name
        assert info.nbytes == expected.numel() * expected.element_size()
        # the bytes the tensor shows are exactly the bytes at its offsets in the file
        in_file = raw[header.data_start + info.begin : header.data_start + info.end]
        assert tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes() == in_file, name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_tensors_are_views_on_a_mapping_of_the_file_not_copies(tmp_path):
    path = tmp_path / "big.safetensors"
    save_file({"a": torch.randn(256, 1024), "b": torch.randn(1024)}, str(path))
    loaded = load_mmap(path)
    mappings = _file_mappings(path)
    assert mappings, "the file is not memory-mapped"
    for tensor in loaded.values():
        pointer = tensor.data_ptr()
        assert any(start <= pointer < end for start, end in mappings)
    # each tensor has its own storage (so it can be saved again), all on the same mapping
    assert loaded["a"].untyped_storage().data_ptr() != loaded["b"].untyped_storage().data_ptr()
    loaded["b"][0] = 123.0  # copy-on-write: the file does not change
    assert load_mmap(path)["b"][0] != 123.0


def _handwritten(path, entries: dict, data: bytes, pad: bool = True) -> None:
    header = json.dumps(entries).encode()
    if pad:
        header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_a_file_written_by_hand_is_read_without_the_safetensors_library(tmp_path):
    path = tmp_path / "hand.safetensors"
    entries = {
        "__metadata__": {"format": "pt"},
        "x": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
        "y": {"dtype": "F32", "shape": [1, 2], "data_offsets": [16, 24]},
    }
    _handwritten(path, entries, struct.pack("<2q", 7, -3) + struct.pack("<2f", 0.5, -1.25))
    loaded = load_mmap(path)
    assert loaded["x"].tolist() == [7, -3] and loaded["y"].tolist() == [[0.5, -1.25]]
    assert read_header(path).metadata == {"format": "pt"}


def test_misaligned_tensor_is_copied_into_aligned_memory(tmp_path):
    path = tmp_path / "odd.safetensors"
    entries = {"u": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
               "f": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}
    _handwritten(path, entries, bytes([9]) + struct.pack("<2f", 1.5, 2.5))
    loaded = load_mmap(path)
    assert loaded["f"].tolist() == [1.5, 2.5] and loaded["f"].data_ptr() % 4 == 0


@pytest.mark.parametrize(
    "entries, data, match",
    [
        ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "truncated"),
        ({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "8 bytes for shape"),
        ({"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unsupported dtype"),
        ({"x": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, b"\0\0", "gap"),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path, entries, data, match):
    path = tmp_path / "bad.safetensors"
    _handwritten(path, entries, data)
    with pytest.raises(CheckpointError, match=match):
        load_mmap(path)


def test_garbage_and_short_files_are_clear_errors(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\1\2")
    with pytest.raises(CheckpointError, match="only 2 bytes"):
        read_header(short)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 4) + b"{no}")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_header(garbage)


def test_save_is_atomic_and_round_trips_shared_and_strided_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"whole": base, "column": base[:, 1], "same": base}  # shared storage, a strided view
    path = tmp_path / "out" / "saved.safetensors"
    save(path, tensors, {"k": "v"})
    loaded = load_mmap(path)
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    assert [p.name for p in path.parent.iterdir()] == ["saved.safetensors"]
