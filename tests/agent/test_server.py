"""AgentServer over real HTTP: a started server on a free port, httpx as the client."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from osemn.agent.server import ROUTES, AgentServer
from osemn.errors import ConfigError, OsemnError
from osemn.exporters.metrics import MetricsCollector
from osemn.results import CheckKind, CheckResult, Measurement, Status, results_document

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "hunter2-secret-token"


class Agent:
    """The parts of an agent the server reads: readiness, results, metrics."""

    def __init__(self) -> None:
        self.ready: tuple[bool, str] = (False, "loading config")
        self.results: list[CheckResult] = []
        self.fail_with: Exception | None = None
        self.registry = CollectorRegistry()
        self.collector = MetricsCollector(version="9.9.9", clock=lambda: T0.timestamp())
        self.registry.register(self.collector)

    def readiness(self) -> tuple[bool, str]:
        return self.ready

    def document(self) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        return results_document(self.results)

    def run(self, results: list[CheckResult]) -> None:
        self.results = results
        self.collector.observe(results)


def check(
    check: str,
    kind: CheckKind,
    status: Status = Status.PASS,
    *,
    dataset: str = "orders",
    rows: int | None = 10,
    failed_rows: int | None = 0,
    error: str | None = None,
    measurements: tuple[Measurement, ...] = (),
) -> CheckResult:
    return CheckResult(
        dataset=dataset,
        kind=kind,
        check=check,
        status=status,
        rows=rows,
        failed_rows=failed_rows,
        duration_seconds=0.05,
        finished_at=T0,
        error=error,
        measurements=measurements,
    )


@pytest.fixture
def agent() -> Agent:
    return Agent()


@pytest.fixture
def server(agent: Agent) -> Iterator[AgentServer]:
    srv = AgentServer(
        host="127.0.0.1",
        port=0,
        registry=agent.registry,
        ready=agent.readiness,
        results=agent.document,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: AgentServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as c:
        yield c


def test_port_zero_picks_a_free_port(server: AgentServer) -> None:
    assert server.port > 0


def test_metrics_text_format(agent: Agent, client: httpx.Client) -> None:
    agent.run([check("id:not_null", CheckKind.SCHEMA)])
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["osemn_build_info"].samples[0].labels == {"version": "9.9.9"}
    assert "osemn_check_runs" in families


def test_metrics_openmetrics_when_asked(agent: Agent, client: httpx.Client) -> None:
    agent.run([check("id:not_null", CheckKind.SCHEMA)])
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    names = {f.name for f in parse_om(r.text)}
    assert {"osemn_check_runs", "osemn_check_duration_seconds"} <= names


def test_metrics_gzip_and_name_filter(agent: Agent, client: httpx.Client) -> None:
    agent.run([check("id:not_null", CheckKind.SCHEMA)])
    with client.stream(
        "GET",
        "/metrics",
        params={"name[]": "osemn_check_success"},
        headers={"Accept-Encoding": "gzip"},
    ) as r:
        assert r.headers["content-encoding"] == "gzip"
        text = gzip.decompress(b"".join(r.iter_raw())).decode()
    assert "osemn_check_success{" in text
    assert "osemn_build_info" not in text


def test_metrics_counters_accumulate_between_scrapes(agent: Agent, client: httpx.Client) -> None:
    def runs() -> float:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for s in family.samples:
                if s.name == "osemn_check_runs_total" and s.labels["status"] == "pass":
                    return s.value
        raise AssertionError("no osemn_check_runs_total sample")

    agent.run([check("volume", CheckKind.VOLUME)])
    assert runs() == 1
    agent.run([check("volume", CheckKind.VOLUME)])
    agent.run([check("volume", CheckKind.VOLUME)])
    assert runs() == 3


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert (r.status_code, r.text) == (200, "ok\n")
    assert r.headers["content-type"].startswith("text/plain")


def test_readiness_flips(agent: Agent, client: httpx.Client) -> None:
    r = client.get("/readyz")
    assert (r.status_code, r.text) == (503, "loading config\n")
    agent.ready = (True, "")
    r = client.get("/readyz")
    assert (r.status_code, r.text) == (200, "ready\n")
    agent.ready = (False, "state store unreachable")
    assert client.get("/readyz").status_code == 503


def test_results_api(agent: Agent, client: httpx.Client) -> None:
    freshness = check(
        "freshness",
        CheckKind.FRESHNESS,
        rows=None,
        failed_rows=None,
        measurements=(Measurement(name="newest_row_timestamp_seconds", value=T0.timestamp()),),
    )
    agent.run([check("amount:ge(0)", CheckKind.SCHEMA, Status.FAIL, failed_rows=2), freshness])
    r = client.get("/api/v1/results")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc == json.loads(json.dumps(results_document(agent.results)))
    assert doc["summary"] == {"pass": 1, "fail": 1, "error": 0, "insufficient_data": 0}


def test_results_api_turns_nan_into_null(agent: Agent, client: httpx.Client) -> None:
    empty = check(
        "volume",
        CheckKind.VOLUME,
        measurements=(Measurement(name="completeness_ratio", value=float("nan")),),
    )
    agent.run([empty])
    doc = json.loads(client.get("/api/v1/results").text)  # strict JSON: no NaN token
    assert doc["results"][0]["measurements"] == {"completeness_ratio": None}


def test_status_page_escapes_values(agent: Agent, client: httpx.Client) -> None:
    agent.run(
        [
            check("<script>alert(1)</script>", CheckKind.SCHEMA, dataset='a"&b'),
            check(
                "volume",
                CheckKind.VOLUME,
                Status.ERROR,
                rows=None,
                failed_rows=None,
                error="table <gone> missing",
            ),
        ]
    )
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "a&quot;&amp;b" in r.text
    assert "table &lt;gone&gt; missing" in r.text
    assert T0.isoformat() in r.text
    assert r.text.count("<tr class=") == 2


def test_status_page_without_results(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "no results yet" in r.text


def test_unknown_route_lists_routes(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json()["routes"] == dict(ROUTES)
    assert set(ROUTES) == {
        "/",
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/results",
        "/api/v1/slos",
        "/api/v1/lineage",
    }


def test_head_and_other_methods(client: httpx.Client) -> None:
    r = client.head("/healthz")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == "3"
    r = client.post("/metrics", content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_handler_exception_is_a_short_500_and_the_server_lives(
    agent: Agent, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    agent.fail_with = RuntimeError(f"password={SECRET} at /srv/agent/secret.py line 3")
    for path in ("/api/v1/results", "/"):
        r = client.get(path)
        assert r.status_code == 500
        assert SECRET not in r.text
        assert "Traceback" not in r.text
        assert len(r.text) < 100
    assert "RuntimeError" in caplog.text  # the details are in the log, not the response
    assert client.get("/healthz").status_code == 200
    agent.fail_with = None
    assert client.get("/api/v1/results").status_code == 200


def test_no_access_log_on_stderr(client: httpx.Client, capfd: pytest.CaptureFixture[str]) -> None:
    for path in ("/metrics", "/healthz", "/nope"):
        client.get(path)
    assert capfd.readouterr().err == ""


def test_stop_closes_the_port(agent: Agent) -> None:
    srv = AgentServer(
        host="127.0.0.1",
        port=0,
        registry=agent.registry,
        ready=agent.readiness,
        results=agent.document,
    )
    srv.start()
    port = srv.port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    with pytest.raises(OsemnError, match="start"):
        _ = srv.port


def test_start_twice_is_refused(server: AgentServer) -> None:
    with pytest.raises(OsemnError, match="already running"):
        server.start()


def test_port_in_use_is_a_config_error(agent: Agent) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        srv = AgentServer(
            host="127.0.0.1",
            port=port,
            registry=agent.registry,
            ready=agent.readiness,
            results=agent.document,
        )
        with pytest.raises(ConfigError, match=r"agent\.listen") as info:
            srv.start()
    assert info.value.key == "agent.listen"
    assert str(port) in str(info.value)
