"""Save a model as a self-describing folder, push it to the Hugging Face Hub, and read such a folder back.

``save_pretrained(model, directory)`` writes three files::

    config.json        what rebuilds the model with no registry entry (below)
    model.safetensors  its weights in the canonical layout (``format: pt``; the class names in the metadata too)
    README.md          a model card: huggingface_hub's YAML front matter (library_name, pipeline_tag,
                       license, base_model when known) and a short usage section

``get_model(directory)`` and ``get_model('hf-hub:org/repo[@rev]')`` then load it strictly, with
its preprocessing and class names, and ``push_to_hub(model, 'org/repo')`` uploads the same
folder through huggingface_hub.

``config.json`` (``config_version`` 1):

====================  ========================================================================
``library_name``      ``'beitv2_zoo'``; ``library_version``: the version that wrote it
``architecture``      the :data:`~beitv2_zoo.models.ARCHITECTURES` key ('' when the model was
                      built from a file without one); ``model_class``: ``'Beit'``,
                      ``'BeitV2Pretrain'`` or ``'VQKD'``
``model_settings``    every constructor keyword (the architecture's settings included), so
                      ``model_class(**model_settings)`` is the same module
``num_classes``       the head size (0 without a head); ``class_names``: a list or ``null``;
                      ``id2label``: the same names keyed by ``"0"``, ``"1"``, … (transformers' form)
``task``              the record's task (``image-classification``, ``masked-image-modeling``, …)
``model_name``        the registered name the weights started from, when known; ``license``
``preprocessing``     ``resize_size``, ``crop_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct``
``pretrained_cfg``    the same in timm's keys (``input_size``, ``crop_pct``, ``crop_mode``, …)
====================  ========================================================================

The settings come from ``model.build_settings``, which :func:`beitv2_zoo.get_model` attaches;
a model built otherwise has them read off its tensors
(:func:`~beitv2_zoo.checkpoint.architecture_of`). The head size always comes from the tensors,
so a model whose head was replaced (``reset_classifier``) is saved as it now is.

:func:`read_config` also understands timm's ``config.json`` (``"architecture":
"beitv2_base_patch16_224"``, ``num_classes``, ``pretrained_cfg`` (or its older flat form),
``label_names`` and the ``model_args`` of timm's ``push_to_hub``), so timm's
BEiT repositories on the Hub (``hf-hub:timm/beitv2_base_patch16_224.in1k_ft_in1k``) load the same way.
"""

import inspect
import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import Checkpoint, architecture_of
from .checkpoint.cache_copy import write_text_atomically
from .checkpoint.canonical import write_canonical
from .errors import ModelConfigError
from .hub.hf import hf_api
from .models import ARCHITECTURES, VQKD, Architecture, Beit, BeitV2Pretrain
from .models.protocol import ZooModel
from .version import __version__
from .weights import Preprocessing, WeightRecord
from .weights.timm_cfg import pretrained_cfg_of

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
CONFIG_VERSION = 1
LIBRARY_NAME = "beitv2_zoo"

_MODEL_CLASSES: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (Beit, BeitV2Pretrain, VQKD)}
_PIPELINE_TAGS = {"image-classification": "image-classification"}
"""Record task → Hub pipeline tag; every other task (pretraining, tokenizers) is feature extraction."""
_TIMM_NAME = re.compile(r"^beit(?:v2)?_(base|large)_patch(\d+)_(\d+)$")
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class PretrainedConfig:
    """What :func:`read_config` found in a ``config.json``.

    Attributes:
        architecture_name: the :data:`~beitv2_zoo.models.ARCHITECTURES` key, or ``''``.
        architecture: what to build (``architecture.build(**settings)``).
        settings: the constructor keywords.
        class_names: the head's class names, if the config has them.
        record: a :class:`~beitv2_zoo.weights.WeightRecord` describing these weights (no
            sources: the folder is the source); it carries the preprocessing, task and licence.
    """

    architecture_name: str
    architecture: Architecture
    settings: dict[str, Any]
    class_names: tuple[str, ...] | None
    record: WeightRecord


