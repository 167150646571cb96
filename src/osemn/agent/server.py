"""The agent's HTTP server: /metrics, /healthz, /readyz, /api/v1/results and a status page.

A stdlib ``ThreadingHTTPServer`` on a background thread: the agent needs a
handful of read-only routes, not a web framework. Handlers only read what the
agent hands in (the registry, a readiness probe, a results document), so a
slow scrape never blocks a check run. Whatever a handler raises becomes a 500
with a short message; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import math
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from osemn.errors import ConfigError, OsemnError

__all__ = ["ROUTES", "AgentServer"]

logger = logging.getLogger(__name__)

ROUTES: Mapping[str, str] = {
    "/": "status page (HTML)",
    "/metrics": "Prometheus metrics (text format, or OpenMetrics when Accept asks for it)",
    "/healthz": "liveness: 200 while the process serves",
    "/readyz": "readiness: 200 when the agent is ready, 503 with the reason otherwise",
    "/api/v1/results": "latest check results (JSON)",
    "/api/v1/slos": "SLOs: budget, burn rates, and pending/firing alerts (JSON)",
    "/api/v1/lineage": "the last lineage scan: nodes, edges, foreign keys, column lineage (JSON)",
}

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
# The page has no scripts and no remote resources; say so to the browser.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
_REQUEST_TIMEOUT_SECONDS = 30.0  # a client that stalls mid-request does not hold a thread forever
_SHUTDOWN_POLL_SECONDS = 0.05  # how soon stop() returns; an idle wake-up costs nothing


@dataclass(frozen=True)
class _Response:
    """What a route answers; the handler writes it."""

    status: HTTPStatus
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that logs a dropped connection instead of printing to stderr."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, ipv6: bool
    ) -> None:
        if ipv6:
            self.address_family = socket.AF_INET6
        self._host = address[0]
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host with getfqdn(), a reverse DNS
        # lookup that can hang for seconds in a container; the name is unused here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self._host, int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Reached when a client hangs up mid-response (BrokenPipe, reset): not our fault.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class AgentServer:
    """Serves the agent's routes on a background thread until ``stop()``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
        results: Callable[[], dict[str, Any]],
        slos: Callable[[], dict[str, Any]] | None = None,
        lineage: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Prepare the server; nothing listens before ``start()``.

        Args:
            host: address to bind (``127.0.0.1``, ``0.0.0.0``, ``::``).
            port: TCP port; 0 picks a free one (read it back from ``port``).
            registry: what ``/metrics`` exposes.
            ready: readiness probe, ``(ready, reason)``; called on each ``/readyz``.
            results: the ``/api/v1/results`` document (``results_document`` shape);
                called from server threads, so it must be thread-safe.
            slos: the ``/api/v1/slos`` document (``Agent.slo_document``), thread-safe too.
            lineage: the ``/api/v1/lineage`` document (``Agent.lineage_document``).
        """
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._ready = ready
        self._results = results
        self._slos = slos or _no_slos
        self._lineage = lineage or _no_lineage
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the chosen one when asked for port 0).

        Raises:
            OsemnError: before ``start()``, when no port is bound yet.
        """
        if self._server is None:
            raise OsemnError("AgentServer.port is known once start() has bound it; call start()")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind the socket and serve on a daemon thread.

        Raises:
            ConfigError: the address cannot be bound (in use, not local, no permission).
            OsemnError: the server is already running.
        """
        if self._server is not None:
            raise OsemnError("AgentServer is already running; call stop() before start()")
        ipv6 = ":" in self._host
        try:
            server = _Server((self._host, self._requested_port), self._handler_class(), ipv6=ipv6)
        except OSError as exc:
            where = f"[{self._host}]" if ipv6 else self._host
            raise ConfigError(
                f"cannot listen on {where}:{self._requested_port}: {exc.strerror or exc}. "
                "Stop the process that holds the port, or change agent.listen.",
                key="agent.listen",
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name="osemn-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("serving HTTP on %s:%d", self._host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket; a no-op when not running."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(_Handler):
            server_app = app

        return Handler

    # --- routes: each returns a _Response; the handler turns exceptions into 500 ---

    def _route(self, path: str, query: str, headers: Mapping[str, str]) -> _Response:
        """Answer one GET request; ``headers`` has lower-case names."""
        if path == "/metrics":
            return self._metrics(query, headers)
        if path == "/healthz":
            return _Response(HTTPStatus.OK, b"ok\n", _TEXT)
        if path == "/readyz":
            ok, reason = self._ready()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            text = reason or ("ready" if ok else "not ready")
            return _Response(status, f"{text}\n".encode(), _TEXT)
        if path == "/api/v1/results":
            return _Response(HTTPStatus.OK, _json_bytes(self._results()), _JSON)
        if path == "/api/v1/slos":
            return _Response(HTTPStatus.OK, _json_bytes(self._slos()), _JSON)
        if path == "/api/v1/lineage":
            return _Response(HTTPStatus.OK, _json_bytes(self._lineage()), _JSON)
        if path == "/":
            page = _status_page(self._results(), self._slos())
            return _Response(
                HTTPStatus.OK, page.encode(), _HTML, {"Content-Security-Policy": _PAGE_POLICY}
            )
        return _Response(
            HTTPStatus.NOT_FOUND,
            _json_bytes({"error": "not found", "routes": dict(ROUTES)}),
            _JSON,
        )

    def _metrics(self, query: str, headers: Mapping[str, str]) -> _Response:
        registry: Collector = self._registry
        names = parse_qs(query).get("name[]")
        if names:  # the client_python convention for scraping a subset
            registry = self._registry.restricted_registry(names)
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        body = encoder(registry)
        extra: dict[str, str] = {}
        if "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        return _Response(HTTPStatus.OK, body, content_type, extra)


class _Handler(BaseHTTPRequestHandler):
    """Dispatches to ``server_app._route`` and writes its answer."""

    server_app: AgentServer
    timeout = _REQUEST_TIMEOUT_SECONDS
    server_version = "osemn"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _not_allowed(self) -> None:
        body = _json_bytes({"error": f"method {self.command} not allowed; routes are GET only"})
        self._write(
            _Response(HTTPStatus.METHOD_NOT_ALLOWED, body, _JSON, {"Allow": "GET, HEAD"}),
            head=False,
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _answer(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = self.server_app._route(parts.path, parts.query, headers)
        except Exception:
            logger.exception("%s %s failed", self.command, parts.path)
            response = _Response(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                b"internal error; the agent log has the details\n",
                _TEXT,
            )
        self._write(response, head=head)

    def _write(self, response: _Response, *, head: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every few seconds would flood stderr; the access log is debug-level.
        logger.debug("%s %s", self.address_string(), format % args)


def _no_slos() -> dict[str, Any]:
    return {"slos": [], "alerts": []}


def _no_lineage() -> dict[str, Any]:
    return {"scanned_at": None, "graph": None}


def _json_bytes(doc: Any) -> bytes:
    """Strict JSON: NaN/inf (a ratio of an empty window) become null."""
    return json.dumps(_finite(doc), allow_nan=False, ensure_ascii=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _slo_table(doc: Mapping[str, Any]) -> str:
    """The SLO table of the status page: budget left, burn rates, alerts; empty without SLOs."""
    slos = doc.get("slos", [])
    if not slos:
        return ""
    firing: dict[str, list[str]] = {}
    for alert in doc.get("alerts", []):
        if alert.get("state") in ("pending", "firing"):
            tier = alert["labels"].get("burnrate_tier")
            name = alert["labels"].get("alertname", "") + (f" {tier}" if tier else "")
            firing.setdefault(alert["labels"].get("slo", ""), []).append(
                f"{name} ({alert['state']})"
            )
    rows = []
    for s in slos:
        burn = s.get("burn_rates", {})
        cls = "fail" if firing.get(s["slo"]) else "pass"
        rows.append(
            f'<tr class="{cls}"><td>{html.escape(s["slo"])}</td>'
            f"<td>{html.escape(s['dataset'])}</td><td>{html.escape(s['sli'])}</td>"
            f"<td>{_pct(s.get('objective'))}</td>"
            f"<td>{_pct(s.get('error_budget_remaining'))}</td>"
            + "".join(f"<td>{_num(burn.get(w))}</td>" for w in ("5m", "1h", "6h", "1d", "3d"))
            + f"<td>{html.escape('; '.join(firing.get(s['slo'], [])))}</td></tr>"
        )
    return (
        "<h2>SLOs</h2><table><thead><tr><th>slo</th><th>dataset</th><th>sli</th>"
        "<th>objective</th><th>budget left</th><th>burn 5m</th><th>burn 1h</th>"
        "<th>burn 6h</th><th>burn 1d</th><th>burn 3d</th><th>alerts</th></tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )


def _pct(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%"


def _num(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}"


def _status_page(doc: Mapping[str, Any], slos: Mapping[str, Any] | None = None) -> str:
    """A plain HTML table of the latest results (and SLOs); every value is escaped."""

    def cell(value: Any) -> str:
        return f"<td>{html.escape('' if value is None else str(value))}</td>"

    rows = []
    for r in doc.get("results", []):
        status = str(r.get("status", ""))
        rows.append(
            f'<tr class="{html.escape(status)}">'
            + cell(r.get("dataset"))
            + cell(r.get("check"))
            + cell(status)
            + cell(r.get("rows"))
            + cell(r.get("failed_rows"))
            + cell(r.get("finished_at"))
            + cell(r.get("error") or r.get("note"))
            + "</tr>"
        )
    summary = doc.get("summary", {})
    counts = ", ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in summary.items())
    body = "\n".join(rows) or '<tr><td colspan="7">no results yet</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>osemn</title>
<meta http-equiv="refresh" content="30">
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
tr.fail td {{ background: #fde2e2; }} tr.error td {{ background: #fff1cc; }}
</style></head>
<body><h1>osemn</h1>
<p>{counts or "no results yet"} &middot; <a href="/metrics">metrics</a> &middot;
<a href="/api/v1/results">results (JSON)</a> &middot; <a href="/api/v1/slos">SLOs (JSON)</a>
&middot; <a href="/readyz">readiness</a></p>
{_slo_table(slos or {})}
<h2>Checks</h2>
<table><thead><tr><th>dataset</th><th>check</th><th>status</th><th>rows</th>
<th>failed rows</th><th>last run</th><th>detail</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""
