"""The published training recipes: one module per recipe, each defining ``RECIPE``.

Module names are the recipe names with ``-`` and ``.`` turned into ``_`` (Python module
names cannot hold dashes); the ``name`` field keeps mmpretrain's exact config name, and that
is the name the command line takes (``beitv2-zoo train --list`` shows them all).

Only published recipes ship here. Any other recipe is a ``.py`` file anywhere that defines
``RECIPE`` (importing its schema from :mod:`beitv2_zoo.train.config`), passed by path:
``beitv2-zoo train path/to/my_recipe.py --data DIR``. The test suite's tiny recipes live in
``tests/train/recipes/``, the CPU reproduction's in ``examples/reproduction/recipes/``.
A recipe refers to other runs only through weight specs (``pretrained``, ``tokenizer``,
``teacher``): a registered name, a file or a run folder such as ``work_dirs/<recipe name>``,
wherever the recipe file itself lives.
"""

import difflib
import importlib
import importlib.util
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
    """Every published recipe name, sorted."""
    return sorted(_all())


def load_recipe_module(path: str | Path) -> TrainRecipe:
    """The ``RECIPE`` of a Python file, imported from its path (it need not be on ``sys.path``).

    Raises:
        RecipeError: the file is missing or defines no ``RECIPE`` of a recipe schema.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"beitv2_zoo_recipe_{module_name(path.stem)}", path)
    if spec is None or spec.loader is None:
        raise RecipeError(f"cannot import recipe file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, TrainRecipe):
        raise RecipeError(f"{path} defines no RECIPE (a TrainRecipe instance from beitv2_zoo.train.config)")
    return recipe


def get_recipe(name: str | Path) -> TrainRecipe:
    """A recipe by name or module name (published ones), or from a file: a recipe ``.py`` file
    defining ``RECIPE``, a resolved ``recipe.json``, or a run folder holding one.

    Raises:
        RecipeError: no such recipe; the message lists the closest names.
    """
    recipes = _all()
    name = str(name)
    if name in recipes:
        return recipes[name]
    by_module = {module_name(n): n for n in recipes}
    if name in by_module:
        return recipes[by_module[name]]
    path = Path(name)
    if path.suffix == ".py":
        return load_recipe_module(path)
    if path.is_dir() and (path / "recipe.json").is_file():
        return load_recipe_file(path / "recipe.json")
    if path.suffix == ".json" and path.is_file():
        return load_recipe_file(path)
    close = difflib.get_close_matches(name, list(recipes), n=4, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise RecipeError(f"unknown recipe {name!r}.{hint} Run `beitv2-zoo train --list` for the published recipes, "
                      "or pass a recipe .py file, a recipe.json or a run folder.")
