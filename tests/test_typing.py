"""User code type-checks (issue 15, item 6): mypy on every Python block of the README and on ``examples/``.

0.1's ``get_model`` returned ``nn.Module``, so ``model.extract_feat(x)`` failed type checking, and
``inference_model`` returned a union of a dict and a list, so ``pred['pred_score']`` did too. Now
``get_model`` returns :class:`beitv2_zoo.models.protocol.ZooModel` and ``inference_model`` is
overloaded: one input gives a :class:`~beitv2_zoo.inference.Prediction` (a ``TypedDict``), a list
gives a list. Errors inside the package's own modules are not what this checks (``--follow-imports=silent``).
"""

import re
import subprocess
import sys

import pytest

from .conftest import REPO

pytest.importorskip("mypy")


def test_readme_blocks_and_examples_type_check(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    files = []
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", readme, flags=re.S)):
        path = tmp_path / f"readme_block_{index}.py"
        path.write_text(block, encoding="utf-8")
        files.append(str(path))
    files += sorted(str(p) for p in (REPO / "examples").glob("*.py"))
    done = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
                           "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), *files],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_single_prediction_is_typed_as_one_result():
    from typing import get_type_hints

    from beitv2_zoo.inference import Prediction

    hints = get_type_hints(Prediction)
    assert {"pred_scores", "pred_label", "pred_score", "pred_class", "pred_topk"} <= set(hints)
    assert Prediction.__required_keys__ == {"pred_scores", "pred_label", "pred_score", "pred_class"}
