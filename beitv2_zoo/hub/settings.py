"""Download settings: the :class:`DownloadPolicy`, the environment variables and the URL map.

Every setting is read (by :mod:`beitv2_zoo.settings`) when a fetch is called, never at import, and a
keyword argument wins over its variable; :func:`resolve_settings` does both once per call.
"""

import random
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..settings import cache_root, download_numbers, is_offline, progress_flag, url_map_text, wants_safetensors_copy

UrlMap = str | Mapping[str, str] | Iterable[tuple[str, str]]
"""``'old=new,old2=new2'``, ``{'old': 'new'}`` or ``[('old', 'new')]``."""


@dataclass(frozen=True)
class DownloadPolicy:
    """How patient a download is.

    Attributes:
        connect_timeout_s: seconds to wait for a connection.
        read_timeout_s: seconds of silence allowed between received bytes.
        retries: further attempts after the first, for retryable failures only
            (connection errors, time-outs, dropped connections, HTTP 429 and 5xx).
        backoff_s: wait before the first retry; it doubles with each retry (plus up to 10 %
            jitter), capped at ``max_backoff_s``. A ``Retry-After`` header is honoured up to the cap.
        lock_timeout_s: how long to wait for another process downloading the same file.
    """

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    lock_timeout_s: float = 3600.0

    @classmethod
    def from_env(cls) -> "DownloadPolicy":
        """Defaults overridden by ``BEITV2_ZOO_TIMEOUT`` (``'read'`` or ``'connect,read'`` seconds),
        ``BEITV2_ZOO_RETRIES`` and ``BEITV2_ZOO_BACKOFF`` (seconds), as :mod:`beitv2_zoo.settings` reads them."""
        policy, numbers = cls(), download_numbers()
        if "timeout" in numbers:
            policy = replace(policy, connect_timeout_s=numbers["timeout"][0], read_timeout_s=numbers["timeout"][-1])
        if "retries" in numbers:
            policy = replace(policy, retries=int(numbers["retries"][0]))
        if "backoff" in numbers:
            policy = replace(policy, backoff_s=numbers["backoff"][0])
        return policy

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, as ``requests`` takes them."""
        return (self.connect_timeout_s, self.read_timeout_s)

    def delay_s(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        return min(self.backoff_s * 2**retry, self.max_backoff_s) * (1 + 0.1 * random.random())


@dataclass(frozen=True)
class HubSettings:
    """Everything a fetch needs to know, resolved once per call by :func:`resolve_settings`.

    Attributes:
        cache_dir: the cache root (files go to ``cache_dir / 'checkpoints'``).
        offline: never touch the network.
        url_map: ``(old_prefix, new_prefix)`` rewrites; the first match applies.
        progress: show a progress bar on stderr.
        policy: time-outs, retries, back-off and lock waiting.
        safetensors_copy: keep a canonical safetensors copy beside each cached pickle and load
            that instead (see :mod:`beitv2_zoo.hub.copies`).
    """

    cache_dir: Path
    offline: bool = False
    url_map: tuple[tuple[str, str], ...] = ()
    progress: bool = False
    policy: DownloadPolicy = field(default_factory=DownloadPolicy)
    safetensors_copy: bool = True


def resolve_settings(
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: UrlMap | None = None,
    progress: bool | None = None,
    policy: DownloadPolicy | None = None,
    safetensors_copy: bool | None = None,
) -> HubSettings:
    """Keyword arguments where given, else the environment (read now), else the defaults.

    ``progress=None`` shows the bar when stderr is a terminal, unless ``BEITV2_ZOO_PROGRESS``
    says otherwise; ``True`` always shows it; ``False`` never does. ``safetensors_copy=None``
    follows ``BEITV2_ZOO_SAFETENSORS_COPY`` (``0`` turns the copies off; default on).
    """
    return HubSettings(
        cache_dir=cache_root(cache_dir),
        offline=is_offline() if offline is None else bool(offline),
        url_map=parse_url_map(url_map_text() if url_map is None else url_map),
        progress=_show_progress(progress),
        policy=policy or DownloadPolicy.from_env(),
        safetensors_copy=wants_safetensors_copy() if safetensors_copy is None else bool(safetensors_copy),
    )


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    forced = progress_flag()
    if forced is not None:
        return forced
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def parse_url_map(url_map: UrlMap) -> tuple[tuple[str, str], ...]:
    """Normalise a URL map to ``((old_prefix, new_prefix), ...)``; a string is ``'old=new,old2=new2'``."""
    if isinstance(url_map, str):
        pairs = []
        for item in filter(None, (p.strip() for p in url_map.split(","))):
            old, sep, new = item.partition("=")
            if not sep or not old:
                raise ValueError(f"BEITV2_ZOO_URL_MAP entries are old_prefix=new_prefix, got {item!r}")
            pairs.append((old.strip(), new.strip()))
        return tuple(pairs)
    items = url_map.items() if isinstance(url_map, Mapping) else url_map
    return tuple((str(old), str(new)) for old, new in items)


def map_url(url: str, url_map: UrlMap | None = None) -> str:
    """Apply the first matching prefix rewrite (``url_map``, else ``BEITV2_ZOO_URL_MAP``) to ``url``."""
    pairs = parse_url_map(url_map_text() if url_map is None else url_map)
    for old, new in pairs:
        if url.startswith(old):
            return new + url[len(old) :]
    return url
