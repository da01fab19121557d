"""THE one place a weight spec becomes a local file, and a pretraining model gets its tokenizer.

A weight spec is what a user writes after ``pretrained=``, ``--weights``, ``tokenizer_weights=``
or in a training recipe:

=========================  =================================================================
``True``                   the record's published weights (downloaded, verified, cached)
``'hf-hub:org/repo…'``     a Hugging Face Hub file (``[@revision][/file]``), via huggingface_hub
``'https://…'``            any URL, cached under a key made of the whole URL
a file path                a checkpoint in any supported layout
a folder                   a training run (``beitv2-zoo train --work-dir``) or a folder written by
                           :func:`beitv2_zoo.save_pretrained`: its ``model.safetensors``
a registered name          that name's published weights (``pretrained='beitv2_…_pt1k'``)
=========================  =================================================================

``get_model``'s first argument may also be a *pretrained folder*: a local folder or a Hub
repository (``'hf-hub:org/repo[@rev]'``, no file name) with a ``config.json`` (ours, or
timm's) beside its weights. :func:`pretrained_folder` fetches both; the model is then built
from the config with no registry entry (:mod:`beitv2_zoo.pretrained`).

:func:`weights_file` turns a spec into a :class:`LocalWeights`; :func:`load_checkpoint` reads
it. Only files the package itself wrote atomically (its cache, its own package data) are
memory-mapped; any other file is read into memory, so a model never changes or crashes when
that file is edited or truncated afterwards.

Pretraining models (:class:`~beitv2_zoo.models.BeitV2Pretrain`) own their tokenizer as
``model.tokenizer``; the official pretraining files hold none. :func:`with_tokenizer` adds
its tensors under ``tokenizer.*``: from the record named by ``WeightRecord.tokenizer``, from
a spec (``tokenizer_weights=…``), or fresh (``tokenizer_weights=False``).
"""

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hub
from .checkpoint import Checkpoint, read_checkpoint
from .checkpoint.cache_copy import ensure_copy
from .checkpoint.keymaps import StateDict
from .errors import CheckpointError, ModelConfigError
from .hub.hf import HubFileMissing, fetch_hf
from .settings import wants_safetensors_copy
from .weights import ALL_RECORDS, Source, WeightRecord, get_record, is_model

logger = logging.getLogger(__name__)

WeightSpec = bool | str | Path
"""``True``, or a name, file, folder, URL or ``hf-hub:`` spec (module docstring)."""
RUN_WEIGHTS = "model.safetensors"
"""The file name of a training run's final weights (beside its ``recipe.json``), and of a pretrained folder's."""
CONFIG_FILE = "config.json"
"""What makes a folder or Hub repository a pretrained folder (:func:`pretrained_folder`)."""
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class DownloadOptions:
    """The download keywords of ``get_model`` and ``convert_checkpoint``; ``None`` defers to the
    ``BEITV2_ZOO_*`` variables (see :mod:`beitv2_zoo.settings`)."""

    cache_dir: str | Path | None = None
    offline: bool | None = None
    url_map: Any = None
    progress: bool | None = None
    safetensors_copy: bool | None = None
    source: str | None = None
    """Which of a record's sources to use (see :func:`beitv2_zoo.hub.select_sources`); ``None``: each in turn."""

    def hub_kwargs(self) -> dict[str, Any]:
        return dict(cache_dir=self.cache_dir, offline=self.offline, url_map=self.url_map, progress=self.progress,
                    safetensors_copy=self.safetensors_copy)


@dataclass(frozen=True)
class LocalWeights:
    """A resolved weight spec.

    Attributes:
        path: the local file.
        label: what the user asked for (a name, URL, hub spec or file name), for messages and metadata.
        owned: the package wrote this file atomically and nothing else rewrites it (its cache,
            its package data), so it may be memory-mapped.
        record: the record whose published file this is, if any.
    """

    path: Path
    label: str
    owned: bool
    record: WeightRecord | None = None


