"""Real servers for tests: a scriptable HTTP receiver and a real Alertmanager.

``HttpReceiver`` is a real HTTP server on a free port that records every request
and answers as the test scripts it; ``start_alertmanager`` runs Debian's
``prometheus-alertmanager`` on free ports with a given config.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Received:
    """One request the server got, and the status it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 0

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering
    body: bytes = b"ok"


class HttpReceiver:
    """A real HTTP server on a free port; ``respond(n, request)`` scripts the n-th answer."""

    def __init__(self, respond: Callable[[int, Received], Answer] | None = None) -> None:
        self.received: list[Received] = []
        self._respond = respond or (lambda _n, _r: Answer())
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with owner._lock:
                    owner.received.append(request)
                    n = len(owner.received)
                answer = owner._respond(n, request)
                request.status = answer.status
                time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up (timeout) or died
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def keys(self, status: int = 200) -> list[str]:
        """Idempotency keys of the requests answered ``status``, in arrival order."""
        with self._lock:
            return [r.key for r in self.received if r.status == status]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def start_alertmanager(workdir: Path, config: str) -> Iterator[str]:
    """A real Alertmanager with ``config`` (YAML) on a free port; yields its URL."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "Alertmanager is not installed: apt-get install prometheus-alertmanager"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "alertmanager.yml"
    path.write_text(config)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "Alertmanager exited at start"
            assert time.monotonic() < deadline, "Alertmanager did not become ready in 15s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
