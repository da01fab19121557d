"""Real HTTP servers on 127.0.0.1 for download tests: a request log and switchable faults.

``LocalServer(folder)`` serves the files of a folder (GET and HEAD, with ``Range`` and
``If-Range`` support, an ``ETag`` that is the file's sha256). ``HubServer(repos)`` answers
the Hugging Face Hub's ``/{org}/{repo}/resolve/{revision}/{file}`` endpoint the way
huggingface_hub expects (``X-Repo-Commit``, ``ETag``, ``Content-Length``; ``X-Error-Code``
on 404s), for ``HF_ENDPOINT`` tests. Both log every request in ``server.state.log``.

Faults (set on ``server.state`` while the server runs): ``fail_with`` (every request gets
this status), ``fail_first``/``fail_status``/``retry_after`` (the first N requests fail),
``drop_after``/``drop_times`` (send the headers and only this many body bytes, then close
the connection), ``ranges=False`` (ignore ``Range``: always 200 with the whole file),
``delay_s`` (wait before answering), ``chunk_delay_s`` (wait between 64 KiB body chunks).
"""

import hashlib
import http.server
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

_BODY_CHUNK = 64 * 1024


@dataclass
class Request:
    """One request as the server saw it; ``bytes_sent`` counts body bytes written."""

    method: str
    path: str
    range: str | None
    status: int = 0
    bytes_sent: int = 0


@dataclass
class ServerState:
    root: Path | None = None
    requests: list[str] = field(default_factory=list)  # paths, every method, in order
    log: list[Request] = field(default_factory=list)
    fail_with: int | None = None
    fail_first: int = 0
    fail_status: int = 500
    retry_after: str | None = None
    drop_after: int | None = None
    drop_times: int = 1
    ranges: bool = True
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, path: str, ranged: bool | None = None) -> list[Request]:
        """GET requests of ``path``; ``ranged`` keeps only those with (True) or without (False) a Range header."""
        return [r for r in self.log if r.method == "GET" and r.path == path
                and (ranged is None or (r.range is not None) == ranged)]

    def _claim_fault(self) -> tuple[int | None, int | None]:
        """(status to fail with, body bytes after which to drop) for the request being answered."""
        with self.lock:
            if self.fail_with:
                return self.fail_with, None
            if self.fail_first > 0:
                self.fail_first -= 1
                return self.fail_status, None
            if self.drop_after is not None and self.drop_times > 0:
                self.drop_times -= 1
                return None, self.drop_after
        return None, None


class _Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        record = Request("HEAD" if head else "GET", self.path, self.headers.get("Range"))
        with self.state.lock:
            self.state.requests.append(self.path)
            self.state.log.append(record)
        if self.state.delay_s and self.state.stopping.wait(self.state.delay_s):
            return
        status, drop_after = self.state._claim_fault()
        if status:
            record.status = status
            self.send_response(status)
            if self.state.retry_after is not None:
                self.send_header("Retry-After", self.state.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, extra_headers = self.find(self.path)
        if isinstance(body, int):
            record.status = body
            self.send_error_with_headers(body, extra_headers)
            return
        self.send_body(record, body, extra_headers, head, drop_after)

    def find(self, path: str) -> tuple[bytes | int, dict[str, str]]:
        """``(body or HTTP error status, extra headers)`` for ``path``."""
        file = self.state.root / path.lstrip("/") if self.state.root else None
        if file is None or not file.is_file():
            return 404, {}
        return file.read_bytes(), {}

    def send_error_with_headers(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_body(self, record: Request, body: bytes, headers: dict[str, str], head: bool, drop_after: int | None) -> None:
        etag = '"' + hashlib.sha256(body).hexdigest() + '"'
        start, status = 0, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if_range = self.headers.get("If-Range")
        if wanted and self.state.ranges and (if_range is None or if_range == etag):
            start, status = int(wanted.group(1)), 206
            if start >= len(body):
                record.status = 416
                self.send_error_with_headers(416, {"Content-Range": f"bytes */{len(body)}"})
                return
        part = body[start:]
        record.status = status
        self.send_response(status)
        for key, value in {"ETag": etag, "Accept-Ranges": "bytes" if self.state.ranges else "none", **headers}.items():
            self.send_header(key, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if head:
            return
        limit = len(part) if drop_after is None else min(drop_after, len(part))
        for offset in range(0, limit, _BODY_CHUNK):
            if self.state.chunk_delay_s and self.state.stopping.wait(self.state.chunk_delay_s):
                return
            chunk = part[offset : min(offset + _BODY_CHUNK, limit)]
            self.wfile.write(chunk)
            record.bytes_sent += len(chunk)
        if drop_after is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


class _HubHandler(_Handler):
    """``/{org}/{repo}/resolve/{revision}/{filename}`` as the Hugging Face Hub answers it."""

    repos: dict[str, dict[str, bytes]]
    commit: str

    def find(self, path: str) -> tuple[bytes | int, dict[str, str]]:
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path.split("?", 1)[0])
        if not match or match.group(1) not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}
        repo, revision, filename = match.groups()
        if revision not in ("main", self.commit):
            return 404, {"X-Error-Code": "RevisionNotFound"}
        if filename not in self.repos[repo]:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": self.commit}
        return self.repos[repo][filename], {"X-Repo-Commit": self.commit}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that gave up is not a server error
        pass


class LocalServer:
    """``with LocalServer(folder) as server: server.url + '/file'``."""

    def __init__(self, root: Path | None, handler: type[_Handler] = _Handler, **handler_fields) -> None:
        self.state = ServerState(root)
        handler_class = type("Handler", (handler,), {"state": self.state, **handler_fields})
        self._server = _Server(("127.0.0.1", 0), handler_class)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "LocalServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class HubServer(LocalServer):
    """A Hugging Face Hub stand-in: ``HubServer({'org/repo': {'model.safetensors': b'…'}})``."""

    def __init__(self, repos: dict[str, dict[str, bytes]], commit: str = "0123456789abcdef0123456789abcdef01234567") -> None:
        super().__init__(None, _HubHandler, repos=repos, commit=commit)
        self.commit = commit