# ------------------------------------------------------------------ writing
def save_pretrained(model: "nn.Module | ZooModel", directory: str | Path, *, repo_id: str | None = None) -> Path:
    """Write ``model`` as ``config.json`` + ``model.safetensors`` + ``README.md`` in ``directory`` (created).

    ``get_model(directory)`` gives back the same module (bit-identical outputs), preprocessing
    and class names; ``get_model(name, pretrained=directory)`` loads the weights into a registered
    architecture. Each file is written atomically; other files in ``directory`` are left alone.
    ``repo_id`` only fills the model card's usage snippet (``get_model('hf-hub:<repo_id>')``).

    Returns:
        ``directory`` as a :class:`~pathlib.Path`.

    Raises:
        ModelConfigError: the model's settings cannot be written as JSON.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    config = model_config(model)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not k.endswith("relative_position_index")}
    record = getattr(model, "weights_info", None)
    checkpoint = Checkpoint(state, "canonical", Path(f"<{type(model).__name__} in memory>"),
                            getattr(model, "class_names", None))
    write_canonical(checkpoint, directory / WEIGHTS_NAME, config.get("model_name") or type(model).__name__, "", record)
    write_text_atomically(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    write_text_atomically(directory / CARD_NAME, str(model_card(config, record, repo_id)))
    return directory


def push_to_hub(model: "nn.Module | ZooModel", repo_id: str, *, revision: str | None = None, private: bool | None = None,
                token: str | None = None, commit_message: str | None = None, create_pr: bool = False) -> Any:
    """Upload ``model`` to the Hub repository ``repo_id`` as :func:`save_pretrained` writes it.

    The repository is created if needed (``private`` applies only then), and so is the branch
    ``revision``; the files go up in one commit (or one pull request with ``create_pr=True``).
    ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured (read now, not at import).

    Returns:
        huggingface_hub's ``CommitInfo`` of the upload.
    """
    api = hf_api(token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    message = commit_message or f"Upload {_display_name(model)} with beitv2_zoo {__version__}"
    with tempfile.TemporaryDirectory(prefix="beitv2_zoo-push-") as folder:
        save_pretrained(model, folder, repo_id=repo_id)
        return api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision,
                                 commit_message=message, create_pr=create_pr)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``config.json`` contents of ``model`` (module docstring)."""
    architecture_name, settings = _build_settings(model)
    record: WeightRecord | None = getattr(model, "weights_info", None)
    class_names = getattr(model, "class_names", None)
    num_classes = int(settings.get("num_classes") or 0) if _is_classifier(model) else 0
    img_size = int(settings.get("img_size", 224))
    preprocessing = record.preprocessing if record is not None else _default_preprocessing(img_size)
    config: dict[str, Any] = {
        "library_name": LIBRARY_NAME,
        "library_version": __version__,
        "config_version": CONFIG_VERSION,
        "architecture": architecture_name,
        "model_class": type(model).__name__,
        "model_settings": settings,
        "num_classes": num_classes,
        "class_names": list(class_names) if class_names else None,
        "id2label": {str(i): name for i, name in enumerate(class_names)} if class_names else None,
        "task": record.task if record is not None else ("image-classification" if num_classes else "feature-extraction"),
        "model_name": record.name if record is not None else None,
        "license": record.license if record is not None else None,
        "preprocessing": _preprocessing_dict(preprocessing),
        "pretrained_cfg": _jsonable(pretrained_cfg_of(preprocessing, num_classes)),
    }
    try:
        json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"the model's settings cannot be written to {CONFIG_NAME}: {error}") from None
    return config


