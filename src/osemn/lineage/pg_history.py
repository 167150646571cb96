"""PostgreSQL query history: the statements that moved data, from ``pg_stat_statements``.

Views say how they are computed; tables filled by pipelines do not. When the
``pg_stat_statements`` extension is installed (it needs
``shared_preload_libraries = 'pg_stat_statements'`` and a server restart,
then ``CREATE EXTENSION pg_stat_statements``), the statements it keeps show
``INSERT ... SELECT``, ``CREATE TABLE ... AS``, ``MERGE`` and ``UPDATE ... FROM``
between tables. osemn's own statements (starting with ``/* osemn */``) are
left out: they only read.
See: https://www.postgresql.org/docs/current/pgstatstatements.html
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from osemn.sources._dialects import PREFIX

__all__ = ["History", "read_history"]

_pg_extension = sa.table("pg_extension", sa.column("extname", sa.String()))
_statements = sa.table(
    "pg_stat_statements", sa.column("query", sa.Text()), sa.column("calls", sa.BigInteger())
)
# The statement kinds that write a table from others; anything else cannot carry lineage.
_WRITES = ("insert", "merge", "update", "with")


@dataclass(frozen=True, kw_only=True)
class History:
    """Statement texts, or why there are none (``absent``)."""

    statements: tuple[str, ...]
    absent: str | None = None


def read_history(conn: sa.Connection, *, limit: int) -> History:
    """The ``limit`` most called data-moving statements other than osemn's own.

    Never raises for a missing or unloaded extension: that is ``absent``, and
    the scan goes on with views, foreign keys and dbt.
    """
    installed = conn.execute(
        sa.select(sa.literal(1)).where(_pg_extension.c.extname == "pg_stat_statements")
    ).first()
    if installed is None:
        return History(
            statements=(),
            absent="pg_stat_statements is not installed in this database; load it with "
            "shared_preload_libraries and run CREATE EXTENSION pg_stat_statements to see "
            "lineage of tables written by pipelines",
        )
    text = sa.func.lower(sa.func.ltrim(_statements.c.query))
    query = (
        sa.select(_statements.c.query)
        .where(
            sa.not_(sa.func.ltrim(_statements.c.query).startswith(PREFIX)),
            sa.or_(
                *(text.startswith(kind) for kind in _WRITES),
                # CREATE TABLE ... AS, not CREATE EXTENSION / INDEX / VIEW
                text.like("create %table%as%"),
            ),
        )
        .order_by(_statements.c.calls.desc())
        .limit(limit)
    )
    try:
        with conn.begin_nested():
            rows = conn.execute(query).all()
    except sa.exc.DBAPIError as exc:
        # 55000 (object_not_in_prerequisite_state): created but not preloaded. Anything
        # else (a timeout, a lost connection) is the source's error, not an absence.
        if getattr(exc.orig, "sqlstate", None) != "55000":
            raise
        reason = str(exc.orig).strip().splitlines()[0]
        return History(
            statements=(),
            absent=f"pg_stat_statements cannot be read ({reason}); add it to "
            "shared_preload_libraries and restart PostgreSQL",
        )
    return History(statements=tuple(str(r.query) for r in rows))
