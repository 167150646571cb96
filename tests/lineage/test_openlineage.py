"""OpenLineage: dataset naming, check-run and scan events, sent with the file
transport and to a real HTTP receiver shaped like Marquez (POST /api/v1/lineage)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from openlineage.client.event_v2 import RunState

from osemn.cli import main
from osemn.lineage.openlineage import check_run_events, dataset_name, to_json
from osemn.results import CheckKind, CheckResult, Measurement, Status
from tests.servers import Answer, HttpReceiver, free_port

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "schema", "expected"),
    [
        (
            "postgresql+psycopg://u:p@db.example:6543/shop",
            "public",
            ("postgres://db.example:6543", "shop.public.orders"),
        ),
        ("postgresql://u@db.example/shop", "s", ("postgres://db.example:5432", "shop.s.orders")),
        # no schema known: the part is left out, never written as "None"
        ("postgresql://u@db.example/shop", None, ("postgres://db.example:5432", "shop.orders")),
        ("mysql+pymysql://root@127.0.0.1/shop", None, ("mysql://127.0.0.1:3306", "shop.orders")),
        ("duckdb:////data/wh.duckdb", "main", ("duckdb:///data/wh.duckdb", "main.orders")),
    ],
)
def test_dataset_names_follow_the_naming_spec(
    url: str, schema: str | None, expected: tuple[str, str]
) -> None:
    assert dataset_name(url, schema, "orders") == expected


def _result(check: str, status: Status, **kw: object) -> CheckResult:
    return CheckResult(
        dataset="orders",
        kind=CheckKind.SCHEMA,
        check=check,
        status=status,
        rows=10,
        failed_rows=2 if status is Status.FAIL else 0,
        duration_seconds=0.1,
        finished_at=AT,
        **kw,
    )  # type: ignore[arg-type]


def test_a_check_run_is_start_then_complete_with_quality_facets() -> None:
    results = [
        _result(
            "amount:in_range(0, 100)",
            Status.FAIL,
            measurements=(
                Measurement(name="completeness_ratio", value=0.9, labels=(("column", "amount"),)),
            ),
        ),
        _result("id:unique", Status.PASS),
    ]
    start, end = check_run_events(
        results,
        namespace="osemn",
        dataset=("postgres://h:5432", "db.public.orders"),
        columns=[("id", "INTEGER"), ("amount", "FLOAT")],
        started=AT,
    )
    assert (start.eventType, end.eventType) == (RunState.START, RunState.COMPLETE)
    assert start.run.runId == end.run.runId and start.job.name == "check.orders"
    doc = json.loads(to_json(end))
    (dataset,) = doc["inputs"]
    assert dataset["name"] == "db.public.orders"
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == ["id", "amount"]
    assertions = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {(a["assertion"], a["success"], a["column"]) for a in assertions} == {
        ("amount:in_range(0, 100)", False, "amount"),
        ("id:unique", True, "id"),
    }
    metrics = dataset["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 10
    assert metrics["columnMetrics"]["amount"]["nullCount"] == 1


def test_an_errored_check_makes_the_run_fail() -> None:
    results = [_result("amount:not_null", Status.ERROR, error="column gone")]
    _start, end = check_run_events(
        results, namespace="osemn", dataset=("n", "t"), columns=[], started=AT
    )
    assert end.eventType == RunState.FAIL
    assert "column gone" in json.loads(to_json(end))["run"]["facets"]["errorMessage"]["message"]


def _warehouse(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INT, kind TEXT)"))
        conn.execute(
            sa.text(
                "CREATE VIEW kinds AS SELECT kind, count(*) AS n FROM events "
                "WHERE id > 0 GROUP BY kind"
            )
        )
    engine.dispose()
    return url


def _scan_event(lines: list[str]) -> dict[str, object]:
    (line,) = lines
    doc: dict[str, object] = json.loads(line)
    return doc


def test_a_scan_goes_to_the_file_transport(tmp_path: Path) -> None:
    url = _warehouse(tmp_path)
    out = tmp_path / "events.jsonl"
    config = tmp_path / "osemn.yaml"
    config.write_text(
        f'version: 1\nsources: {{d: {{url: "{url}"}}}}\n'
        "lineage:\n  openlineage:\n    namespace: team\n"
        f'    transport: {{type: file, log_file_path: "{out}", append: true}}\n'
    )
    result = CliRunner().invoke(main, ["lineage", "-c", str(config), "--format", "openlineage"])
    assert result.exit_code == 0, result.output
    printed = _scan_event(result.stdout.splitlines())
    sent = _scan_event(out.read_text().splitlines())
    assert sent["run"]["runId"] == printed["run"]["runId"]  # type: ignore[index]
    assert sent["job"]["namespace"] == "team"  # type: ignore[index]
    (output,) = sent["outputs"]  # type: ignore[misc]
    assert output["name"] == "main.kinds"
    fields = output["facets"]["columnLineage"]["fields"]
    kinds = {(f["field"], f["transformations"][0]["type"]) for f in fields["kind"]["inputFields"]}
    assert kinds == {("kind", "DIRECT"), ("id", "INDIRECT"), ("kind", "INDIRECT")}  # filter, group
    assert "count" in sent["job"]["facets"]["sql"]["query"].lower()  # type: ignore[index]


@pytest.fixture
def openlineage_env() -> Iterator[None]:
    """Restore OPENLINEAGE* variables: openlineage-python turns OPENLINEAGE_URL into
    OPENLINEAGE__TRANSPORT__... variables of the process, which would outlive the test."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE")}
    yield
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[key]
    os.environ.update(before)


