"""OpenLineage events: lineage scans and check runs, built with openlineage-python.

Dataset names follow the OpenLineage naming spec: the namespace is where the
data lives (``postgres://host:port``, ``mysql://host:port``, ...) and the name
is the path inside it (``db.schema.table`` for PostgreSQL). DuckDB and SQLite,
which the spec does not name, use ``duckdb://`` / ``sqlite://`` with the file
path as authority and ``schema.table`` as name.
See: https://openlineage.io/docs/spec/naming

A check run is a run of job ``check.<dataset>`` (namespace ``lineage.openlineage.namespace``):
START, then COMPLETE (the checks ran; failed assertions are data, not a failed
run) or FAIL (a check errored), with the input dataset repeated on the terminal
event carrying ``schema``, ``dataQualityMetrics`` and ``dataQualityAssertions``.
A lineage scan is one COMPLETE event per node that has upstreams, with its
``columnLineage`` facet and the defining SQL as the job's ``sql`` facet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    error_message_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from osemn._version import __version__
from osemn.lineage.graph import LineageGraph, Node
from osemn.results import CheckResult, Status

__all__ = ["PRODUCER", "check_run_events", "dataset_name", "scan_events", "to_json"]

PRODUCER = f"urn:osemn:{__version__}"  # a URI naming the producer and its version
_SCHEMES = {"postgresql": "postgres", "mariadb": "mysql", "mssql": "sqlserver"}
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "sqlserver": 1433}


def dataset_name(url: str, schema: str | None, table: str) -> tuple[str, str]:
    """(namespace, name) of a table of the source at ``url``, by the naming spec."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    scheme = _SCHEMES.get(backend, backend)
    if backend in ("duckdb", "sqlite"):
        return f"{scheme}://{parsed.database or ':memory:'}", f"{schema or 'main'}.{table}"
    port = parsed.port or _DEFAULT_PORTS.get(scheme)
    authority = f"{parsed.host or 'localhost'}" + (f":{port}" if port else "")
    if scheme == "mysql":  # MySQL's schema is its database
        return f"{scheme}://{authority}", f"{schema or parsed.database}.{table}"
    parts = (parsed.database, schema, table)
    return f"{scheme}://{authority}", ".".join(p for p in parts if p)


def _node_dataset(node: Node, urls: Mapping[str, str], namespace: str) -> tuple[str, str]:
    url = urls.get(node.source)
    if url is None:  # models and dbt-only relations live in osemn's own namespace
        return namespace, node.key
    return dataset_name(url, node.schema, node.name)


def scan_events(
    graph: LineageGraph, *, urls: Mapping[str, str], namespace: str, at: datetime
) -> list[RunEvent]:
    """One COMPLETE event per node with upstreams: its inputs, and itself as output."""
    events: list[RunEvent] = []
    columns: dict[str, list[Any]] = {}
    for c in graph.columns:
        columns.setdefault(c.downstream, []).append(c)
    sql = {e.downstream: e.sql for e in graph.edges if e.sql}
    for key, node in graph.nodes.items():
        upstream = graph.upstream(key)
        if not upstream:
            continue
        ns, name = _node_dataset(node, urls, namespace)
        fields: dict[str, column_lineage_dataset.Fields] = {}
        indirect = []
        for c in columns.get(key, []):
            up_ns, up_name = (
                _node_dataset(graph.nodes[c.upstream], urls, namespace)
                if (c.upstream in graph.nodes)
                else (namespace, c.upstream)
            )
            kind = "INDIRECT" if c.indirect else "DIRECT"
            field = column_lineage_dataset.InputField(
                namespace=up_ns,
                name=up_name,
                field=c.upstream_column,
                transformations=[column_lineage_dataset.Transformation(type=kind)],
            )
            if c.indirect:
                indirect.append(field)
            else:
                fields.setdefault(c.column, column_lineage_dataset.Fields(inputFields=[]))
                fields[c.column].inputFields.append(field)
        for entry in fields.values():
            entry.inputFields.extend(indirect)
        facets: dict[str, Any] = {}
        if fields:
            facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
                fields=fields
            )
        job_facets: dict[str, Any] = {}
        if key in sql:
            job_facets["sql"] = sql_job.SQLJobFacet(query=str(sql[key]))
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=at.isoformat(),
                producer=PRODUCER,
                run=Run(runId=str(generate_new_uuid(at))),
                job=Job(namespace=namespace, name=f"lineage.{name}", facets=job_facets),
                inputs=[
                    InputDataset(*_node_dataset(graph.nodes[u], urls, namespace)) for u in upstream
                ],
                outputs=[OutputDataset(namespace=ns, name=name, facets=facets)],
            )
        )
    return events


def check_run_events(
    results: Sequence[CheckResult],
    *,
    namespace: str,
    dataset: tuple[str, str],
    columns: Sequence[tuple[str, str | None]],
    started: datetime,
) -> tuple[RunEvent, RunEvent]:
    """START and COMPLETE/FAIL of one dataset's check run, the dataset on both.

    ``dataset`` is its (namespace, name), ``columns`` its (name, type) pairs.
    """
    run = Run(runId=str(generate_new_uuid(started)))
    subject = results[0].dataset if results else dataset[1]
    job = Job(namespace=namespace, name=f"check.{subject}")
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns]
    )
    start = RunEvent(
        eventType=RunState.START,
        eventTime=started.isoformat(),
        producer=PRODUCER,
        run=run,
        job=job,
        inputs=[InputDataset(*dataset, facets={"schema": schema})],
    )
    assertions = [
        data_quality_assertions_dataset.Assertion(
            assertion=r.check,
            success=r.status is Status.PASS,
            column=r.check.split(":", 1)[0] if ":" in r.check else None,
        )
        for r in results
        if r.status in (Status.PASS, Status.FAIL)
    ]
    metrics = data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        columnMetrics=_column_metrics(results),
        rowCount=max((r.rows for r in results if r.rows is not None), default=None),
    )
    errors = [r for r in results if r.status is Status.ERROR]
    run_facets: dict[str, Any] = {}
    if errors:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message="; ".join(f"{r.check}: {r.error}" for r in errors),
            programmingLanguage="python",
        )
    finished = max((r.finished_at for r in results), default=started)
    end = RunEvent(
        eventType=RunState.FAIL if errors else RunState.COMPLETE,
        eventTime=finished.isoformat(),
        producer=PRODUCER,
        run=Run(runId=run.runId, facets=run_facets),
        job=job,
        inputs=[
            InputDataset(
                *dataset,
                facets={"schema": schema},
                inputFacets={
                    "dataQualityMetrics": metrics,
                    "dataQualityAssertions": (
                        data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                            assertions=assertions
                        )
                    ),
                },
            )
        ],
    )
    return start, end


def _column_metrics(
    results: Sequence[CheckResult],
) -> dict[str, data_quality_metrics_input_dataset.ColumnMetrics]:
    """Null counts from the completeness measurements (share of non-null rows)."""
    out: dict[str, data_quality_metrics_input_dataset.ColumnMetrics] = {}
    for r in results:
        for m in r.measurements:
            labels = dict(m.labels)
            if m.name == "completeness_ratio" and "column" in labels and r.rows is not None:
                out[labels["column"]] = data_quality_metrics_input_dataset.ColumnMetrics(
                    nullCount=round(r.rows * (1.0 - m.value)), count=float(r.rows)
                )
    return out


def to_json(event: RunEvent) -> str:
    """The event as the JSON document OpenLineage consumers take."""
    return str(Serde.to_json(event))
