"""Rank-0 logging: a tqdm progress bar and a JSON-lines file (``beitv2-zoo plot-log`` reads it).

Every line of ``log.jsonl`` is one JSON object with a ``step`` field, e.g.
``{"step": 100, "epoch": 0.4, "lr": 1.2e-4, "loss": 5.31, "grad_norm": 1.9, "images_per_s": 812.0}``;
evaluation lines carry ``val_*`` fields instead of the training ones.
"""

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    """Writes JSON lines and drives the progress bar; inactive on ranks other than 0."""

    def __init__(self, path: Path | None, total_steps: int, start_step: int, active: bool, progress: bool) -> None:
        self.active = active
        self.file = path.open("a", encoding="utf-8") if active and path is not None else None
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (active and progress), file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0, unit="step")
        self.start = time.perf_counter()

    def step(self, postfix: dict[str, float]) -> None:
        self.bar.update(1)
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def write(self, row: dict[str, Any]) -> None:
        if not self.active:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}
        line = json.dumps(clean)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()
        if self.bar.disable:
            print(line, file=sys.stderr)
        else:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
