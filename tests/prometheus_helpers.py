"""A real Prometheus (Debian package) for tests: started on a free port, polled over HTTP."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import free_port


def prometheus_binary() -> str:
    """The prometheus on PATH; its absence fails the test, never skips it."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "prometheus is not installed: apt-get install -y prometheus (README's test command)"
        )
    return binary


@contextmanager
def running_prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """Prometheus scraping ``target`` (host:port) every second; yields its base URL.

    It starts in the background: poll it with ``poll_query``. Stopped on exit.
    """
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "osemn", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def poll_query(base: str, promql: str, deadline: float) -> list[dict[str, Any]]:
    """Poll the instant-query API until the expression returns series.

    Raises:
        AssertionError: when ``time.monotonic()`` passes ``deadline`` first.
    """
    while True:
        try:
            body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
            if body["status"] == "success" and body["data"]["result"]:
                return list(body["data"]["result"])
        except (httpx.TransportError, ValueError):  # not up yet, or a 503 text page
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never returned {promql!r}")
        time.sleep(0.5)
