"""The state store: check history, measurements, watermarks and schema snapshots.

Any SQLAlchemy database holds it (a SQLite file by default; SQLite and
PostgreSQL are tested). Tables are SQLAlchemy Core tables prefixed ``osemn_``
so they can share a database with other applications:

- ``osemn_meta``: ``schema_version`` of these tables (see ``StateStore.open``).
- ``osemn_results``: one row per check result, ever (until pruned).
- ``osemn_measurements``: the measurements of each result, in order.
- ``osemn_latest``: a pointer to the newest result of each (dataset, kind, check).
- ``osemn_watermarks``: the incremental-check watermark of each dataset.
- ``osemn_schema_snapshots``: the column types of a dataset each time they were put.
- ``osemn_reference_profiles``: the drift reference profile of each column, with its key.
- ``osemn_sli_events``: good and bad SLI events of each SLO, with their time (version 3).
- ``osemn_alerts``: the alerts the agent holds, so a restart keeps their start times.
- ``osemn_lineage_graphs``: the last lineage scans, newest kept (version 4).
- ``osemn_outbox``: notifications written before they are sent (``exporters.outbox``).

Times are stored as UTC (``timestamptz`` on PostgreSQL, naive UTC elsewhere) and
always returned tz-aware in UTC. Every write is one short transaction on a pooled
engine, so the agent's worker threads can share one store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import sqlalchemy as sa

from osemn._clock import utcnow
from osemn.agent._state_schema import (
    _OPEN_LOCK_KEY,
    _VERSION_KEY,
    _create_engine,
    _latest,
    _lineage,
    _measurements,
    _meta,
    _metadata,
    _profiles,
    _results,
    _snapshots,
    _stored_version,
    _upsert,
    _watermarks,
)
from osemn.errors import StateError, StateVersionError
from osemn.exporters import _outbox_schema  # noqa: F401  (registers osemn_outbox with the tables)
from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = ["StateStore"]

_LINEAGE_KEPT = 3  # lineage scans kept: the latest, and two to compare it with


class StateStore:
    """The agent's history in a SQLAlchemy database; safe to share between threads.

    ``latest_results`` reads ``osemn_latest``, a row per check upserted by
    ``record_run``, rather than a window query over the history: a window query
    reads every result of a check (PostgreSQL and SQLite have no skip scan), so
    its cost grows with retention, while the pointer table makes it cost one
    row per check however long the history is.

    Args:
        url: the SQLAlchemy URL (``agent.state``), e.g. ``sqlite:///osemn-state.db``.
        engine: an engine for that URL to use instead of creating one; the store
            does not configure it and never disposes it.
        clock: aware-UTC wall clock, for snapshot times and pruning.

    Raises:
        StateError: the URL is not a SQLAlchemy URL or its driver is not installed.
    """

    SCHEMA_VERSION: ClassVar[int] = 4

    def __init__(
        self,
        url: str,
        *,
        engine: sa.Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._clock = clock
        self._owns_engine = engine is None
        if engine is not None:
            self._engine = engine
        else:
            self._engine = _create_engine(url)

    @property
    def engine(self) -> sa.Engine:
        """The engine, for other parts that keep their tables in the same database."""
        return self._engine

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden, for logs and messages."""
        return self._engine.url.render_as_string(hide_password=True)

    def open(self) -> None:
        """Create the tables if missing and check the schema version they were made with.

        Agents sharing a PostgreSQL database serialize this with an advisory lock.

        Raises:
            StateVersionError: the database was written by a newer osemn.
            StateError: the database cannot be reached or written.
        """
        self._make_sqlite_folder()
        with self._guard("open the state store"), self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_OPEN_LOCK_KEY)))
            found = _stored_version(conn)
            if found is not None and found > self.SCHEMA_VERSION:
                raise StateVersionError(
                    found=found, supported=self.SCHEMA_VERSION, url=self.safe_url
                )
            _metadata.create_all(conn)  # new tables (e.g. reference profiles in version 2)
            if found is None:
                conn.execute(
                    sa.insert(_meta).values(key=_VERSION_KEY, value=str(self.SCHEMA_VERSION))
                )
            elif found < self.SCHEMA_VERSION:
                _migrate(conn, found)
                conn.execute(
                    sa.update(_meta)
                    .where(_meta.c.key == _VERSION_KEY)
                    .values(value=str(self.SCHEMA_VERSION))
                )

    def ping(self) -> bool:
        """True when the database answers a trivial SELECT (the /readyz probe)."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.select(sa.literal(1)))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def record_run(self, results: Sequence[CheckResult]) -> None:
        """Append results and their measurements to the history in one transaction.

        The newest result of a check (by ``finished_at``) stays the latest even when
        an older one is recorded after it.

        Raises:
            ValueError: a ``finished_at`` is naive.
            StateError: the write failed; nothing of the run was stored.
        """
        for result in results:
            _require_aware(result.finished_at, f"finished_at of {result.dataset}/{result.check}")
        if not results:
            return
        with self._guard("record a run"), self._engine.begin() as conn:
            ids: list[int] = []
            rows: list[dict[str, Any]] = []
            for result in results:
                inserted = conn.execute(sa.insert(_results).values(_result_row(result)))
                # Set after every single-row INSERT, on every dialect (RETURNING or lastrowid).
                result_id = int(cast(sa.Row[Any], inserted.inserted_primary_key)[0])
                ids.append(result_id)
                rows.extend(_measurement_rows(result_id, result))
            if rows:
                conn.execute(sa.insert(_measurements), rows)
            # One order for every run, so concurrent runs lock latest rows without deadlock.
            for result_id, result in sorted(zip(ids, results, strict=True), key=_latest_order):
                _upsert(
                    conn,
                    _latest,
                    {"dataset": result.dataset, "kind": result.kind.value, "check": result.check},
                    {"result_id": result_id, "finished_at": result.finished_at},
                    guard=_latest.c.finished_at <= result.finished_at,
                )

    def latest_results(self, dataset: str | None = None) -> list[CheckResult]:
        """The newest result of every (dataset, kind, check), sorted by those keys.

        Raises:
            StateError: the read failed, or a result has a kind this osemn does not know.
        """
        query = _results_query(
            _latest.join(_results, _results.c.id == _latest.c.result_id)
        ).order_by(_latest.c.dataset, _latest.c.kind, _latest.c.check, _measurements.c.position)
        if dataset is not None:
            query = query.where(_latest.c.dataset == dataset)
        with self._guard("read the latest results"), self._engine.connect() as conn:
            return self._rebuild(conn.execute(query))

    def history(
        self, dataset: str, check: str, *, since: datetime | None = None
    ) -> list[CheckResult]:
        """Every stored result of one check, oldest first.

        Args:
            dataset: the dataset name.
            check: the check name (e.g. ``email:not_null``), of any kind.
            since: only results finished at or after this aware time.

        Raises:
            ValueError: ``since`` is naive.
            StateError: the read failed.
        """
        query = (
            _results_query(_results)
            .where(_results.c.dataset == dataset, _results.c.check == check)
            .order_by(_results.c.finished_at, _results.c.id, _measurements.c.position)
        )
        if since is not None:
            query = query.where(_results.c.finished_at >= _require_aware(since, "since"))
        with self._guard(f"read the history of {dataset}/{check}"), self._engine.connect() as conn:
            return self._rebuild(conn.execute(query))

    def measurements(
        self, name: str, *, dataset: str | None = None, since: datetime | None = None
    ) -> list[tuple[datetime, str, dict[str, str], float]]:
        """Every stored value of a measurement as ``(time, dataset, labels, value)``, oldest first.

        Args:
            name: the measurement name, e.g. ``completeness_ratio``.
            dataset: only this dataset's values.
            since: only values measured at or after this aware time.

        Raises:
            ValueError: ``since`` is naive.
            StateError: the read failed.
        """
        m = _measurements.c
        query = (
            sa.select(m.measured_at, m.dataset, m.labels, m.value)
            .where(m.name == name)
            .order_by(m.measured_at, m.id)
        )
        if dataset is not None:
            query = query.where(m.dataset == dataset)
        if since is not None:
            query = query.where(m.measured_at >= _require_aware(since, "since"))
        with self._guard(f"read measurement {name}"), self._engine.connect() as conn:
            return [
                (row.measured_at, row.dataset, dict(_labels(row.labels)), _float(row.value))
                for row in conn.execute(query)
            ]

    def get_watermark(self, dataset: str) -> datetime | None:
        """The newest event time already checked in ``dataset``, if any.

        Raises:
            StateError: the read failed.
        """
        query = sa.select(_watermarks.c.value).where(_watermarks.c.dataset == dataset)
        with self._guard(f"read the watermark of {dataset}"), self._engine.connect() as conn:
            value: datetime | None = conn.execute(query).scalar_one_or_none()
            return value

    def set_watermark(self, dataset: str, value: datetime) -> None:
        """Set the watermark of ``dataset`` (it may move back, e.g. for a backfill).

        Raises:
            ValueError: ``value`` is naive.
            StateError: the write failed.
        """
        _require_aware(value, f"watermark of {dataset}")
        now = self._now()
        with self._guard(f"write the watermark of {dataset}"), self._engine.begin() as conn:
            _upsert(conn, _watermarks, {"dataset": dataset}, {"value": value, "updated_at": now})

    def get_schema_snapshot(self, dataset: str) -> dict[str, str] | None:
        """The column types last put for ``dataset`` (column -> type), if any.

        Raises:
            StateError: the read failed.
        """
        query = (
            sa.select(_snapshots.c.columns)
            .where(_snapshots.c.dataset == dataset)
            .order_by(_snapshots.c.id.desc())
            .limit(1)
        )
        with self._guard(f"read the schema snapshot of {dataset}"), self._engine.connect() as conn:
            columns: str | None = conn.execute(query).scalar_one_or_none()
        return None if columns is None else dict(json.loads(columns))

    def put_schema_snapshot(self, dataset: str, columns: Mapping[str, str]) -> None:
        """Store the column types of ``dataset``; older snapshots stay as history.

        Raises:
            StateError: the write failed.
        """
        row = {"dataset": dataset, "taken_at": self._now(), "columns": json.dumps(dict(columns))}
        with self._guard(f"write the schema snapshot of {dataset}"), self._engine.begin() as conn:
            conn.execute(sa.insert(_snapshots).values(row))

    def get_profile(self, dataset: str, column: str, key: str) -> dict[str, Any] | None:
        """The reference profile stored for ``column`` if it was built for ``key``.

        A profile is reused until its reference window moves; a different key
        (other windows, bins or top-K) means it must be built again.

        Raises:
            StateError: the read failed.
        """
        query = sa.select(_profiles.c.profile).where(
            _profiles.c.dataset == dataset, _profiles.c.column == column, _profiles.c.key == key
        )
        with self._guard(f"read the profile of {dataset}.{column}"), self._engine.connect() as conn:
            profile: str | None = conn.execute(query).scalar_one_or_none()
        return None if profile is None else dict(json.loads(profile))

    def put_profile(self, dataset: str, column: str, key: str, profile: Mapping[str, Any]) -> None:
        """Store the reference profile of ``column``, replacing the one before.

        Raises:
            StateError: the write failed.
        """
        values = {"key": key, "profile": json.dumps(dict(profile)), "built_at": self._now()}
        with self._guard(f"write the profile of {dataset}.{column}"), self._engine.begin() as conn:
            _upsert(conn, _profiles, {"dataset": dataset, "column": column}, values)

    def put_lineage(self, graph: Mapping[str, Any], *, duration_seconds: float) -> None:
        """Keep a lineage scan (``LineageGraph.to_json()``) and drop all but the last few.

        Raises:
            StateError: the write failed; the scan before stays the latest.
        """
        with self._guard("write the lineage graph"), self._engine.begin() as conn:
            inserted = conn.execute(
                sa.insert(_lineage).values(
                    scanned_at=self._now(),
                    duration_seconds=duration_seconds,
                    graph=json.dumps(dict(graph)),
                )
            )
            newest = int(cast(sa.Row[Any], inserted.inserted_primary_key)[0])
            conn.execute(sa.delete(_lineage).where(_lineage.c.id <= newest - _LINEAGE_KEPT))

    def latest_lineage(self) -> tuple[datetime, dict[str, Any]] | None:
        """The newest lineage scan kept (its time and graph document), if any.

        Raises:
            StateError: the read failed.
        """
        query = (
            sa.select(_lineage.c.scanned_at, _lineage.c.graph)
            .order_by(_lineage.c.id.desc())
            .limit(1)
        )
        with self._guard("read the lineage graph"), self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row.scanned_at, dict(json.loads(row.graph)))

    def get_meta(self, key: str) -> str | None:
        """A value other parts keep beside the schema version (e.g. alert group state)."""
        with self._guard(f"read {key}"), self._engine.connect() as conn:
            value = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def put_meta(self, key: str, value: str) -> None:
        """Set ``key`` (never ``schema_version``, which only ``open`` writes).

        Raises:
            StateError: the write failed.
        """
        if key == _VERSION_KEY:
            raise StateError(f"{key!r} is managed by StateStore.open(); use another key")
        with self._guard(f"write {key}"), self._engine.begin() as conn:
            _upsert(conn, _meta, {"key": key}, {"value": value})

    def prune(self, retention: timedelta) -> int:
        """Delete history older than ``retention`` and return how many rows went.

        Results (with their measurements) and schema snapshots older than
        now - retention go, except the latest result of each check and the
        latest snapshot of each dataset; watermarks always stay.

        Raises:
            StateError: the delete failed; nothing was deleted.
        """
        cutoff = self._now() - retention
        doomed = sa.select(_results.c.id).where(
            _results.c.finished_at < cutoff,
            _results.c.id.not_in(sa.select(_latest.c.result_id)),
        )
        newest = sa.select(sa.func.max(_snapshots.c.id)).group_by(_snapshots.c.dataset)
        with self._guard("prune the history"), self._engine.begin() as conn:
            deleted = conn.execute(
                sa.delete(_measurements).where(_measurements.c.result_id.in_(doomed))
            ).rowcount
            deleted += conn.execute(sa.delete(_results).where(_results.c.id.in_(doomed))).rowcount
            deleted += conn.execute(
                sa.delete(_snapshots).where(
                    _snapshots.c.taken_at < cutoff, _snapshots.c.id.not_in(newest)
                )
            ).rowcount
        return deleted

    def close(self) -> None:
        """Release the connections, if the store created the engine."""
        if self._owns_engine:
            self._engine.dispose()

    def _now(self) -> datetime:
        return _require_aware(self._clock(), "clock()")

    def _make_sqlite_folder(self) -> None:
        url = self._engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return
        folder = Path(url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"state store {self.safe_url}: cannot create folder {str(folder)!r}: "
                f"{exc.strerror}. Create it, or point agent.state at a writable path."
            ) from exc

    @contextmanager
    def begin(self, action: str) -> Iterator[sa.Connection]:
        """A transaction for other parts' tables (SLI events, alerts, outbox).

        Raises:
            StateError: saying what ``action`` failed, password hidden.
        """
        with self._guard(action), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """The one boundary where database errors become ``StateError``."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise StateError(self._explain(action, exc)) from exc

    def _explain(self, action: str, exc: sa.exc.SQLAlchemyError) -> str:
        text = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
        reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        password = self._engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            hint = (
                "Check that the database is up and reachable, that agent.state has the right "
                "host and credentials, and that a SQLite file is writable."
            )
        else:
            hint = (
                "The osemn_ tables may have been changed outside osemn; restore them, or "
                "point agent.state at a new database."
            )
        return f"state store {self.safe_url}: cannot {action}: {reason}. {hint}"

    def _rebuild(self, rows: Iterable[sa.Row[Any]]) -> list[CheckResult]:
        """Results from rows of ``_results_query``: one row per measurement, in order."""
        built: dict[int, tuple[sa.Row[Any], list[Measurement]]] = {}
        for row in rows:
            _, measured = built.setdefault(row.id, (row, []))
            if row.m_name is not None:
                measured.append(
                    Measurement(
                        name=row.m_name, value=_float(row.m_value), labels=_labels(row.m_labels)
                    )
                )
        return [self._result(row, measured) for row, measured in built.values()]

    def _result(self, row: sa.Row[Any], measured: list[Measurement]) -> CheckResult:
        try:
            kind = CheckKind(row.kind)
        except ValueError:
            raise StateError(
                f"state store {self.safe_url} holds a {row.kind!r} result of "
                f"{row.dataset}/{row.check}, a kind this osemn does not know. "
                "Upgrade osemn to the version that wrote it."
            ) from None
        return CheckResult(
            dataset=row.dataset,
            kind=kind,
            check=row.check,
            status=Status(row.status),
            rows=row.rows,
            failed_rows=row.failed_rows,
            duration_seconds=_float(row.duration_seconds),
            finished_at=row.finished_at,
            measurements=tuple(measured),
            failures=tuple(json.loads(row.failures)),
            details=None if row.details is None else json.loads(row.details),
            error=row.error,
            note=row.note,
            source=row.source,
        )