@pytest.mark.usefixtures("openlineage_env")
def test_a_scan_goes_to_a_marquez_shaped_receiver_via_openlineage_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _warehouse(tmp_path)
    config = tmp_path / "osemn.yaml"
    config.write_text(f'version: 1\nsources: {{d: {{url: "{url}"}}}}\nlineage: {{}}\n')
    with HttpReceiver(lambda _n, _r: Answer(status=201)) as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        result = CliRunner().invoke(main, ["lineage", "-c", str(config), "--format", "openlineage"])
        assert result.exit_code == 0, result.output
        (request,) = receiver.received
    assert request.path == "/api/v1/lineage"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json()["outputs"][0]["name"] == "main.kinds"


def test_an_unreachable_receiver_is_an_error_of_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _warehouse(tmp_path)
    config = tmp_path / "osemn.yaml"
    config.write_text(
        f'version: 1\nsources: {{d: {{url: "{url}"}}}}\n'
        "lineage: {openlineage: {transport: {type: http, url: 'http://127.0.0.1:"
        f"{free_port()}', "
        "timeout: 1, retry: {total: 0}}}}\n"
    )
    result = CliRunner().invoke(main, ["lineage", "-c", str(config), "--format", "openlineage"])
    assert result.exit_code == 2
    assert "OpenLineage event 1 of 1 not delivered" in result.stderr


def test_lineage_json_and_dot(tmp_path: Path) -> None:
    url = _warehouse(tmp_path)
    config = tmp_path / "osemn.yaml"
    config.write_text(
        f'version: 1\nsources: {{d: {{url: "{url}"}}}}\n'
        "datasets: {kinds: {source: d, table: kinds}}\n"
    )
    result = CliRunner().invoke(main, ["lineage", "-c", str(config)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_key = {n["key"]: n for n in doc["nodes"]}
    assert by_key["d/main.kinds"]["upstream"] == ["d/main.events"]
    assert by_key["d/main.kinds"]["dataset"] == "kinds"
    dot = CliRunner().invoke(main, ["lineage", "-c", str(config), "--format", "dot"])
    assert '"d/main.events" -> "d/main.kinds"' in dot.stdout
