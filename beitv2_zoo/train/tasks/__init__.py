"""The five training tasks (VQ-KD, MIM, fine-tuning, linear probing, segmentation). Each module's
``setup(recipe, env)`` returns a :class:`TaskSetup`: the objective the loop trains, the module it
saves, the data, the parameter groups and the task's own evaluation. The loop itself
(:mod:`beitv2_zoo.train.engine`) is shared."""

from ..config import TrainRecipe
from ..distributed import DistEnv
from .base import Batch, TaskSetup

__all__ = ["Batch", "TaskSetup", "setup_task"]


def setup_task(recipe: TrainRecipe, env: DistEnv) -> TaskSetup:
    """Dispatch on ``recipe.task``."""
    if recipe.task == "vqkd":
        from .vqkd import setup
    elif recipe.task == "mim":
        from .mim import setup
    elif recipe.task == "finetune":
        from .finetune import setup
    elif recipe.task == "linear_probe":
        from .linear_probe import setup
    elif recipe.task == "segmentation":
        from .segmentation import setup
    else:
        raise ValueError(f"unknown task {recipe.task!r}")
    return setup(recipe, env)  # type: ignore[arg-type]