@dataclass(frozen=True)
class PretrainedFolder:
    """A folder or Hub repository holding ``config.json`` and its weights.

    Attributes:
        config: the parsed ``config.json``.
        weights: its weights file (``model.safetensors``; on the Hub, else ``pytorch_model.bin``).
        label: what the user passed (the folder or the ``hf-hub:`` spec).
    """

    config: Any
    weights: LocalWeights
    label: str


def pretrained_folder(name_or_path: str | Path, options: DownloadOptions = DownloadOptions()) -> PretrainedFolder | None:
    """The pretrained folder ``get_model``'s first argument names, fetched; ``None`` when it names none
    (a registered name, a file, a folder without ``config.json``, an ``hf-hub:`` spec with a file name).

    Raises:
        CheckpointError: a Hub repository without ``config.json``, a folder whose ``config.json`` is
            not JSON, or one without ``model.safetensors``.
        WeightsDownloadError: from the download.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text.startswith("hf-hub:"):
        repo = text[len("hf-hub:"):]
        if len(repo.split("/")) != 2 or not all(repo.split("/")):
            return None
        offline = hub.is_offline() if options.offline is None else bool(options.offline)
        try:
            config_path = fetch_hf(repo, CONFIG_FILE, offline)
        except HubFileMissing:
            raise CheckpointError(f"{text} has no {CONFIG_FILE}, so there is nothing to build the model from; pass "
                                  f"it as pretrained= of a registered name instead: get_model(<name>, "
                                  f"pretrained={text!r})") from None
        weights = LocalWeights(hub.fetch_hf_spec(text, offline=offline), text, owned=False)
        return PretrainedFolder(_read_json(config_path, text), weights, text)
    if isinstance(name_or_path, str) and is_model(text):
        return None
    folder = Path(name_or_path).expanduser()
    if not (folder / CONFIG_FILE).is_file():
        return None
    if not (folder / RUN_WEIGHTS).is_file():
        raise CheckpointError(f"{folder} has a {CONFIG_FILE} but no {RUN_WEIGHTS} beside it")
    weights = LocalWeights(folder / RUN_WEIGHTS, str(folder), owned=_is_owned(folder / RUN_WEIGHTS))
    return PretrainedFolder(_read_json(folder / CONFIG_FILE, str(folder)), weights, str(folder))


def _read_json(path: Path, label: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{label}: cannot read {CONFIG_FILE} ({error})") from None


def is_checkpoint_path(name_or_path: str | Path) -> bool:
    """Whether ``get_model``'s first argument names a file rather than a registered model."""
    if isinstance(name_or_path, str) and is_model(name_or_path):
        return False
    path = Path(name_or_path).expanduser()
    return path.suffix in CHECKPOINT_SUFFIXES or path.is_file()


def weights_file(spec: WeightSpec, record: WeightRecord | None = None,
                 options: DownloadOptions = DownloadOptions()) -> LocalWeights:
    """The local file of a weight spec, downloaded and verified where it comes from the network.

    Args:
        spec: see the module docstring.
        record: the model's record, for ``spec=True``.
        options: download settings.

    Raises:
        ModelConfigError: ``spec=True`` without a record.
        CheckpointError: a path that does not exist (or a run folder without its weights).
        WeightsDownloadError, HashMismatchError: from the download.
    """
    if spec is True:
        if record is None:
            raise ModelConfigError("pretrained=True needs a registered model name; pass the checkpoint file instead")
        return _record_weights(record, options)
    if spec is False:
        raise ModelConfigError("pretrained=False has no weights file")
    text = str(spec)
    if text.startswith("hf-hub:"):
        return LocalWeights(hub.fetch_hf_spec(text, offline=options.offline), text, owned=False)
    if re.match(r"^https?://", text):
        fetched = hub.fetch_url(text, for_loading=True, **options.hub_kwargs())
        return LocalWeights(_loadable(fetched, (), options), text, owned=True)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / RUN_WEIGHTS).is_file():
            raise CheckpointError(f"{path} is a folder without {RUN_WEIGHTS}; pass a checkpoint file or a training "
                                  "run folder (beitv2-zoo train --work-dir)")
        path = path / RUN_WEIGHTS
    elif not path.exists() and isinstance(spec, str) and is_model(text):
        return _record_weights(get_record(text), options)
    if not path.is_file():
        raise CheckpointError(f"{spec} is neither a checkpoint file nor a registered name: the file {path} does not "
                              "exist (`beitv2-zoo list` shows the names)")
    return LocalWeights(path, path.name, owned=_is_owned(path))


