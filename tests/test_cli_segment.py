"""``beitv2-zoo segment``: pictures and label maps per image, JSON rows, one-line errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beitv2_zoo.api import save_checkpoint
from beitv2_zoo.cli import main
from beitv2_zoo.segment import segment
from beitv2_zoo.transforms import load_image

from .conftest import EXAMPLE_IMAGE
from .test_segment import varied_segmenter

MODEL = ["--model", "test_beit_tiny_upernet"]


@pytest.fixture(scope="module")
def tiny_seg(tmp_path_factory):
    """``(model, --weights file)``: the varied tiny segmenter and its canonical file."""
    model = varied_segmenter()
    path = tmp_path_factory.mktemp("cli_segment") / "tiny_seg.safetensors"
    save_checkpoint(model, path)
    return model, str(path)


def test_text_lines_and_the_files_written(capsys, tiny_seg, tmp_path):
    model, weights = tiny_seg
    out = tmp_path / "out"
    assert main(["segment", str(EXAMPLE_IMAGE), *MODEL, "--weights", weights, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{EXAMPLE_IMAGE}  451x300  ") and " classes: " in lines[0]
    assert f"wrote {out / 'chelsea_seg.png'}" in captured.err and f"wrote {out / 'chelsea_labels.png'}" in captured.err

    labels = Image.open(out / "chelsea_labels.png")
    assert labels.mode == "L" and labels.size == (451, 300)
    expected = segment(model, load_image(EXAMPLE_IMAGE))["pred_sem_seg"]
    # The same weights, but loaded from the file at other memory alignments: the conv kernels may sum in
    # another order (logits within 3e-7), which can flip a pixel whose two best classes nearly tie.
    assert (np.asarray(labels) == expected).mean() > 0.999 and len(np.unique(expected)) > 1
    picture = Image.open(out / "chelsea_seg.png")
    assert picture.height >= 300 and picture.width > 451  # the overlay, then the legend (as tall as it needs)


def test_json_rows_list_every_class_present(capsys, tiny_seg, photo_paths):
    _, weights = tiny_seg
    folder = photo_paths["chelsea.png"].parent
    assert main(["segment", str(folder), *MODEL, "--weights", weights, "--json", "--mode", "whole"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(photo_paths)
    for row in rows:
        fractions = [c["fraction"] for c in row["classes"]]
        assert fractions == sorted(fractions, reverse=True) and sum(fractions) == pytest.approx(1.0)
        assert row["model"] == "test_beit_tiny_upernet" and "overlay" not in row
    chelsea = next(row for row in rows if row["image"].endswith("chelsea.png"))
    assert (chelsea["width"], chelsea["height"]) == (451, 300)


def test_same_names_in_two_folders_do_not_collide(capsys, tiny_seg, tmp_path, photo_paths):
    _, weights = tiny_seg
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(photo_paths["coffee.png"].read_bytes())
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "a"), str(tmp_path / "b"), *MODEL, "--weights", weights,
                 "--out", str(out), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(row["overlay"]).name for row in rows] == ["a_x_seg.png", "b_x_seg.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a_x_labels.png", "a_x_seg.png", "b_x_labels.png", "b_x_seg.png"]


def test_an_unreadable_image_is_one_line_and_the_others_go_on(capsys, tiny_seg, tmp_path, photo_paths):
    _, weights = tiny_seg
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes(photo_paths["coffee.png"].read_bytes())
    (folder / "bad.jpg").write_bytes(b"not a jpeg at all")
    Image.fromarray(np.zeros((2, 300, 3), dtype=np.uint8)).save(folder / "strip.png")
    assert main(["segment", str(folder), *MODEL, "--weights", weights, "--json"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [row["image"].endswith("good.png") for row in rows] == [True]
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "bad.jpg" in errors[0] and "strip.png" in errors[1] and "aspect ratio" in errors[1]
    assert "failed on 2 unreadable image(s) of 3" in captured.err


@pytest.mark.parametrize("extra, message", [
    (["--alpha", "2"], "--alpha: must be between 0 and 1"),
    (["--alpha", "x"], "--alpha: expected a number"),
    (["--mode", "tiles"], "--mode: invalid choice"),
    (["--model", "test_beit_tiny"], "not a semantic segmenter"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, tiny_seg, extra, message):
    _, weights = tiny_seg
    assert _status(["segment", str(EXAMPLE_IMAGE), *MODEL, "--weights", weights, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def _status(argv: list[str]) -> int:
    """``main``'s exit status, whether it returns it or argparse raises it."""
    try:
        return main(argv)
    except SystemExit as error:
        return int(error.code or 0)


def test_an_output_folder_holding_inputs_is_refused(capsys, tiny_seg, tmp_path, photo_paths):
    _, weights = tiny_seg
    image = tmp_path / "photo.png"
    image.write_bytes(photo_paths["coffee.png"].read_bytes())
    assert main(["segment", str(image), *MODEL, "--weights", weights, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds input images" in err[0]
    (tmp_path / "file.txt").write_text("x")
    assert main(["segment", str(image), *MODEL, "--weights", weights, "--out", str(tmp_path / "file.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_the_overlay_blends_the_colours_and_lists_classes_by_share():
    from beitv2_zoo.viz import segmentation_overlay

    image = np.full((60, 80, 3), 200, dtype=np.uint8)
    labels = np.zeros((60, 80), dtype=np.int64)
    labels[:, 50:] = 2
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    picture = segmentation_overlay(image, labels, palette, ["red", "green", "blue"], alpha=0.5)
    pixels = np.asarray(picture)
    assert picture.height >= 60 and picture.width > 80
    assert np.abs(pixels[10, 10].astype(int) - (228, 100, 100)).max() <= 1  # half the photo, half the colour
    assert np.abs(pixels[10, 70].astype(int) - (100, 100, 228)).max() <= 1
    legend = pixels[:, 80:]
    red_rows = np.flatnonzero((legend == (255, 0, 0)).all(axis=-1).any(axis=1))
    blue_rows = np.flatnonzero((legend == (0, 0, 255)).all(axis=-1).any(axis=1))
    assert red_rows.size and blue_rows.size and red_rows.max() < blue_rows.min()  # 62.5% above 37.5%
    assert not (legend == (0, 255, 0)).all(axis=-1).any()  # green is absent: not listed
    with pytest.raises(ValueError, match="same size"):
        segmentation_overlay(image, labels[:30], palette, ["red", "green", "blue"])
    with pytest.raises(ValueError, match="3 colours"):
        segmentation_overlay(image, labels + 1, palette, ["red", "green", "blue"])


def test_predict_refuses_a_segmenter_and_points_to_segment(capsys, tiny_seg):
    _, weights = tiny_seg
    assert main(["predict", str(EXAMPLE_IMAGE), *MODEL]) == 2  # by name: refused before any download
    assert "use `beitv2-zoo segment" in capsys.readouterr().err
    assert main(["predict", str(EXAMPLE_IMAGE), "--model", weights]) == 2  # a segmenter file as the model
    assert "holds a segmenter" in capsys.readouterr().err
    assert main(["predict", str(EXAMPLE_IMAGE), "--model", "test_beit_tiny", "--weights", weights]) == 1
    assert "holds a semantic segmenter (decode_head.*) and this model is not one" in capsys.readouterr().err
