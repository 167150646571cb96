"""Turning a compiled pandera schema and the fused scan's counts into results.

Counts come from the one scan; what this adds costs statements only when
asked: one grouped statement for the uniqueness rules no constraint proves,
one sample per failing rule, one bounded sample shared by custom checks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from osemn.agent._run import RunContext
from osemn.checks.base import CompiledSchema, RowRule, UniqueRule
from osemn.checks.custom import custom_failures, sample_statement
from osemn.checks.failures import failing_rows, mask_rows
from osemn.checks.fused import Aggregate, ScanOutcome, count_failing
from osemn.checks.uniqueness import duplicates_sample, proven_by_constraint, unique_counts
from osemn.config import FailuresConfig
from osemn.errors import CheckError, OsemnError
from osemn.results import CheckKind, Measurement, Status
from osemn.sources.warehouse import TableInfo

__all__ = [
    "CUSTOM_SAMPLE_ROWS",
    "INVALID",
    "VALIDITY",
    "SchemaResults",
    "any_fails",
    "not_null_proofs",
    "schema_aggregates",
]

log = logging.getLogger(__name__)

VALIDITY = "validity"
INVALID = "invalid"  # aggregate key: rows breaking at least one row rule
CUSTOM_SAMPLE_ROWS = 10_000
_KIND = CheckKind.SCHEMA


def not_null_proofs(compiled: CompiledSchema, info: TableInfo) -> dict[str, str]:
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


def any_fails(rules: Sequence[RowRule]) -> sa.ColumnElement[Any]:
    """Rows breaking at least one of ``rules``: the numerator of the validity ratio."""
    return count_failing(sa.or_(*(r.fails for r in rules)))


def _not_null_rule(column: str) -> str:
    return f"{column}:not_null"


def schema_aggregates(
    compiled: CompiledSchema, table: sa.Table, proven: Mapping[str, str]
) -> list[Aggregate]:
    """The schema's share of the fused scan: failing counts, completeness, invalid rows.

    A column's non-null count is only scanned for when no ``not_null`` rule
    already counts its nulls and no constraint rules them out.
    """
    aggs = [Aggregate(key=r.name, expr=count_failing(r.fails)) for r in compiled.row_rules]
    for rule in compiled.aggregate_rules:
        aggs += [Aggregate(key=f"{rule.name}#{i}", expr=e) for i, e in enumerate(rule.aggregates)]
    known = {r.name for r in compiled.row_rules} | set(proven)
    aggs += [
        Aggregate(key=f"nonnull:{name}", expr=sa.func.count(table.c[name]))
        for name in compiled.columns
        if _not_null_rule(name) not in known
    ]
    if compiled.row_rules:
        aggs.append(Aggregate(key=INVALID, expr=any_fails(compiled.row_rules)))
    return aggs


@dataclass
class SchemaResults:
    """Reports every rule of one compiled schema into a run."""

    run: RunContext
    info: TableInfo
    compiled: CompiledSchema
    failures: FailuresConfig
    mask_key: bytes
    timestamp: str | None
    dialect: Dialect
    proven: Mapping[str, str]  # not_null rules the catalog proves, with the proof

    def report(self, outcome: ScanOutcome, rows: int) -> None:
        for name, proof in self.proven.items():
            self.run.counted(_KIND, name, failed=0, rows=rows, note=proof)
        for static in self.compiled.static:
            self.run.add(
                _KIND,
                static.name,
                Status.PASS if static.passed else Status.FAIL,
                failed_rows=None if static.passed else 0,
                note=static.detail,
            )
        for rule in self.compiled.row_rules:
            if rule.name in outcome.errors:
                self.run.error(_KIND, rule.name, outcome.errors[rule.name], rows=rows)
                continue
            failed = int(outcome.values[rule.name])
            failures = self._sample(rule) if failed else ()
            self.run.counted(_KIND, rule.name, failed=failed, rows=rows, failures=failures)
        self._aggregate_results(outcome, rows)
        self._unique_results(rows)
        self._custom_results()
        self._validity_result(outcome, rows)

    def _aggregate_results(self, outcome: ScanOutcome, rows: int) -> None:
        for rule in self.compiled.aggregate_rules:
            keys = [f"{rule.name}#{i}" for i in range(len(rule.aggregates))]
            bad = [outcome.errors[k] for k in keys if k in outcome.errors]
            if bad:
                self.run.error(_KIND, rule.name, bad[0], rows=rows)
                continue
            try:
                passed = rule.passes([outcome.values[k] for k in keys])
            except Exception as exc:  # a verdict on odd values must not sink the run
                self.run.error(_KIND, rule.name, f"{type(exc).__name__}: {exc}", rows=rows)
                continue
            self.run.counted(_KIND, rule.name, failed=0 if passed else 1, rows=rows)

    def _non_null(self, outcome: ScanOutcome, rows: int, column: str) -> int | None:
        """Non-null rows of ``column``: scanned, or rows less its ``not_null`` failures."""
        if f"nonnull:{column}" in outcome.values:
            return int(outcome.values[f"nonnull:{column}"])
        rule = _not_null_rule(column)
        if rule in self.proven:
            return rows
        if rule in outcome.values:
            return rows - int(outcome.values[rule])
        return None

    def _validity_result(self, outcome: ScanOutcome, rows: int) -> None:
        measurements = []
        for name in self.compiled.columns:
            non_null = self._non_null(outcome, rows, name)
            if non_null is not None and rows:
                measurements.append(
                    Measurement(
                        name="completeness_ratio",
                        value=non_null / rows,
                        labels=(("column", name),),
                    )
                )
        if INVALID in outcome.errors:
            self.run.error(
                _KIND,
                VALIDITY,
                outcome.errors[INVALID],
                rows=rows,
                measurements=tuple(measurements),
            )
            return
        invalid = int(outcome.values.get(INVALID, 0))
        if rows:
            measurements.insert(0, Measurement(name="validity_ratio", value=1 - invalid / rows))
        failed_any = any(r.status is Status.FAIL for r in self.run.results if r.kind is _KIND)
        self.run.add(
            _KIND,
            VALIDITY,
            Status.FAIL if failed_any or invalid else Status.PASS,
            rows=rows,
            failed_rows=invalid,
            measurements=tuple(measurements),
        )

    def _sample_columns(self, column: str | None) -> list[str]:
        """What a failing row shows: its key, the offending column, its event time."""
        wanted = [*self.info.primary_key, column, self.timestamp]
        return list(dict.fromkeys(c for c in wanted if c and c in self.info.table.c))

    def _masked(self, rows: Iterable[sa.Row[Any]]) -> tuple[dict[str, object], ...]:
        return mask_rows((r._mapping for r in rows), mask=self.failures.mask, key=self.mask_key)

    def _sample(self, rule: RowRule) -> tuple[dict[str, object], ...]:
        if self.failures.sample == 0:
            return ()
        stmt = failing_rows(
            self.info.table,
            rule.fails,
            self._sample_columns(rule.column),
            limit=self.failures.sample,
            where=self.run.where,
        )
        try:
            return self._masked(self.run.execute(stmt))
        except OsemnError as exc:  # the count stands; only the sample is lost
            log.warning("dataset %s: sample for %s failed: %s", self.run.dataset, rule.name, exc)
            return ()

    def _unique_results(self, rows: int) -> None:
        info = self.info
        to_count: list[UniqueRule] = []
        for rule in self.compiled.unique_rules:
            proof = proven_by_constraint(
                rule, info.table, primary_key=info.primary_key, unique_keys=info.unique_keys
            )
            if proof is None:
                to_count.append(rule)
            else:
                self.run.counted(_KIND, rule.name, failed=0, rows=rows, note=proof)
        if not to_count:
            return
        try:
            stmt = unique_counts(info.table, to_count, dialect=self.dialect, window=self.run.where)
            counts = self.run.execute(stmt)
        except OsemnError as exc:
            for rule in to_count:
                self.run.error(_KIND, rule.name, str(exc), rows=rows)
            return
        for rule, count in zip(to_count, counts[0], strict=True):
            failed = int(count or 0)
            failures: tuple[dict[str, object], ...] = ()
            if failed and self.failures.sample:
                stmt = duplicates_sample(
                    info.table,
                    rule,
                    dialect=self.dialect,
                    limit=self.failures.sample,
                    window=self.run.where,
                )
                try:
                    failures = self._masked(self.run.execute(stmt))
                except OsemnError as exc:
                    log.warning(
                        "dataset %s: sample for %s failed: %s", self.run.dataset, rule.name, exc
                    )
            self.run.counted(_KIND, rule.name, failed=failed, rows=rows, failures=failures)

    def _custom_results(self) -> None:
        rules = self.compiled.custom_rules
        if not rules:
            return
        columns = list(self.compiled.columns)
        stmt = sample_statement(
            self.info.table, columns, limit=CUSTOM_SAMPLE_ROWS, where=self.run.where
        )
        import pandas as pd  # only custom checks need a frame

        try:
            frame = pd.DataFrame([tuple(r) for r in self.run.execute(stmt)], columns=columns)
        except OsemnError as exc:
            for rule in rules:
                self.run.error(_KIND, rule.name, str(exc))
            return
        note = f"sampled ({len(frame)} rows, checked by pandera)"
        for rule in rules:
            try:
                failed = custom_failures(rule, frame)
            except CheckError as exc:  # the user's function raised: that check errors
                self.run.error(
                    _KIND,
                    rule.name,
                    str(exc),
                    rows=len(frame),
                    note=note,
                )
                continue
            self.run.counted(_KIND, rule.name, failed=failed, rows=len(frame), note=note)
