"""Name → weight record lookup, listing and "did you mean" suggestions."""

import difflib
import fnmatch

from ..errors import UnknownModelError
from .classification import CLASSIFIER_RECORDS
from .pretraining import PRETRAIN_RECORDS
from .reproduction import REPRODUCTION_RECORDS
from .schema import WeightRecord
from .segmentation import SEGMENTATION_RECORDS

ALL_RECORDS: tuple[WeightRecord, ...] = (
    CLASSIFIER_RECORDS + PRETRAIN_RECORDS + SEGMENTATION_RECORDS + REPRODUCTION_RECORDS)
"""Every shipped record, in listing order: one table per family, each a tuple of records and nothing else."""

_RECORDS: dict[str, WeightRecord] = {}
_ALIASES: dict[str, str] = {}


def register(record: WeightRecord, *, overwrite: bool = False) -> None:
    """Add a record (and its aliases) to the registry. Names are case-insensitive."""
    keys = [record.name.lower(), *(alias.lower() for alias in record.aliases)]
    if not overwrite:
        taken = [k for k in keys if k in _RECORDS or k in _ALIASES]
        if taken:
            raise ValueError(f"already registered: {', '.join(taken)} (pass overwrite=True to replace)")
    _RECORDS[record.name.lower()] = record
    for alias in record.aliases:
        _ALIASES[alias.lower()] = record.name.lower()


def unregister(name: str) -> None:
    """Remove a record and its aliases (used by tests that register temporary records)."""
    record = _RECORDS.pop(name.lower())
    for alias in record.aliases:
        _ALIASES.pop(alias.lower(), None)


for _record in ALL_RECORDS:
    register(_record)


TEST_PREFIX = "test_"
"""Names of weightless architectures kept for tests and demos (``test_beit_tiny``, …): buildable with
``get_model``, but left out of listings and cards unless asked for (``include_test=True``)."""


def list_models(pattern: str | None = None, pretrained: bool | None = None, task: str | None = None,
                include_test: bool = False) -> list[str]:
    """Registered names, sorted.

    Args:
        pattern: an fnmatch wildcard such as ``'*beitv2*'``; as in mmpretrain, it also matches
            as a prefix (``list_models('beit-base')``).
        pretrained: ``True``: only names with published weights; ``False``: only names without.
        task: only this task (``'image-classification'``, ``'semantic-segmentation'``,
            ``'masked-image-modeling'``, ``'visual-tokenizer'``).
        include_test: also list the weightless ``test_*`` names.

    Raises:
        ValueError: an unknown ``task``, listing the known ones.
    """
    records = sorted(_RECORDS.values(), key=lambda r: r.name)
    if task is not None:
        tasks = sorted({r.task for r in records})
        if task not in tasks:
            raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(tasks)}")
        records = [r for r in records if r.task == task]
    if pretrained is not None:
        records = [r for r in records if bool(r.sources) == pretrained]
    if not include_test:
        records = [r for r in records if not r.name.startswith(TEST_PREFIX)]
    names = [r.name for r in records]
    if pattern is None:
        return names
    pattern = pattern.lower()
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern) or fnmatch.fnmatchcase(n.lower(), pattern + "*")]


def aliases_of(name: str) -> tuple[str, ...]:
    """The aliases that resolve to ``name``."""
    return tuple(get_record(name).aliases)


def is_model(name: str) -> bool:
    """Whether ``name`` (or an alias) is registered."""
    key = name.lower()
    return key in _RECORDS or key in _ALIASES


def get_record(name: str) -> WeightRecord:
    """The record of ``name`` or one of its aliases.

    Raises:
        UnknownModelError: listing the closest registered names.
    """
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key in _RECORDS:
        return _RECORDS[key]
    candidates = sorted({r.name for r in _RECORDS.values()} | set(_ALIASES))
    close = difflib.get_close_matches(key, [c.lower() for c in candidates], n=5, cutoff=0.4)
    by_lower = {c.lower(): c for c in candidates}
    hint = f" Closest names: {', '.join(by_lower[c] for c in close)}." if close else ""
    raise UnknownModelError(f"unknown model name {name!r}.{hint} Run `beitv2-zoo list` or list_models() for all names.")