def model_card(config: dict[str, Any], record: WeightRecord | None = None, repo_id: str | None = None) -> Any:
    """A huggingface_hub ``ModelCard`` for a ``config.json`` (YAML front matter + usage; ``repo_id`` for the snippet)."""
    from huggingface_hub import ModelCard, ModelCardData

    base_model = _base_model(record)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        pipeline_tag=_PIPELINE_TAGS.get(config["task"], "image-feature-extraction"),
        license=config.get("license") or None,
        base_model=base_model,
        tags=["beitv2_zoo", "beit", "vision-transformer", config["task"]],
    )
    title = config.get("model_name") or config["architecture"] or config["model_class"]
    pre = config["preprocessing"]
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {title}", "",
        (f"A {config['model_class']} ({config['architecture'] or 'architecture read from its tensors'}) saved by "
         f"beitv2_zoo {config['library_version']}: `config.json` rebuilds it, `model.safetensors` holds its "
         "weights in the canonical (official BEiT) key layout."), "",
        f"- classes: {config['num_classes'] or 'none (no classification head)'}",
        (f"- input: {pre['crop_size']}x{pre['crop_size']}, resize {pre['resize_size']} ({pre['interpolation']}), "
         f"mean {pre['mean']}, std {pre['std']}"),
    ]
    if base_model:
        lines.append(f"- base model: [{base_model}](https://huggingface.co/{base_model})")
    if config.get("model_name"):
        lines.append(f"- started from the registered weights `{config['model_name']}`")
    lines += ["", "## How to use", "", "```python", "from beitv2_zoo import get_model", "",
              f"model = get_model('hf-hub:{repo_id or '<repo id>'}')  # or the local folder holding these files", "```", ""]
    return ModelCard("\n".join(lines))


# ------------------------------------------------------------------ reading
def read_config(config: dict[str, Any], source: str) -> PretrainedConfig:
    """Turn a ``config.json`` (ours, or timm's for a BEiT) into what to build.

    Args:
        config: the parsed JSON.
        source: where it came from (a folder or an ``hf-hub:`` spec), for messages and the record's name.

    Raises:
        ModelConfigError: neither format, or an architecture this package does not have.
    """
    if not isinstance(config, dict):
        raise ModelConfigError(f"{source}: {CONFIG_NAME} is not a JSON object")
    if config.get("library_name") == LIBRARY_NAME:
        return _read_ours(config, source)
    if isinstance(config.get("architecture"), str) and (isinstance(config.get("pretrained_cfg"), dict)
                                                         or "input_size" in config):
        return _read_timm(config, source)
    raise ModelConfigError(f"{source}: {CONFIG_NAME} is neither beitv2_zoo's (library_name: beitv2_zoo) nor "
                           "timm's (architecture + pretrained_cfg); pass the weights file as pretrained= with a "
                           "registered name instead")


def _read_ours(config: dict[str, Any], source: str) -> PretrainedConfig:
    name, class_name = config.get("architecture") or "", config.get("model_class")
    settings = dict(config.get("model_settings") or {})
    if name in ARCHITECTURES:
        architecture = ARCHITECTURES[name]
    elif class_name in _MODEL_CLASSES:
        architecture = Architecture(_MODEL_CLASSES[class_name], is_classifier=class_name == "Beit")
    else:
        raise ModelConfigError(f"{source}: unknown architecture {name!r} / model class {class_name!r} in "
                               f"{CONFIG_NAME} (written by beitv2_zoo {config.get('library_version')}; "
                               "upgrade beitv2_zoo?)")
    pre = config.get("preprocessing") or {}
    preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()
                                     if k in Preprocessing.__dataclass_fields__})
    names = config.get("class_names")
    record = _record(config.get("model_name") or source, name, int(config.get("num_classes") or 0), preprocessing,
                     config.get("license") or "", config.get("task") or "image-classification", config.get("model_name"))
    return PretrainedConfig(name, architecture, settings, tuple(names) if names else None, record)


