"""A real HTTP server on 127.0.0.1 for download tests, with a request log and switchable faults."""

import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServerState:
    root: Path
    requests: list[str] = field(default_factory=list)
    fail_with: int | None = None  # answer every request with this HTTP status


class _Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.state.requests.append(self.path)
        if self.state.fail_with:
            self.send_error(self.state.fail_with)
            return
        file = self.state.root / self.path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class LocalServer:
    """``with LocalServer(folder) as server: server.url + '/file'``."""

    def __init__(self, root: Path) -> None:
        self.state = ServerState(root)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "LocalServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
