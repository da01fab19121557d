"""The training recipes: one module per recipe, each defining ``RECIPE``.

Module names are the recipe names with ``-`` and ``.`` turned into ``_`` (Python module
names cannot hold dashes); the ``name`` field keeps mmpretrain's exact config name, and that
is the name the command line takes (``beitv2-zoo train --list`` shows them all).
"""

import difflib
import importlib
import pkgutil
from functools import lru_cache
from pathlib import Path

from ..config import TrainRecipe, load_recipe_file
from ..errors import RecipeError


def module_name(recipe_name: str) -> str:
    """``'beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k'`` → ``'beitv2_beit_base_p16_8xb256_amp_coslr_300e_in1k'``."""
    return recipe_name.replace("-", "_").replace(".", "_")


@lru_cache(maxsize=1)
def _all() -> dict[str, TrainRecipe]:
    recipes: dict[str, TrainRecipe] = {}
    for info in pkgutil.iter_modules(__path__):
        recipe = importlib.import_module(f"{__name__}.{info.name}").RECIPE
        if module_name(recipe.name) != info.name:
            raise RuntimeError(f"recipe module {info.name} holds {recipe.name!r}; rename one of them")
        recipes[recipe.name] = recipe
    return recipes


def list_recipes() -> list[str]:
    """Every recipe name, sorted."""
    return sorted(_all())


def get_recipe(name: str) -> TrainRecipe:
    """A recipe by name, by module name, or from a resolved ``recipe.json`` file (or a run folder holding one).

    Raises:
        RecipeError: no such recipe; the message lists the closest names.
    """
    recipes = _all()
    if name in recipes:
        return recipes[name]
    by_module = {module_name(n): n for n in recipes}
    if name in by_module:
        return recipes[by_module[name]]
    path = Path(name)
    if path.is_dir() and (path / "recipe.json").is_file():
        return load_recipe_file(path / "recipe.json")
    if path.suffix == ".json" and path.is_file():
        return load_recipe_file(path)
    close = difflib.get_close_matches(name, list(recipes), n=4, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise RecipeError(f"unknown recipe {name!r}.{hint} Run `beitv2-zoo train --list` for all recipes.")
