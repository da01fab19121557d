"""Learning-rate schedules as plain functions of the optimizer step."""

import math

WARMUP_STYLES = ("official", "mmengine")


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
