"""Learning-rate schedules as plain functions of the optimizer step.

* :func:`warmup_cosine`: linear warmup then a half cosine (BEiT v2 pretraining, fine-tuning, VQ-KD).
* :func:`poly_warmup`: the polynomial decay with linear warmup of the BEiT v2 segmentation
  configs (mmcv 1.x ``PolyLrUpdaterHook`` with ``warmup='linear'``, by iteration).

:data:`SCHEDULES` names them for a recipe's ``schedule`` field; :func:`learning_rate` dispatches.
"""

import math

WARMUP_STYLES = ("official", "mmengine")
SCHEDULES = ("cosine", "poly")


def warmup_cosine(step: int, total_steps: int, peak: float, warmup_steps: int = 0, final: float = 0.0,
                  warmup_start_factor: float = 0.0, warmup_style: str = "official") -> float:
    """Linear warmup from ``peak × warmup_start_factor`` to ``peak``, then a half cosine down to ``final``.

    The cosine is the same in both styles: ``final + (peak - final)(1 + cos(π (s - W) / (T - W))) / 2``
    for ``s ≥ W``, reaching ``final`` at ``s = T``. The warmup differs by one step:

    * ``'official'``: the BEiT v2 ``utils.cosine_scheduler``, whose warmup is
      ``np.linspace(start, peak, W)``: step ``W - 1`` already has the peak.
    * ``'mmengine'``: mmpretrain's ``LinearLR`` (iteration-based) then ``CosineAnnealingLR``: the
      factor grows by ``1/W`` per step and reaches the peak at step ``W``.
    """
    if warmup_style not in WARMUP_STYLES:
        raise ValueError(f"warmup_style must be one of {WARMUP_STYLES}, got {warmup_style!r}")
    if warmup_steps > 0 and step < warmup_steps:
        start = peak * warmup_start_factor
        span = warmup_steps - 1 if warmup_style == "official" else warmup_steps
        return start if span == 0 else start + (peak - start) * step / span
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final + 0.5 * (peak - final) * (1.0 + math.cos(math.pi * progress))


def poly_warmup(step: int, total_steps: int, peak: float, warmup_steps: int = 0, warmup_ratio: float = 1e-6,
                power: float = 1.0, min_lr: float = 0.0) -> float:
    """Polynomial decay over the whole run, scaled down by a linear warmup (mmcv 1.x, by iteration).

    The regular rate is ``(peak - min_lr)(1 - s/T)^power + min_lr`` for every step ``s`` (the
    decay starts at step 0, not after the warmup); during the warmup (``s < W``) it is multiplied
    by ``1 - (1 - s/W)(1 - warmup_ratio)``, which is ``warmup_ratio`` at step 0 and reaches 1 at
    step ``W``. This is mmcv 1.x's ``PolyLrUpdaterHook(power, min_lr)`` with ``warmup='linear'``,
    the schedule of the official BEiT v2 (and BEiT, mmseg 0.x) segmentation configs.

    mmseg 1.x writes the same recipe as mmengine's ``LinearLR(start_factor=r, end=W)`` then
    ``PolyLR(begin=W, end=T)``, which is another function: its warmup multiplies the *peak*
    (not the decayed rate), and its decay restarts at ``W`` (``peak (1 - (s - W)/(T - W))^power``).
    The two agree exactly without a warmup; with the official 1500 of 160k steps they differ by
    at most ``peak · W/T`` ≈ 0.94 % of the peak (``tests/train/test_schedule_poly.py``).
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    regular = (peak - min_lr) * (1.0 - progress) ** power + min_lr
    if warmup_steps > 0 and step < warmup_steps:
        return regular * (1.0 - (1.0 - step / warmup_steps) * (1.0 - warmup_ratio))
    return regular


def learning_rate(schedule: str, step: int, total_steps: int, peak: float, warmup_steps: int, min_lr: float,
                  warmup_start_factor: float, warmup_style: str = "official", power: float = 1.0) -> float:
    """The rate of ``step`` under a recipe's ``schedule`` (``'cosine'`` or ``'poly'``).

    ``warmup_start_factor`` is the rate at step 0 as a fraction of the peak in both schedules
    (the poly schedule's ``warmup_ratio``); ``warmup_style`` applies to the cosine schedule only
    (the poly warmup is mmcv 1.x's: the peak factor at step ``W``), ``power`` to the poly one only.
    """
    if schedule == "cosine":
        return warmup_cosine(step, total_steps, peak, warmup_steps, min_lr, warmup_start_factor, warmup_style)
    if schedule == "poly":
        return poly_warmup(step, total_steps, peak, warmup_steps, warmup_start_factor, power, min_lr)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
