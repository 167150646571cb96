"""One run of one dataset: every check fused into one scan, turned into results.

The runner never raises: a dead source, a missing table or a check that throws
becomes ``error`` results with the reason, so the agent and the other datasets
go on. Statements per run: one fused aggregate query; one grouped statement
when uniqueness is asked for and no constraint proves it; one sample per
failing check; one sample shared by custom checks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from osemn._units import format_duration
from osemn.agent.state import StateStore
from osemn.checks._time import as_utc, bind_time
from osemn.checks.base import CompiledSchema, RowRule, UniqueRule
from osemn.checks.compile import compile_schema
from osemn.checks.custom import custom_failures, sample_statement
from osemn.checks.failures import failing_rows, mask_rows
from osemn.checks.freshness import freshness_name, freshness_result
from osemn.checks.fused import Aggregate, ScanOutcome, count_failing, fused_scan
from osemn.checks.schema_change import SCHEMA_CHANGE, column_types, schema_change_result
from osemn.checks.uniqueness import duplicates_sample, proven_by_constraint, unique_counts
from osemn.checks.volume import volume_name, volume_result
from osemn.config import DatasetConfig
from osemn.errors import CheckError, OsemnError, SourceUnavailableError, UnknownColumnError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.warehouse import TableInfo, Warehouse

__all__ = ["VALIDITY", "DatasetRunner"]

log = logging.getLogger(__name__)

VALIDITY = "validity"
_PLANNED = (CheckKind.FRESHNESS, CheckKind.VOLUME)
CUSTOM_SAMPLE_ROWS = 10_000


@dataclass
class _Run:
    """What one run accumulates before it becomes results."""

    now: datetime
    started: float
    where: ColumnElement[bool] | None = None
    statements: int = 0
    results: list[CheckResult] = field(default_factory=list)


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

    # -- public ---------------------------------------------------------------

    def run(self, *, full: bool = False) -> list[CheckResult]:
        """Run every check of the dataset once; ``full`` ignores the watermark."""
        run = _Run(now=self.clock(), started=time.perf_counter())
        try:
            self._run(run, full=full)
        except OsemnError as exc:
            return self._all_errors(run, str(exc))
        except Exception as exc:  # a bug must cost one run, never the agent
            log.exception("dataset %s: unexpected error", self.name)
            return self._all_errors(run, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.last_statements = run.statements
        return run.results

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

    def _execute(self, run: _Run, statement: sa.Executable) -> Sequence[sa.Row[Any]]:
        run.statements += 1
        return self.warehouse.execute(statement)

    def _elapsed(self, run: _Run) -> float:
        return time.perf_counter() - run.started

    def _run(self, run: _Run, *, full: bool) -> None:
        if not self.warehouse.available():
            raise SourceUnavailableError(
                f"source {self.warehouse.name!r} is down and in backoff; "
                "checks resume when it answers",
                source=self.warehouse.name,
            )
        info = self.warehouse.describe(self.config.table)
        table = info.table
        ts = self._timestamp_column(info)
        compiled = (
            compile_schema(self.schema, table, dialect=self.warehouse.engine.dialect)
            if self.schema is not None
            else None
        )
        proven: dict[str, str] = {}
        if compiled is not None:
            proven = _not_null_proofs(compiled, info)
            compiled = replace(
                compiled, row_rules=tuple(r for r in compiled.row_rules if r.name not in proven)
            )
        watermark = self.state.get_watermark(self.name) if ts is not None else None
        lower = None
        if ts is not None and self.config.incremental and not full and watermark is not None:
            lower = watermark - self.config.lateness
        volume_lower = None
        if (
            ts is not None
            and self.config.volume is not None
            and self.config.volume.window is not None
        ):
            volume_lower = run.now - self.config.volume.window
            if lower is not None:
                lower = min(lower, volume_lower)
        if lower is not None and ts is not None:
            run.where = ts >= bind_time(lower, ts)

        aggregates = self._aggregates(table, compiled, ts, volume_lower)
        outcome = fused_scan(
            lambda stmt: self._execute(run, stmt),
            table,
            aggregates,
            where=run.where,
            composite=frozenset({"invalid"}),
        )
        if "rows" in outcome.errors:
            raise CheckError(outcome.errors["rows"])
        rows = int(outcome.values["rows"])
        outcome = self._repair_validity(run, table, compiled, outcome)

        if compiled is not None:
            for name, proof in proven.items():
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.SCHEMA,
                        check=name,
                        status=Status.PASS,
                        rows=rows,
                        failed_rows=0,
                        note=proof,
                    )
                )
            self._schema_results(run, info, compiled, outcome, rows)
        elif self.schema_error is not None:
            run.results.append(
                self._result(
                    run,
                    kind=CheckKind.SCHEMA,
                    check=VALIDITY,
                    status=Status.ERROR,
                    error=self.schema_error,
                )
            )
        newest = as_utc(outcome.values.get("newest")) if ts is not None else None
        if watermark is not None and (newest is None or watermark > newest):
            newest = watermark
        self._freshness_volume_results(run, outcome, newest)
        self._schema_change_result(run, info)
        if ts is not None and newest is not None and "newest" not in outcome.errors:
            self.state.set_watermark(self.name, newest)

    def _timestamp_column(self, info: TableInfo) -> sa.Column[Any] | None:
        name = self.config.timestamp
        if name is None:
            return None
        if name not in info.table.c:
            raise UnknownColumnError(
                source=self.warehouse.name,
                table=self.config.table,
                column=name,
                available=[c.name for c in info.table.columns],
            )
        return info.table.c[name]

    def _aggregates(
        self,
        table: sa.Table,
        compiled: CompiledSchema | None,
        ts: sa.Column[Any] | None,
        volume_lower: datetime | None,
    ) -> list[Aggregate]:
        aggs = [Aggregate(key="rows", expr=sa.func.count())]
        if compiled is not None:
            aggs += [Aggregate(key=r.name, expr=count_failing(r.fails)) for r in compiled.row_rules]
            for rule in compiled.aggregate_rules:
                aggs += [
                    Aggregate(key=f"{rule.name}#{i}", expr=e) for i, e in enumerate(rule.aggregates)
                ]
            aggs += [
                Aggregate(key=f"nonnull:{name}", expr=sa.func.count(table.c[name]))
                for name in compiled.columns
            ]
            if compiled.row_rules:
                aggs.append(Aggregate(key="invalid", expr=_any_fails(compiled.row_rules)))
        if ts is not None:
            aggs.append(Aggregate(key="newest", expr=sa.func.max(ts)))
        if self.config.volume is not None:
            if volume_lower is not None and ts is not None:
                expr = count_failing(ts >= bind_time(volume_lower, ts))
            else:
                expr = sa.func.count()
            aggs.append(Aggregate(key="volume", expr=expr))
        return aggs

    def _repair_validity(
        self, run: _Run, table: sa.Table, compiled: CompiledSchema | None, outcome: ScanOutcome
    ) -> ScanOutcome:
        """Recount invalid rows without the rules that errored (one more statement).

        The "any rule fails" aggregate contains every rule, so one bad
        expression breaks it too; the valid rules still deserve a validity ratio.
        """
        if compiled is None or "invalid" not in outcome.errors:
            return outcome
        good = [r for r in compiled.row_rules if r.name not in outcome.errors]
        if not good:
            return outcome
        again = fused_scan(
            lambda stmt: self._execute(run, stmt),
            table,
            [Aggregate(key="invalid", expr=_any_fails(good))],
            where=run.where,
        )
        errors = {k: v for k, v in outcome.errors.items() if k != "invalid"}
        errors.update(again.errors)
        return ScanOutcome(
            values={**outcome.values, **again.values},
            errors=errors,
            statements=outcome.statements + again.statements,
        )

    # -- results ----------------------------------------------------------------

    def _result(self, run: _Run, **fields: Any) -> CheckResult:
        return CheckResult(
            dataset=self.name,
            finished_at=run.now,
            duration_seconds=self._elapsed(run),
            source=self.warehouse.name,
            **fields,
        )

    def _schema_results(
        self, run: _Run, info: TableInfo, compiled: CompiledSchema, outcome: ScanOutcome, rows: int
    ) -> None:
        table = info.table
        kind = CheckKind.SCHEMA
        for static in compiled.static:
            run.results.append(
                self._result(
                    run,
                    kind=kind,
                    check=static.name,
                    status=Status.PASS if static.passed else Status.FAIL,
                    failed_rows=None if static.passed else 0,
                    note=static.detail,
                )
            )
        for rule in compiled.row_rules:
            if rule.name in outcome.errors:
                run.results.append(
                    self._result(
                        run,
                        kind=kind,
                        check=rule.name,
                        status=Status.ERROR,
                        rows=rows,
                        error=outcome.errors[rule.name],
                    )
                )
                continue
            failed = int(outcome.values[rule.name])
            failures = self._sample(run, table, info, rule) if failed else ()
            run.results.append(
                self._result(
                    run,
                    kind=kind,
                    check=rule.name,
                    status=Status.FAIL if failed else Status.PASS,
                    rows=rows,
                    failed_rows=failed,
                    failures=failures,
                )
            )
        for agg_rule in compiled.aggregate_rules:
            keys = [f"{agg_rule.name}#{i}" for i in range(len(agg_rule.aggregates))]
            bad = [outcome.errors[k] for k in keys if k in outcome.errors]
            if bad:
                run.results.append(
                    self._result(
                        run,
                        kind=kind,
                        check=agg_rule.name,
                        status=Status.ERROR,
                        rows=rows,
                        error=bad[0],
                    )
                )
                continue
            try:
                passed = agg_rule.passes([outcome.values[k] for k in keys])
            except Exception as exc:
                run.results.append(
                    self._result(
                        run,
                        kind=kind,
                        check=agg_rule.name,
                        status=Status.ERROR,
                        rows=rows,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            run.results.append(
                self._result(
                    run,
                    kind=kind,
                    check=agg_rule.name,
                    status=Status.PASS if passed else Status.FAIL,
                    rows=rows,
                    failed_rows=0 if passed else 1,
                )
            )
        self._unique_results(run, info, compiled.unique_rules, rows)
        self._custom_results(run, table, compiled)
        run.results.append(self._validity_result(run, compiled, outcome, rows))

    def _validity_result(
        self, run: _Run, compiled: CompiledSchema, outcome: ScanOutcome, rows: int
    ) -> CheckResult:
        measurements = []
        for name in compiled.columns:
            key = f"nonnull:{name}"
            if key in outcome.values and rows:
                measurements.append(
                    Measurement(
                        name="completeness_ratio",
                        value=int(outcome.values[key]) / rows,
                        labels=(("column", name),),
                    )
                )
        invalid = outcome.values.get("invalid", 0) if compiled.row_rules else 0
        if "invalid" in outcome.errors:
            return self._result(
                run,
                kind=CheckKind.SCHEMA,
                check=VALIDITY,
                status=Status.ERROR,
                rows=rows,
                error=outcome.errors["invalid"],
                measurements=tuple(measurements),
            )
        invalid = int(invalid)
        if rows:
            measurements.insert(0, Measurement(name="validity_ratio", value=1 - invalid / rows))
        failed_any = any(r.status is Status.FAIL for r in run.results if r.kind is CheckKind.SCHEMA)
        return self._result(
            run,
            kind=CheckKind.SCHEMA,
            check=VALIDITY,
            status=Status.FAIL if failed_any or invalid else Status.PASS,
            rows=rows,
            failed_rows=invalid,
            measurements=tuple(measurements),
        )

    def _sample_columns(self, info: TableInfo, columns: Sequence[str | None]) -> list[str]:
        wanted = [*info.primary_key, *(c for c in columns if c), self.config.timestamp]
        out: list[str] = []
        for name in wanted:
            if name and name in info.table.c and name not in out:
                out.append(name)
        return out

    def _sample(
        self, run: _Run, table: sa.Table, info: TableInfo, rule: RowRule
    ) -> tuple[dict[str, object], ...]:
        limit = self.config.failures.sample
        if limit == 0:
            return ()
        stmt = failing_rows(
            table,
            rule.fails,
            self._sample_columns(info, [rule.column]),
            limit=limit,
            where=run.where,
        )
        try:
            rows = self._execute(run, stmt)
        except OsemnError as exc:  # the count stands; only the sample is lost
            log.warning("dataset %s: sample for %s failed: %s", self.name, rule.name, exc)
            return ()
        return mask_rows(
            (r._mapping for r in rows), mask=self.config.failures.mask, key=self.mask_key
        )

    def _unique_results(
        self, run: _Run, info: TableInfo, rules: Sequence[UniqueRule], rows: int
    ) -> None:
        table = info.table
        to_count: list[UniqueRule] = []
        for rule in rules:
            proof = proven_by_constraint(
                rule, table, primary_key=info.primary_key, unique_keys=info.unique_keys
            )
            if proof is None:
                to_count.append(rule)
            else:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.SCHEMA,
                        check=rule.name,
                        status=Status.PASS,
                        rows=rows,
                        failed_rows=0,
                        note=proof,
                    )
                )
        if not to_count:
            return
        try:
            counts = self._execute(run, unique_counts(table, to_count, window=run.where))[0]
        except OsemnError as exc:
            for rule in to_count:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.SCHEMA,
                        check=rule.name,
                        status=Status.ERROR,
                        rows=rows,
                        error=str(exc),
                    )
                )
            return
        for i, rule in enumerate(to_count):
            failed = int(counts[i] or 0)
            failures: tuple[dict[str, object], ...] = ()
            if failed and self.config.failures.sample:
                try:
                    sample = self._execute(
                        run,
                        duplicates_sample(
                            table, rule, limit=self.config.failures.sample, window=run.where
                        ),
                    )
                    failures = mask_rows(
                        (r._mapping for r in sample),
                        mask=self.config.failures.mask,
                        key=self.mask_key,
                    )
                except OsemnError as exc:
                    log.warning("dataset %s: sample for %s failed: %s", self.name, rule.name, exc)
            run.results.append(
                self._result(
                    run,
                    kind=CheckKind.SCHEMA,
                    check=rule.name,
                    status=Status.FAIL if failed else Status.PASS,
                    rows=rows,
                    failed_rows=failed,
                    failures=failures,
                )
            )

    def _custom_results(self, run: _Run, table: sa.Table, compiled: CompiledSchema) -> None:
        if not compiled.custom_rules:
            return
        try:
            sample = self._execute(
                run,
                sample_statement(
                    table, list(compiled.columns), limit=CUSTOM_SAMPLE_ROWS, where=run.where
                ),
            )
            frame = pd.DataFrame([tuple(r) for r in sample], columns=list(compiled.columns))
        except OsemnError as exc:
            for rule in compiled.custom_rules:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.SCHEMA,
                        check=rule.name,
                        status=Status.ERROR,
                        error=str(exc),
                    )
                )
            return
        note = f"sampled ({len(frame)} rows, checked by pandera)"
        for rule in compiled.custom_rules:
            try:
                failed = custom_failures(rule, frame)
            except Exception as exc:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.SCHEMA,
                        check=rule.name,
                        status=Status.ERROR,
                        rows=len(frame),
                        error=f"check raised {type(exc).__name__}: {exc}",
                        note=note,
                    )
                )
                continue
            run.results.append(
                self._result(
                    run,
                    kind=CheckKind.SCHEMA,
                    check=rule.name,
                    status=Status.FAIL if failed else Status.PASS,
                    rows=len(frame),
                    failed_rows=failed,
                    note=note,
                )
            )

    def _freshness_volume_results(
        self, run: _Run, outcome: ScanOutcome, newest: datetime | None
    ) -> None:
        cfg = self.config
        if cfg.freshness is not None and cfg.timestamp is not None:
            name = freshness_name(cfg.timestamp, cfg.freshness)
            if "newest" in outcome.errors:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.FRESHNESS,
                        check=name,
                        status=Status.ERROR,
                        error=outcome.errors["newest"],
                    )
                )
            else:
                result = freshness_result(
                    dataset=self.name,
                    timestamp=cfg.timestamp,
                    config=cfg.freshness,
                    newest=newest,
                    now=run.now,
                    duration=self._elapsed(run),
                )
                run.results.append(_with_source(result, self.warehouse.name))
        if cfg.volume is not None:
            if "volume" in outcome.errors:
                run.results.append(
                    self._result(
                        run,
                        kind=CheckKind.VOLUME,
                        check=volume_name(cfg.volume),
                        status=Status.ERROR,
                        error=outcome.errors["volume"],
                    )
                )
            else:
                result = volume_result(
                    dataset=self.name,
                    config=cfg.volume,
                    rows=int(outcome.values["volume"]),
                    now=run.now,
                    duration=self._elapsed(run),
                )
                run.results.append(_with_source(result, self.warehouse.name))

    def _schema_change_result(self, run: _Run, info: TableInfo) -> None:
        current = column_types(info.table, self.warehouse.engine.dialect)
        before = self.state.get_schema_snapshot(self.name)
        result = schema_change_result(
            dataset=self.name,
            before=before,
            now_columns=current,
            finished_at=run.now,
            duration=self._elapsed(run),
        )
        if before != current:
            self.state.put_schema_snapshot(self.name, current)
        run.results.append(_with_source(result, self.warehouse.name))

    def _all_errors(self, run: _Run, reason: str) -> list[CheckResult]:
        return [
            self._result(run, kind=kind, check=check, status=Status.ERROR, error=reason)
            for kind, check in self.expected_checks()
        ]


def _not_null_proofs(compiled: CompiledSchema, info: TableInfo) -> dict[str, str]:
    """``not_null`` rules the catalog already guarantees: primary-key or NOT NULL columns."""
    out = {}
    for rule in compiled.row_rules:
        if rule.column is None or rule.name != f"{rule.column}:not_null":
            continue
        if rule.column in info.primary_key:
            out[rule.name] = f"proven by constraint (primary key {', '.join(info.primary_key)})"
        elif rule.column in info.table.c and not info.table.c[rule.column].nullable:
            out[rule.name] = "proven by constraint (NOT NULL)"
    return out


def _any_fails(rules: Sequence[RowRule]) -> ColumnElement[Any]:
    return count_failing(sa.or_(*(r.fails for r in rules)))


def _with_source(result: CheckResult, source: str) -> CheckResult:
    return replace(result, source=source)
