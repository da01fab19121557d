"""One URL's body into a :class:`PartialFile` over HTTP: retries with back-off, ``Range`` resume, progress.

Time-outs, dropped connections, HTTP 429 and 5xx are retried as the :class:`DownloadPolicy`
allows (logged at INFO: quiet unless ``-v``); failures that cannot heal by waiting fail at once:
a host name that does not resolve (no network, or a typo), a connection refused, other HTTP errors. A retry asks for the missing
bytes with a ``Range`` request, keeps them on a matching ``206`` and starts again from byte 0
on a ``200``.
"""

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import WeightsDownloadError
from ..version import __version__
from .cache import CHUNK
from .disk import check_free_space
from .partial import PartialFile
from .settings import DownloadPolicy, HubSettings

logger = logging.getLogger(__package__)  # "beitv2_zoo.hub", one logger for the whole package


_HOPELESS = ("cannot resolve host", "connection refused")
"""Reasons (from :func:`describe_request_error`) that no retry within seconds can change."""


class _Retryable(Exception):
    """A failure that may succeed on another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentHTTPError(WeightsDownloadError):
    """An HTTP status that retrying cannot fix (4xx other than 429)."""


def transfer(url: str, partial: PartialFile, settings: HubSettings, label: str) -> None:
    """Fill ``partial`` with the body of ``url``, retrying as the policy allows."""
    import requests

    policy = settings.policy
    if settings.progress:
        print(f"Downloading {url} to {partial.path.parent / label}", file=sys.stderr)
    with requests.Session() as session, _progress_bar(label, settings.progress, partial.size) as bar:
        session.headers["User-Agent"] = f"beitv2_zoo/{__version__}"
        for attempt in range(policy.retries + 1):
            try:
                _attempt(session, url, partial, policy, bar)
                return
            except _Retryable as failure:
                if attempt == policy.retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise WeightsDownloadError(f"{url}: {failure} (gave up after {tries})") from None
                delay = policy.delay_s(attempt, failure.retry_after)
                logger.info("%s: %s; retry %d of %d in %.1f s", url, failure, attempt + 1, policy.retries, delay)
                time.sleep(delay)


def _attempt(session: Any, url: str, partial: PartialFile, policy: DownloadPolicy, bar: Any) -> None:
    """One GET: resume from ``partial.size`` with ``Range`` when there are bytes already."""
    import requests

    headers = {"Accept-Encoding": "identity"}
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
        if partial.validator:
            headers["If-Range"] = partial.validator
    try:
        with session.get(url, headers=headers, stream=True, timeout=policy.timeout) as response:
            # A short body must end the loop with the bytes received so far kept (they are resumed
            # from), not raise and lose the last read; the size check below catches it instead.
            response.raw.enforce_content_length = False
            _raise_for_status(url, response, partial)
            total = _start(response, partial, bar)
            if total is not None:
                check_free_space(partial.path, total - partial.size)
            for chunk in response.iter_content(CHUNK):
                partial.append(chunk)
                bar.update(len(chunk))
    except requests.exceptions.SSLError as error:
        raise WeightsDownloadError(
            f"{url}: TLS error ({describe_request_error(error)}); behind a proxy that re-signs traffic, set "
            "REQUESTS_CA_BUNDLE to its certificate, or use a mirror (BEITV2_ZOO_URL_MAP)"
        ) from None
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
        reason = describe_request_error(error)
        if reason.startswith(_HOPELESS):
            raise WeightsDownloadError(f"{url}: {reason}") from None
        raise _Retryable(reason) from None
    except requests.RequestException as error:
        raise PermanentHTTPError(f"{url}: {describe_request_error(error)}") from None
    if total is not None and partial.size != total:
        raise _Retryable(f"connection closed after {partial.size} of {total} bytes")


def _raise_for_status(url: str, response: Any, partial: PartialFile) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    if status == 416 and partial.size:  # our range starts past the end: the file changed; start over
        partial.restart()
        raise _Retryable("server refused to resume (HTTP 416); restarting", retry_after=0.0)
    reason = f"HTTP {status} {response.reason or ''}".strip()
    if status == 429 or status >= 500:
        raise _Retryable(reason, retry_after=_retry_after_s(response.headers.get("Retry-After")))
    raise PermanentHTTPError(f"{url}: {reason}")


def _retry_after_s(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def _start(response: Any, partial: PartialFile, bar: Any) -> int | None:
    """Line ``partial`` up with the response: keep its bytes on a matching ``206``, drop them on ``200``.

    Returns:
        The full size of the file in bytes, where the response says it.
    """
    content_range = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    if response.status_code == 206 and content_range and int(content_range.group(1)) == partial.size:
        total = None if content_range.group(2) == "*" else int(content_range.group(2))
    else:
        if partial.size:
            logger.info("%s: the server sent the whole file (no resume); starting again", partial.path.name)
            partial.restart()
            bar.reset()
        if response.status_code == 206:  # a range we did not ask for: never splice it
            raise _Retryable("server answered an unexpected byte range")
        length = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        total = int(length) if length and length.isdigit() and not encoded else None
    if partial.validator is None:
        etag = response.headers.get("ETag")
        partial.validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
    if total is not None:
        bar.total = total
        bar.refresh()
    return total


@contextmanager
def _progress_bar(label: str, show: bool, initial: int) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(total=None, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
              disable=not show, file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar


def describe_request_error(error: Exception) -> str:
    """A short, one-line reason for a failed request ("HTTP 404 Not Found", "cannot resolve host …")."""
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    text = " ".join(str(error).split())
    for pattern, label in ((r"Failed to resolve '([^']+)'", "cannot resolve host {}"),
                           (r"Connection refused", "connection refused"),
                           (r"IncompleteRead|Connection broken|RemoteDisconnected|reset by peer", "connection dropped"),
                           (r"[Tt]imed? ?out", "timed out")):
        match = re.search(pattern, text)
        if match:
            return label.format(*match.groups())
    return f"{type(error).__name__}: {text[:160]}"