def _migrate(conn: sa.Connection, found: int) -> None:
    """Bring tables of schema ``found`` up to ``StateStore.SCHEMA_VERSION``, in order."""
    if found < 2:
        # 2: results keep ``details`` (a drift check's histograms).
        conn.execute(sa.text("ALTER TABLE osemn_results ADD COLUMN details TEXT"))
    # 3: new tables only (SLI events, alerts, outbox), made by create_all.
    # 4: new table only (lineage graphs), made by create_all.


def _results_query(joined: sa.FromClause) -> sa.Select[Any]:
    """Results with their measurements (``m_*``), one row per measurement."""
    m = _measurements.c
    return sa.select(
        _results,
        m.name.label("m_name"),
        m.labels.label("m_labels"),
        m.value.label("m_value"),
    ).select_from(joined.outerjoin(_measurements, m.result_id == _results.c.id))


def _result_row(result: CheckResult) -> dict[str, Any]:
    return {
        "dataset": result.dataset,
        "kind": result.kind.value,
        "check": result.check,
        "status": result.status.value,
        "rows": result.rows,
        "failed_rows": result.failed_rows,
        "duration_seconds": result.duration_seconds,
        "finished_at": result.finished_at,
        # Values JSON cannot hold (dates, decimals in a failure sample) are kept as text.
        "failures": json.dumps([dict(f) for f in result.failures], default=str),
        "details": None if result.details is None else json.dumps(result.details, default=str),
        "error": result.error,
        "note": result.note,
        "source": result.source,
    }


def _measurement_rows(result_id: int, result: CheckResult) -> list[dict[str, Any]]:
    return [
        {
            "result_id": result_id,
            "position": position,
            "dataset": result.dataset,
            "name": m.name,
            "labels": json.dumps([list(pair) for pair in m.labels]),
            "value": m.value,
            "measured_at": result.finished_at,
        }
        for position, m in enumerate(result.measurements)
    ]


def _latest_order(item: tuple[int, CheckResult]) -> tuple[str, str, str, datetime]:
    result = item[1]
    return (result.dataset, result.kind.value, result.check, result.finished_at)


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} is {value!r}, a naive datetime; pass an aware one, e.g. datetime.now(UTC)"
        )
    return value
