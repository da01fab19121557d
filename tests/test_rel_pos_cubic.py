"""The official BEiT cubic resize of relative position tables, reproduced without SciPy.

The fixture ``tests/fixtures/rel_pos_cubic.npz`` holds tables resized by the official loader's
``interp2d(kind='cubic')`` under SciPy 1.13 (``tests/fixtures/make_rel_pos_cubic.py`` says how to
regenerate it); the installed SciPy, when it has ``RectBivariateSpline``, checks the other cases.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from beitv2_zoo.layers.rel_pos import _geometric_offsets, bias_for_grid, resize_rel_pos_bias_table

FIXTURE = Path(__file__).parent / "fixtures" / "rel_pos_cubic.npz"
CASES = {"w14_to_w32": 32, "w8_to_w16": 16}


@pytest.fixture(scope="module")
def official():
    with np.load(FIXTURE) as arrays:
        return {k: arrays[k] for k in arrays.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cubic_matches_the_official_interp2d(official, name):
    window = CASES[name]
    table = torch.from_numpy(official[f"{name}_table"])
    out = resize_rel_pos_bias_table(table, (window, window), method="cubic")
    expected = official[f"{name}_official"]
    assert out.dtype == torch.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-6)
    assert torch.equal(out[-3:], table[-3:])  # the CLS rows are kept


def test_cubic_float64_before_rounding(official):
    name, window = "w8_to_w16", 16
    table = torch.from_numpy(official[f"{name}_table"]).double()
    out = resize_rel_pos_bias_table(table, (window, window), method="cubic")
    # a float64 table is read as float32, like the official loader, so only float32 accuracy is promised
    np.testing.assert_allclose(out[:-3].numpy(), official[f"{name}_float64"], rtol=0, atol=1e-6)


def _spline_reference(table: torch.Tensor, window: tuple[int, int]) -> np.ndarray:
    interpolate = pytest.importorskip("scipy.interpolate")
    if not hasattr(interpolate, "RectBivariateSpline"):
        pytest.skip("this SciPy has no RectBivariateSpline")
    side = int(round((table.shape[0] - 3) ** 0.5))
    dst = [2 * w - 1 for w in window]
    rows, cols = (_geometric_offsets(side, d).numpy() for d in dst)
    targets = [np.arange(-(d // 2), d // 2 + 1, dtype=np.float64) for d in dst]
    heads = []
    for h in range(table.shape[1]):
        z = table[:-3, h].float().double().reshape(side, side).numpy()  # [rows = y, cols = x]
        # interp2d(x, y, z)(dx, dy) == RectBivariateSpline(x, y, z.T)(dx, dy).T
        spline = interpolate.RectBivariateSpline(cols, rows, z.T, kx=3, ky=3, s=0)
        heads.append(spline(targets[1], targets[0]).T.reshape(-1))
    return np.stack(heads, axis=1)


@pytest.mark.parametrize(
    "src, window",
    [(14, (32, 32)), (14, (24, 40)), (8, (16, 5)), (7, (4, 4)), (14, (40, 40)), (3, (8, 8)), (12, (7, 9))],
)
def test_cubic_matches_rect_bivariate_spline(src, window):
    torch.manual_seed(src)
    table = torch.randn((2 * src - 1) ** 2 + 3, 3)
    out = resize_rel_pos_bias_table(table, window, method="cubic")
    assert out.shape == ((2 * window[0] - 1) * (2 * window[1] - 1) + 3, 3)
    np.testing.assert_allclose(out[:-3].double().numpy(), _spline_reference(table, window), rtol=0, atol=1e-6)


def test_cubic_reproduces_a_cubic_polynomial():
    """A not-a-knot spline is exact on cubics (in the interior of the source grid)."""
    side, window = 27, (20, 20)  # shrinking keeps every target inside the geometric grid
    offsets = _geometric_offsets(side, 2 * window[0] - 1)
    y, x = torch.meshgrid(offsets, offsets, indexing="ij")
    values = 0.01 * x**3 - 0.2 * x * y + 0.003 * y**3 + 1.0
    table = torch.cat([values.reshape(-1, 1), torch.zeros(3, 1, dtype=torch.float64)]).float()
    out = resize_rel_pos_bias_table(table, window, method="cubic")[:-3, 0].double()
    t = torch.arange(-(window[0] - 1), window[0], dtype=torch.float64)
    ty, tx = torch.meshgrid(t, t, indexing="ij")
    expected = 0.01 * tx**3 - 0.2 * tx * ty + 0.003 * ty**3 + 1.0
    torch.testing.assert_close(out, expected.reshape(-1), rtol=0, atol=1e-4)


def test_cubic_keeps_dtype_size_and_gradient():
    table = torch.randn(27**2 + 3, 2, dtype=torch.bfloat16)
    assert resize_rel_pos_bias_table(table, (14, 14), method="cubic") is table
    assert resize_rel_pos_bias_table(table, (16, 16), method="cubic").dtype == torch.bfloat16
    leaf = torch.randn(15**2 + 3, 2, requires_grad=True)
    bias_for_grid(leaf, (5, 6), method="cubic").sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="bicubic"):
        resize_rel_pos_bias_table(torch.zeros(27**2 + 3, 1), (16, 16), method="bicubic")


def test_bilinear_stays_the_default():
    torch.manual_seed(0)
    table = torch.randn(27**2 + 3, 2)
    assert torch.equal(resize_rel_pos_bias_table(table, (32, 32)), resize_rel_pos_bias_table(table, (32, 32), "bilinear"))
    assert not torch.equal(resize_rel_pos_bias_table(table, (32, 32)), resize_rel_pos_bias_table(table, (32, 32), "cubic"))
