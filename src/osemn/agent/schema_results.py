"""Turning a compiled pandera schema and the fused scan's counts into results.

Counts come from the one scan; what this adds costs statements only when
asked: one grouped statement for the uniqueness rules no constraint proves,
one statement sampling every failing row rule, one per duplicated key,
one bounded sample shared by custom checks.
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
from osemn.checks.failures import failing_rows, failing_rows_of, mask_rows
from osemn.checks.fused import Aggregate, Predicate, ScanOutcome
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
    "not_null_proofs",
    "schema_aggregates",
    "schema_predicates",
]

log = logging.getLogger(__name__)

VALIDITY = "validity"
INVALID = "invalid"  # scan key: rows breaking at least one row rule
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


def _not_null_rule(column: str) -> str:
    return f"{column}:not_null"


def schema_predicates(compiled: CompiledSchema) -> list[Predicate]:
    """The row rules, counted by the scan (and together, under :data:`INVALID`)."""
    return [Predicate(key=r.name, fails=r.fails) for r in compiled.row_rules]


def schema_aggregates(
    compiled: CompiledSchema, table: sa.Table, proven: Mapping[str, str]
) -> list[Aggregate]:
    """The schema's aggregates in the fused scan: aggregate rules and completeness.

    A column's non-null count is only scanned for when no ``not_null`` rule
    already counts its nulls and no constraint (NOT NULL, primary key) rules them out.
    """
    aggs = [
        Aggregate(key=f"{rule.name}#{i}", expr=e)
        for rule in compiled.aggregate_rules
        for i, e in enumerate(rule.aggregates)
    ]
    known = {r.name for r in compiled.row_rules} | set(proven)
    aggs += [
        Aggregate(key=f"nonnull:{name}", expr=sa.func.count(table.c[name]), combine="count")
        for name in compiled.columns
        if _not_null_rule(name) not in known and table.c[name].nullable
    ]
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
        counted = [r for r in self.compiled.row_rules if r.name not in outcome.errors]
        samples = self._samples([r for r in counted if int(outcome.values[r.name])])
        for rule in self.compiled.row_rules:
            if rule.name in outcome.errors:
                self.run.error(_KIND, rule.name, outcome.errors[rule.name], rows=rows)
                continue
            failed = int(outcome.values[rule.name])
            failures = samples.get(rule.name, ())
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
        if rule in self.proven or not self.info.table.c[column].nullable:
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

    def _masked(self, rows: Iterable[Mapping[Any, Any]]) -> tuple[dict[str, object], ...]:
        return mask_rows(rows, mask=self.failures.mask, key=self.mask_key)

    def _samples(self, rules: Sequence[RowRule]) -> dict[str, tuple[dict[str, object], ...]]:
        """Failing rows of every rule in one statement; one per rule if that one fails."""
        if self.failures.sample == 0 or not rules:
            return {}
        if len(rules) == 1:
            return {rules[0].name: self._sample(rules[0])}
        wanted = [self._sample_columns(r.column) for r in rules]
        columns = list(dict.fromkeys(c for cols in wanted for c in cols))
        stmt = failing_rows_of(
            self.info.table,
            [r.fails for r in rules],
            columns,
            limit=self.failures.sample,
            where=self.run.where,
        )
        try:
            found = self.run.execute(stmt)
        except OsemnError as exc:  # one rule's rows may be what fails: sample them apart
            log.info(
                "dataset %s: one failure sample failed, sampling apart: %s", self.run.dataset, exc
            )
            return {r.name: self._sample(r) for r in rules}
        position = {c: i for i, c in enumerate(columns)}
        by_rule: list[list[dict[str, object]]] = [[] for _ in rules]
        for row in found:
            index = int(row[-1])  # the rule's tag comes last, after ``columns``
            by_rule[index].append({c: row[position[c]] for c in wanted[index]})
        return {rule.name: self._masked(rows) for rule, rows in zip(rules, by_rule, strict=True)}

    def _sample(self, rule: RowRule) -> tuple[dict[str, object], ...]:
        stmt = failing_rows(
            self.info.table,
            rule.fails,
            self._sample_columns(rule.column),
            limit=self.failures.sample,
            where=self.run.where,
        )
        try:
            return self._masked(r._mapping for r in self.run.execute(stmt))
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
                    failures = self._masked(r._mapping for r in self.run.execute(stmt))
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