def _read_timm(config: dict[str, Any], source: str) -> PretrainedConfig:
    timm_name = config["architecture"]
    match = _TIMM_NAME.match(timm_name)
    name = f"beit_{match.group(1)}_patch{match.group(2)}" if match else ""
    if name not in ARCHITECTURES:
        raise ModelConfigError(f"{source}: timm architecture {timm_name!r} is not a BEiT this package builds "
                               "(beit[v2]_{base,large}_patch16_<size>)")
    cfg = config.get("pretrained_cfg") or config  # older timm files hold one flat dict
    crop = int((cfg.get("input_size") or [3, int(match.group(3))])[-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    preprocessing = Preprocessing(
        resize_size=math.floor(crop / crop_pct), crop_size=crop, interpolation=cfg.get("interpolation") or "bicubic",
        mean=tuple(cfg.get("mean") or Preprocessing.mean), std=tuple(cfg.get("std") or Preprocessing.std),
        crop_pct=crop_pct)
    num_classes = int(config.get("num_classes", cfg.get("num_classes", 1000)) or 0)
    settings: dict[str, Any] = {"img_size": crop, "num_classes": num_classes}
    if config.get("global_pool") in ("avg", "token"):
        settings["global_pool"] = config["global_pool"]
    model_args = config.get("model_args") or {}  # timm's push_to_hub(model_args=…): the same keywords as ours
    accepted = set(inspect.signature(Beit.__init__).parameters) - {"self"}
    settings.update({k: v for k, v in model_args.items() if k in accepted})
    names = _timm_label_names(config.get("label_names", cfg.get("label_names")), num_classes)
    record = _record(source, name, num_classes, preprocessing, config.get("license") or "", "image-classification",
                     f"{timm_name}.{cfg['tag']}" if cfg.get("tag") else timm_name)
    return PretrainedConfig(name, ARCHITECTURES[name], settings, names, record)


def _timm_label_names(names: Any, num_classes: int) -> tuple[str, ...] | None:
    """timm's ``label_names`` (a list, or a dict by index) as a tuple; ``None`` (so that the
    ImageNet-1k names apply) for ImageNet-1k's 1000 WordNet ids in their usual, sorted order."""
    if isinstance(names, dict):
        names = [names.get(str(i), names.get(i)) for i in range(num_classes)]
    if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        return None
    if num_classes == 1000 and names == sorted(names) and all(re.fullmatch(r"n\d{8}", n) for n in names):
        return None
    return tuple(names)


def _record(name: str, architecture: str, num_classes: int, preprocessing: Preprocessing, license: str,
            task: str, upstream: str | None) -> WeightRecord:
    return WeightRecord(name=name, architecture=architecture, num_classes=num_classes, label_set=None, sources=(),
                        preprocessing=preprocessing, params=0, gmacs=0.0, license=license, paper="", task=task,
                        upstream=upstream)


# ------------------------------------------------------------------ helpers
def _build_settings(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """The architecture name and full constructor keywords of ``model``; the head size from its tensors."""
    stored = getattr(model, "build_settings", None)
    if stored is not None:
        name, settings = getattr(model, "architecture_name", ""), dict(stored)
    else:
        architecture, inferred = architecture_of({k: v for k, v in model.state_dict().items()})
        name = next((n for n, a in ARCHITECTURES.items() if a is architecture), "")
        settings = {**architecture.settings, **inferred}
    if _is_classifier(model):
        head = model.state_dict().get("head.weight")
        settings["num_classes"] = int(head.shape[0]) if head is not None and head.ndim == 2 else 0
    return name, _jsonable(settings)


def _is_classifier(model: nn.Module) -> bool:
    return isinstance(model, Beit) and not isinstance(model, BeitV2Pretrain)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _default_preprocessing(img_size: int) -> Preprocessing:
    return Preprocessing(resize_size=math.floor(img_size / 0.875), crop_size=img_size)


def _preprocessing_dict(p: Preprocessing) -> dict[str, Any]:
    return {"resize_size": p.resize_size, "crop_size": p.crop_size, "interpolation": p.interpolation,
            "mean": list(p.mean), "std": list(p.std), "crop_pct": p.crop_pct}


def _base_model(record: WeightRecord | None) -> str | None:
    """A Hub repo id the weights came from (a record's ``hf-hub`` source, or an ``org/name`` upstream)."""
    if record is None:
        return None
    repo = next((s.hf_repo for s in record.sources if s.hf_repo), None)
    if repo is None and record.upstream and _HUB_REPO.match(record.upstream):
        repo = record.upstream
    return repo


def _display_name(model: nn.Module) -> str:
    record = getattr(model, "weights_info", None)
    return getattr(record, "name", None) or getattr(model, "architecture_name", "") or type(model).__name__


__all__ = ["CONFIG_NAME", "PretrainedConfig", "model_card", "model_config", "push_to_hub", "read_config",
           "save_pretrained"]
