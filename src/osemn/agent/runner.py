"""One run of one dataset: every check fused into one scan, turned into results.

The runner never raises: a dead source, a missing table or a check that throws
becomes ``error`` results with the reason, so the agent and the other datasets
go on. Statements per run: one fused aggregate query; on a full scan,
``max(timestamp)`` apart where statistics or an index answer it without reading
every row; one grouped statement when uniqueness is asked for and no constraint
proves it; one sample of every failing row rule and one per duplicated key; one
sample shared by custom checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from osemn._drift_config import DRIFT_SHARE, drift_name
from osemn._units import format_duration
from osemn.agent._run import RunContext
from osemn.agent.schema_results import (
    INVALID,
    VALIDITY,
    SchemaResults,
    not_null_proofs,
    schema_aggregates,
    schema_predicates,
)
from osemn.agent.state import StateStore
from osemn.checks._time import as_utc, bind_time
from osemn.checks.base import CompiledSchema
from osemn.checks.freshness import freshness_name, freshness_result
from osemn.checks.fused import Aggregate, Predicate, ScanOutcome, count_where, fused_scan
from osemn.checks.schema_change import SCHEMA_CHANGE, column_types, schema_change_result
from osemn.checks.uniqueness import proven_by_constraint
from osemn.checks.volume import volume_name, volume_result
from osemn.config import DatasetConfig
from osemn.errors import CheckError, OsemnError, SourceUnavailableError
from osemn.results import CheckKind, CheckResult
from osemn.sources.warehouse import TableInfo, Warehouse, require_columns

__all__ = ["DatasetRunner"]

log = logging.getLogger(__name__)

_PLANNED = (CheckKind.FRESHNESS, CheckKind.VOLUME, CheckKind.DRIFT)
# Planners that read max(column) off the end of a b-tree index instead of scanning.
_INDEX_MAX = frozenset({"postgresql", "mysql", "mariadb", "sqlite"})


class DatasetRunner:
    """Runs the checks of one dataset against its warehouse, recording state."""

    def __init__(
        self,
        *,
        name: str,
        config: DatasetConfig,
        warehouse: Warehouse,
        state: StateStore,
        schema: Any | None,
        schema_error: str | None = None,
        clock: Callable[[], datetime],
        mask_key: bytes,
    ) -> None:
        self.name = name
        self.config = config
        self.warehouse = warehouse
        self.state = state
        self.schema = schema
        self.schema_error = schema_error
        self.clock = clock
        self.mask_key = mask_key
        self.last_statements = 0
        # The schema compiled for the last TableInfo: the warehouse hands the same
        # one back while the catalog is unchanged.
        self._compiled: tuple[TableInfo, CompiledSchema | None, dict[str, str]] | None = None
        # Row rules with failing rows in the last scan: with at most one, the next
        # scan expects healthy data and counts "any" only if it must (fused_scan).
        self._failing_rules: int | None = None

    # -- public ---------------------------------------------------------------

    def run(self, *, full: bool = False) -> list[CheckResult]:
        """Run every check of the dataset once; ``full`` ignores the watermark."""
        run = RunContext(
            dataset=self.name,
            source=self.warehouse.name,
            now=self.clock(),
            send=self.warehouse.execute,
        )
        try:
            self._run(run, full=full)
        except OsemnError as exc:
            return self._all_errors(run, str(exc))
        except Exception as exc:  # a bug must cost one run, never the agent
            log.exception("dataset %s: unexpected error", self.name)
            return self._all_errors(run, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.last_statements = run.statements
        return run.finish(self.clock())

    def expected_checks(self) -> list[tuple[CheckKind, str]]:
        """The checks a run reports even when it cannot start (for error results)."""
        out: list[tuple[CheckKind, str]] = []
        if self.schema is not None or self.schema_error is not None:
            out.append((CheckKind.SCHEMA, VALIDITY))
        if self.config.freshness is not None and self.config.timestamp is not None:
            out.append(
                (CheckKind.FRESHNESS, freshness_name(self.config.timestamp, self.config.freshness))
            )
        if self.config.volume is not None:
            out.append((CheckKind.VOLUME, volume_name(self.config.volume)))
        out.append((CheckKind.SCHEMA_CHANGE, SCHEMA_CHANGE))
        if self.config.drift is not None:
            out += [(CheckKind.DRIFT, drift_name(c)) for c in self.config.drift.columns]
            out.append((CheckKind.DRIFT, DRIFT_SHARE))
        return out

    def describe_plan(self) -> list[str]:
        """What a run would do, for ``osemn validate``; problems start with ``ERROR``."""
        cfg = self.config
        lines = [f"{cfg.schedule}, source {self.warehouse.name}, table {cfg.table}"]
        if self.schema_error is not None:
            lines.append(f"ERROR schema: {self.schema_error}")
        try:
            info = self.warehouse.describe(cfg.table)
            ts = self._timestamp_column(info)
        except OsemnError as exc:
            return [*lines, f"ERROR {exc}"]
        kind = "view" if info.is_view else "table"
        lines[0] += f" ({kind}, {len(info.table.columns)} columns)"
        if ts is not None and cfg.incremental:
            lines.append(
                f"incremental on {cfg.timestamp} (lateness {format_duration(cfg.lateness)})"
            )
        if self.schema is not None:
            from osemn.checks.compile import compile_schema

            compiled = compile_schema(
                self.schema, info.table, dialect=self.warehouse.engine.dialect
            )
            fused = len(compiled.row_rules) + len(compiled.aggregate_rules)
            lines.append(f"schema {cfg.schema_ref}: {fused} rules fused in one scan")
            for rule in compiled.unique_rules:
                proof = proven_by_constraint(
                    rule, info.table, primary_key=info.primary_key, unique_keys=info.unique_keys
                )
                lines.append(f"{rule.name}: {proof or 'one grouped statement'}")
            lines += [f"{r.name}: sampled, checked by pandera" for r in compiled.custom_rules]
            lines += [f"ERROR {s.name}: {s.detail}" for s in compiled.static if not s.passed]
        lines += [check for kind_, check in self.expected_checks() if kind_ in _PLANNED]
        return lines

    # -- the run --------------------------------------------------------------

    def _run(self, run: RunContext, *, full: bool) -> None:
        if not self.warehouse.available():
            raise SourceUnavailableError(
                f"source {self.warehouse.name!r} is down and in backoff; "
                "checks resume when it answers",
                source=self.warehouse.name,
            )
        info = self.warehouse.describe(self.config.table)
        table = info.table
        ts = self._timestamp_column(info)
        compiled, proven = self._compile(info)
        watermark = self.state.get_watermark(self.name) if ts is not None else None
        volume_lower = self._volume_lower(run.now) if ts is not None else None
        if ts is not None:
            lower = None
            if self.config.incremental and not full and watermark is not None:
                lower = watermark - self.config.lateness
                if volume_lower is not None:
                    lower = min(lower, volume_lower)
            if lower is not None:
                run.where = ts >= bind_time(lower, ts)

        if compiled is None and self.config.freshness is None and self.config.volume is None:
            # Nothing the scan counts would be reported: schema change reads the
            # catalog and drift reads its own windows, so no table scan at all.
            if self.schema_error is not None:
                run.error(CheckKind.SCHEMA, VALIDITY, self.schema_error)
            self._schema_change_result(run, info)
            if self.config.drift is not None and ts is not None:
                self._drift(run, info, ts)
            return

        dialect = self.warehouse.engine.dialect
        aggregates = [Aggregate(key="rows", expr=sa.func.count(), combine="count")]
        predicates: list[Predicate] = []
        if compiled is not None:
            aggregates += schema_aggregates(compiled, table, proven)
            predicates = schema_predicates(compiled)
        apart = ScanOutcome(values={}, errors={})
        if ts is not None and run.where is None and _cheap_max(info, ts, dialect.name):
            # Before the scan, so the watermark never passes a row the scan did not see.
            newest_only = [Aggregate(key="newest", expr=sa.func.max(ts))]
            apart = fused_scan(run.execute, table, newest_only, dialect=dialect)
        elif ts is not None:
            aggregates.append(Aggregate(key="newest", expr=sa.func.max(ts), combine="max"))
        if self.config.volume is not None:
            in_window = (
                count_where(ts >= bind_time(volume_lower, ts), dialect)
                if ts is not None and volume_lower is not None
                else sa.func.count()
            )
            aggregates.append(Aggregate(key="volume", expr=in_window, combine="count"))
        outcome = fused_scan(
            run.execute,
            table,
            aggregates,
            dialect=dialect,
            predicates=predicates,
            any_key=INVALID if compiled is not None else None,
            any_after=self._failing_rules is not None and self._failing_rules <= 1,
            where=run.where,
        )
        if not outcome.errors:
            self._failing_rules = sum(1 for p in predicates if outcome.values.get(p.key))
        if "rows" in outcome.errors:
            raise CheckError(outcome.errors["rows"])
        outcome = ScanOutcome(
            values={**outcome.values, **apart.values}, errors={**outcome.errors, **apart.errors}
        )
        rows = int(outcome.values["rows"])

        if compiled is not None:
            SchemaResults(
                run=run,
                info=info,
                compiled=compiled,
                failures=self.config.failures,
                mask_key=self.mask_key,
                timestamp=self.config.timestamp,
                dialect=self.warehouse.engine.dialect,
                proven=proven,
            ).report(outcome, rows)
        elif self.schema_error is not None:
            run.error(CheckKind.SCHEMA, VALIDITY, self.schema_error)
        newest = as_utc(outcome.values.get("newest")) if ts is not None else None
        if watermark is not None and (newest is None or watermark > newest):
            newest = watermark
        self._freshness_result(run, outcome, newest)
        self._volume_result(run, outcome)
        self._schema_change_result(run, info)
        if newest is not None and "newest" not in outcome.errors and newest != watermark:
            self.state.set_watermark(self.name, newest)
        if self.config.drift is not None and ts is not None:
            self._drift(run, info, ts)

    def _drift(self, run: RunContext, info: TableInfo, ts: sa.Column[Any]) -> None:
        """Drift has windows of its own, so its own statements; its errors stay its own."""
        from osemn.checks.drift import run_drift  # scipy loads only where drift is asked for

        drift = self.config.drift
        assert drift is not None
        done = len(run.results)
        try:
            run_drift(
                run=run,
                table=info.table,
                ts=ts,
                config=drift,
                state=self.state,
                dataset=self.name,
                dialect=self.warehouse.dialect_name,
            )
        except OsemnError as exc:
            del run.results[done:]
            for check in [*(drift_name(c) for c in drift.columns), DRIFT_SHARE]:
                run.error(CheckKind.DRIFT, check, str(exc))

    def _compile(self, info: TableInfo) -> tuple[CompiledSchema | None, dict[str, str]]:
        """The schema for this table, less the not-null rules the catalog proves."""
        if self.schema is None:
            return None, {}
        if self._compiled is not None and self._compiled[0] is info:
            return self._compiled[1], self._compiled[2]
        from osemn.checks.compile import compile_schema  # pandas loads only with a schema

        compiled = compile_schema(self.schema, info.table, dialect=self.warehouse.engine.dialect)
        proven = not_null_proofs(compiled, info)
        rules = tuple(r for r in compiled.row_rules if r.name not in proven)
        compiled = replace(compiled, row_rules=rules)
        self._compiled = (info, compiled, proven)
        return compiled, proven

    def _volume_lower(self, now: datetime) -> datetime | None:
        volume = self.config.volume
        if volume is None or volume.window is None:
            return None
        return now - volume.window

    def _timestamp_column(self, info: TableInfo) -> sa.Column[Any] | None:
        name = self.config.timestamp
        if name is None:
            return None
        require_columns(info, [name])
        return info.table.c[name]

    def _freshness_result(
        self, run: RunContext, outcome: ScanOutcome, newest: datetime | None
    ) -> None:
        cfg = self.config
        if cfg.freshness is None or cfg.timestamp is None:
            return
        if "newest" in outcome.errors:
            name = freshness_name(cfg.timestamp, cfg.freshness)
            run.error(CheckKind.FRESHNESS, name, outcome.errors["newest"])
            return
        run.keep(
            freshness_result(
                dataset=self.name,
                timestamp=cfg.timestamp,
                config=cfg.freshness,
                newest=newest,
                now=run.now,
            )
        )

    def _volume_result(self, run: RunContext, outcome: ScanOutcome) -> None:
        volume = self.config.volume
        if volume is None:
            return
        if "volume" in outcome.errors:
            run.error(CheckKind.VOLUME, volume_name(volume), outcome.errors["volume"])
            return
        run.keep(
            volume_result(
                dataset=self.name,
                config=volume,
                rows=int(outcome.values["volume"]),
                now=run.now,
            )
        )

    def _schema_change_result(self, run: RunContext, info: TableInfo) -> None:
        current = column_types(info.table, self.warehouse.engine.dialect)
        before = self.state.get_schema_snapshot(self.name)
        run.keep(
            schema_change_result(
                dataset=self.name,
                before=before,
                now_columns=current,
                finished_at=run.now,
            )
        )
        if before != current:
            self.state.put_schema_snapshot(self.name, current)

    def _all_errors(self, run: RunContext, reason: str) -> list[CheckResult]:
        run.results.clear()
        for kind, check in self.expected_checks():
            run.error(kind, check, reason)
        return run.finish(self.clock())


def _cheap_max(info: TableInfo, ts: sa.Column[Any], dialect: str) -> bool:
    """Whether ``max(ts)`` over the whole table costs next to nothing on its own.

    DuckDB answers it from its row-group statistics; PostgreSQL, MySQL and SQLite
    from the end of a b-tree led by ``ts``. Inside the scan it reads every row.
    """
    if info.is_view:
        return False
    if dialect == "duckdb":
        return True
    if dialect not in _INDEX_MAX:
        return False
    leading = [list(index.columns)[:1] for index in info.table.indexes]
    leading.append(list(info.table.primary_key.columns)[:1])
    return any(first and first[0].name == ts.name for first in leading)