def source_file(source: Source, options: DownloadOptions = DownloadOptions()) -> Path:
    """The file to load for one :class:`~beitv2_zoo.weights.Source` (its canonical copy where one applies)."""
    fetched = hub.fetch_source(source, for_loading=True, **options.hub_kwargs())
    return _loadable(fetched, (source,), options)


def load_checkpoint(weights: LocalWeights) -> Checkpoint:
    """Read a resolved file safely (memory-mapped only when the package owns it)."""
    return read_checkpoint(weights.path, mmap=weights.owned)


def _record_weights(record: WeightRecord, options: DownloadOptions) -> LocalWeights:
    fetched = hub.fetch_weights(record, source=options.source, for_loading=True, **options.hub_kwargs())
    return LocalWeights(_loadable(fetched, record.sources, options), record.name, owned=True, record=record)


def _loadable(fetched: Path, sources: tuple, options: DownloadOptions) -> Path:
    """The canonical safetensors copy of a cached pickle (made on first use), unless copies are off."""
    wanted = wants_safetensors_copy() if options.safetensors_copy is None else options.safetensors_copy
    if not wanted:
        return fetched
    if not _inside(fetched, hub.checkpoints_dir(options.cache_dir)):  # package data: used where it is installed
        return fetched
    return ensure_copy(fetched, sources, hub.DownloadPolicy.from_env())


def _is_owned(path: Path) -> bool:
    """Files in this package's cache or inside the installed package itself."""
    package_dir = Path(__file__).resolve().parent
    return _inside(path, hub.checkpoints_dir()) or _inside(path, package_dir)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


# ------------------------------------------------------------------ tokenizers
def default_tokenizer(architecture_name: str) -> str | None:
    """The tokenizer record registered with a pretraining architecture (for files loaded without a name)."""
    return next((r.tokenizer for r in ALL_RECORDS if r.architecture == architecture_name and r.tokenizer), None)


def with_tokenizer(state_dict: StateDict, tokenizer_name: str | None, weights: WeightSpec | None,
                   fresh: StateDict | None, options: DownloadOptions = DownloadOptions()) -> StateDict:
    """``state_dict`` with its ``tokenizer.*`` part added when missing, or replaced when ``weights`` is given.

    Args:
        state_dict: a pretraining model's canonical tensors.
        tokenizer_name: the record whose weights ``weights=True`` means.
        weights: ``None`` (keep the file's tokenizer, else the record's), ``True``, a spec, or
            ``False`` (``fresh``: the tensors of a newly built tokenizer).
        fresh: a fresh tokenizer's state dict, used for ``weights=False``.
    """
    if weights is None:
        if any(k.startswith("tokenizer.") for k in state_dict):
            return state_dict
        weights = True
    kept = {k: v for k, v in state_dict.items() if not k.startswith("tokenizer.")}
    tokenizer = tokenizer_state(tokenizer_name, weights, fresh, options)
    return {**kept, **{f"tokenizer.{k}": v for k, v in tokenizer.items()}}


def tokenizer_state(tokenizer_name: str | None, weights: WeightSpec, fresh: StateDict | None,
                    options: DownloadOptions = DownloadOptions()) -> StateDict:
    """A tokenizer's canonical tensors (no prefix): ``fresh`` for ``weights=False``, else those of the spec."""
    if weights is False:
        logger.info("the tokenizer starts from random weights (tokenizer_weights=False)")
        assert fresh is not None
        return fresh
    record = None
    if weights is True:
        if tokenizer_name is None:
            raise ModelConfigError("no tokenizer is registered for this model; pass tokenizer_weights='path/to/vqkd.pth' "
                                   "(or tokenizer_weights=False for a random one)")
        record = get_record(tokenizer_name)
    checkpoint = load_checkpoint(weights_file(weights, record, options))
    logger.info("attaching tokenizer weights from %s", checkpoint.path)
    return checkpoint.state_dict
