"""Every ``BEITV2_ZOO_*`` environment variable, read here and nowhere else.

Each is read when its function is called (never at import), so a test or a program may set
it at any time before the call that uses it. Keyword arguments of the public functions win
over these (``cache_dir=``, ``offline=``, ``url_map=``, ``progress=``, ``safetensors_copy=``).

=============================  ==================================================================
``BEITV2_ZOO_CACHE``           cache root (default ``$XDG_CACHE_HOME/beitv2_zoo`` or ``~/.cache/beitv2_zoo``)
``BEITV2_ZOO_OFFLINE``         ``1``: never touch the network; a missing file is a clear error
``BEITV2_ZOO_URL_MAP``         ``old_prefix=new_prefix[,…]`` URL rewrites, for mirrors and tests
``BEITV2_ZOO_PROGRESS``        ``1`` always show the download bar, ``0`` never (default: when stderr is a terminal)
``BEITV2_ZOO_SAFETENSORS_COPY`` ``0``: keep no canonical safetensors copy beside cached pickles
``BEITV2_ZOO_TIMEOUT``         download time-outs in seconds: ``read`` or ``connect,read``
``BEITV2_ZOO_RETRIES``         further download attempts after the first
``BEITV2_ZOO_BACKOFF``         seconds before the first retry (doubling after)
``BEITV2_ZOO_FAST_PATHS``      ``0``: run the reference layers only (no CPU fast paths, see ``layers/fast.py``)
=============================  ==================================================================
"""

import os
from pathlib import Path

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_flag(name: str) -> bool | None:
    """A yes/no variable: ``True`` for ``1``/``true``/``yes``/``on``, ``False`` for ``0``/``false``/``no``/``off``
    (any case), ``None`` when unset or anything else."""
    value = os.environ.get(name, "").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def env_text(name: str) -> str:
    """The variable's value, stripped (``''`` when unset)."""
    return os.environ.get(name, "").strip()


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root (not created): ``cache_dir``, else ``$BEITV2_ZOO_CACHE``, else the XDG default."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if env_text("BEITV2_ZOO_CACHE"):
        return Path(env_text("BEITV2_ZOO_CACHE")).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "beitv2_zoo"


def is_offline() -> bool:
    """Whether ``BEITV2_ZOO_OFFLINE`` asks for no network access."""
    return bool(env_flag("BEITV2_ZOO_OFFLINE"))


def url_map_text() -> str:
    """``BEITV2_ZOO_URL_MAP`` as written (parsed by :func:`beitv2_zoo.hub.settings.parse_url_map`)."""
    return os.environ.get("BEITV2_ZOO_URL_MAP", "")


def progress_flag() -> bool | None:
    """``BEITV2_ZOO_PROGRESS``: forced on, forced off, or ``None`` (decide by the terminal)."""
    return env_flag("BEITV2_ZOO_PROGRESS")


def wants_safetensors_copy() -> bool:
    """Whether ``BEITV2_ZOO_SAFETENSORS_COPY`` allows canonical safetensors copies of cached pickles (default yes)."""
    return env_flag("BEITV2_ZOO_SAFETENSORS_COPY") is not False


def download_numbers() -> dict[str, list[float]]:
    """The numbers given in ``BEITV2_ZOO_TIMEOUT`` / ``_RETRIES`` / ``_BACKOFF`` (only those set).

    Raises:
        ValueError: a value that is not a non-negative number, naming the variable.
    """
    numbers = {}
    for key in ("TIMEOUT", "RETRIES", "BACKOFF"):
        text = env_text(f"BEITV2_ZOO_{key}")
        if text:
            numbers[key.lower()] = [_number(f"BEITV2_ZOO_{key}", part) for part in text.split(",")]
    return numbers


def fast_paths_enabled() -> bool:
    """Whether ``BEITV2_ZOO_FAST_PATHS`` leaves the CPU fast paths on (default yes; read once, at first use)."""
    return env_flag("BEITV2_ZOO_FAST_PATHS") is not False and env_flag("BEITV2_ZOO_ONEDNN") is not False


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds or a count, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {text!r}")
    return value
