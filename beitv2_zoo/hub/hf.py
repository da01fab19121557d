"""Hugging Face Hub files through huggingface_hub, which keeps them in its own cache (``HF_HUB_CACHE``),
and the client :func:`beitv2_zoo.push_to_hub` uploads with (:func:`hf_api`)."""

import os
from pathlib import Path
from typing import Any

from ..errors import WeightsDownloadError
from ..version import __version__
from ..settings import env_flag

HF_DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Files tried, in order, for ``hf-hub:org/repo`` without a file name."""


class HubFileMissing(WeightsDownloadError):
    """The Hub repository (or, offline, the local cache) has no such file."""


def hf_environment() -> dict[str, Any]:
    """huggingface_hub settings read from the environment *now*.

    huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` once, when
    it is imported. They are passed explicitly (``endpoint=``, ``local_files_only=``,
    ``cache_dir=``) so that values set later in the process are honoured too.
    """
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if not cache and os.environ.get("HF_HOME"):
        cache = os.path.join(os.environ["HF_HOME"], "hub")
    return {
        "endpoint": os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None,
        "cache_dir": os.path.expanduser(cache) if cache else None,
        "offline": bool(env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")),
    }


def fetch_hf(repo: str, filename: str, offline: bool) -> Path:
    """One file of a Hub repository (``repo`` may end in ``@revision``) through huggingface_hub.

    Raises:
        HubFileMissing: the repository (or, offline, the local cache) has no such file.
        WeightsDownloadError: any other failure.
    """
    repo_id, _, revision = repo.partition("@")
    settings = hf_environment()
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision or None,
            local_files_only=offline or settings["offline"],
            endpoint=settings["endpoint"],
            cache_dir=settings["cache_dir"],
            library_name="beitv2_zoo",
            library_version=__version__,
        )
        return Path(path)
    except Exception as error:  # huggingface_hub raises many types; report them all the same way
        text = " ".join(str(error).split())
        # EntryNotFoundError (the file is not in the repo, or not in the local cache) has moved
        # between huggingface_hub versions; its name has not.
        missing = any(cls.__name__ == "EntryNotFoundError" for cls in type(error).__mro__)
        kind = HubFileMissing if missing else WeightsDownloadError
        raise kind(f"hf-hub:{repo}/{filename}: {type(error).__name__}: {text[:300]}") from None


def hf_api(token: str | None = None) -> Any:
    """A ``huggingface_hub.HfApi`` on the endpoint ``HF_ENDPOINT`` names *now* (``token``: default ``HF_TOKEN``
    or the saved login)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hf_environment()["endpoint"], token=token, library_name="beitv2_zoo",
                 library_version=__version__)
