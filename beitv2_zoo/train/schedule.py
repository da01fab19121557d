"""Learning-rate schedules as plain functions of the optimizer step."""

import math


def warmup_cosine(step: int, total_steps: int, peak: float, warmup_steps: int = 0, final: float = 0.0,
                  warmup_start_factor: float = 0.0) -> float:
    """Linear warmup from ``peak × warmup_start_factor`` to ``peak``, then a half cosine down to ``final``.

    At ``step = warmup_steps`` the value is ``peak``; at ``step = total_steps`` it is ``final``.
    This is the official BEiT v2 ``cosine_scheduler`` per step (``warmup_start_factor=0``) and
    mmpretrain's ``LinearLR`` + ``CosineAnnealingLR`` with ``convert_to_iter_based=True``
    (``warmup_start_factor=1e-4``).
    """
    if warmup_steps > 0 and step < warmup_steps:
        start = peak * warmup_start_factor
        return start + (peak - start) * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final + 0.5 * (peak - final) * (1.0 + math.cos(math.pi * progress))
