"""The poly schedule of the segmentation recipes: mmcv 1.x's ``PolyLrUpdaterHook`` with linear
warmup, against a numpy transcription of its formula and against mmengine's ``LinearLR`` /
``PolyLR`` where the two libraries compute the same function."""

import itertools

import numpy as np
import pytest
import torch

from beitv2_zoo.train.config import FinetuneRecipe, SegmentationRecipe
from beitv2_zoo.train.errors import RecipeError
from beitv2_zoo.train.schedule import learning_rate, poly_warmup, warmup_cosine


def mmcv1_poly(base_lr, steps, max_iters, power=1.0, min_lr=0.0, warmup_iters=0, warmup_ratio=0.1):
    """mmcv 1.x, by iteration: ``get_regular_lr`` of ``PolyLrUpdaterHook``, then ``get_warmup_lr``
    ('linear') for ``iter < warmup_iters``, as the hook's ``before_train_iter`` applies them."""
    t = np.asarray(steps, dtype=np.float64)
    regular = (base_lr - min_lr) * (1.0 - t / max_iters) ** power + min_lr
    if warmup_iters == 0:
        return regular
    k = (1.0 - t / warmup_iters) * (1.0 - warmup_ratio)
    return np.where(t < warmup_iters, regular * (1.0 - k), regular)


def mmengine_lrs(peak, steps, schedulers):
    """The rate mmengine's iteration-based schedulers give at each of ``steps`` optimizer steps."""
    pytest.importorskip("mmengine")
    from mmengine.optim.scheduler import LinearLR, PolyLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    built = [{"linear": LinearLR, "poly": PolyLR}[kind](optimizer, by_epoch=False, **kw) for kind, kw in schedulers]
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        for scheduler in built:
            scheduler.step()
    return np.array(lrs)


@pytest.mark.parametrize("total,warmup,power,min_lr,ratio", [
    (160000, 1500, 1.0, 0.0, 1e-6),  # the official configs
    (1000, 30, 0.9, 1e-4, 0.1),  # mmseg 0.x's schedule_160k defaults (power 0.9, min_lr 1e-4), mmcv's default ratio
    (50, 0, 1.0, 0.0, 1e-6),
    (7, 7, 2.0, 0.0, 0.0),  # warmup over the whole run
])
def test_poly_warmup_is_mmcv1(total, warmup, power, min_lr, ratio):
    peak = 5e-5 if min_lr == 0 else 1e-2
    steps = np.unique(np.r_[np.arange(min(total, 3000)), np.linspace(0, total, 500).astype(int), warmup - 1, warmup])
    steps = steps[(steps >= 0) & (steps <= total)]
    ours = np.array([poly_warmup(int(s), total, peak, warmup, ratio, power, min_lr) for s in steps])
    expected = mmcv1_poly(peak, steps, total, power, min_lr, warmup, ratio)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-20)


def test_official_endpoints():
    peak, total, warmup = 5e-5, 160000, 1500
    assert poly_warmup(0, total, peak, warmup) == pytest.approx(peak * 1e-6)  # warmup_ratio of the peak
    assert poly_warmup(warmup, total, peak, warmup) == pytest.approx(peak * (1 - warmup / total))  # decayed already
    assert poly_warmup(total, total, peak, warmup) == 0.0
    values = [poly_warmup(s, total, peak, warmup) for s in range(warmup, total + 1, 997)]
    assert all(a > b for a, b in itertools.pairwise(values))
    with pytest.raises(ValueError):
        poly_warmup(0, 0, peak)


@pytest.mark.parametrize("power,eta_min", [(1.0, 0.0), (0.9, 1e-4)])
def test_without_warmup_mmengine_polylr_ending_one_step_later_agrees(power, eta_min):
    """mmengine's ``PolyLR(begin=0, end=E)`` decays over ``E - 1`` steps (``total_iters = end - begin - 1``):
    it is mmcv 1.x's poly over ``T`` steps when ``end = T + 1``."""
    peak, total = 1e-2, 300
    engine = mmengine_lrs(peak, total + 1, [("poly", {"power": power, "eta_min": eta_min, "begin": 0, "end": total + 1})])
    ours = [poly_warmup(s, total, peak, 0, power=power, min_lr=eta_min) for s in range(total + 1)]
    np.testing.assert_allclose(ours, engine, rtol=1e-9, atol=1e-15)


def test_the_warmup_factor_is_mmengine_linearlr_over_the_decayed_rate():
    """During the warmup mmcv 1.x multiplies the *decayed* rate by ``LinearLR``'s factor
    (``LinearLR(start_factor=r, begin=0, end=W + 1)``, which reaches 1 at step ``W``)."""
    peak, total, warmup, ratio = 1e-2, 400, 40, 1e-3
    factor = mmengine_lrs(1.0, warmup + 1, [("linear", {"start_factor": ratio, "begin": 0, "end": warmup + 1})])
    ours = np.array([poly_warmup(s, total, peak, warmup, ratio) / poly_warmup(s, total, peak, 0) for s in range(warmup + 1)])
    np.testing.assert_allclose(ours, factor, rtol=1e-9)


def test_mmseg1_linearlr_then_polylr_differs_by_about_w_over_t():
    """mmseg 1.x's BEiT config (``LinearLR(1e-6, end=W)``, ``PolyLR(begin=W, end=T)``) is another
    function: its warmup scales the peak (reached at ``W - 1``), and its decay restarts at ``W``.
    At the official 1500 of 160k steps the gap peaks at step ``W - 1``: ``W/T + 1/W`` ≈ 1.0 % of the peak."""
    peak, total, warmup = 1.0, 160000, 1500
    engine = mmengine_lrs(peak, total, [("linear", {"start_factor": 1e-6, "begin": 0, "end": warmup}),
                                        ("poly", {"power": 1.0, "eta_min": 0.0, "begin": warmup, "end": total})])
    ours = np.array([poly_warmup(s, total, peak, warmup) for s in range(total)])
    gap = np.abs(ours - engine)
    assert int(gap.argmax()) == warmup - 1 and engine[warmup - 1] == pytest.approx(peak)
    assert warmup / total < gap.max() < warmup / total + 1 / warmup  # 0.01003
    assert gap[warmup:].max() == pytest.approx(peak * warmup / total, rel=1e-3)  # after the warmup: W/T at most


def test_recipe_fields_pick_the_schedule():
    cosine = FinetuneRecipe(name="x", model="test_beit_tiny")
    assert (cosine.schedule, cosine.warmup_steps, cosine.poly_power) == ("cosine", 0, 1.0)
    seg = SegmentationRecipe(name="y", model="test_beit_tiny_upernet")
    assert (seg.schedule, seg.warmup_steps, seg.warmup_start_factor, seg.max_steps) == ("poly", 1500, 1e-6, 160000)
    args = (123, 1000, 1e-3, 50, 0.0)
    assert learning_rate("poly", *args, 1e-6, power=0.9) == poly_warmup(123, 1000, 1e-3, 50, 1e-6, 0.9, 0.0)
    assert learning_rate("cosine", *args, 0.0, "mmengine") == warmup_cosine(123, 1000, 1e-3, 50, 0.0, 0.0, "mmengine")
    with pytest.raises(ValueError):
        learning_rate("step", *args, 0.0)
    with pytest.raises(RecipeError, match="schedule must be one of"):
        FinetuneRecipe(name="x", model="m", schedule="step")
