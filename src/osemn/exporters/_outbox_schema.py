"""The outbox table, defined on the state store's metadata so ``StateStore.open()`` creates it.

One row per delivery (a notification to one receiver target), kept after it
ends (``status`` other than ``pending``) for ``max_age`` so that enqueueing the
same notification again is a no-op, then pruned. The statements here are the
ones whose SQL needs care: insert-if-new, supersede, and the per-target order.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from osemn.agent._state_schema import _Id, _metadata, _UtcDateTime

__all__ = [
    "_PENDING",
    "DeliveryStatus",
    "_insert_new",
    "_older_pending",
    "_outbox",
    "_supersede",
]


class DeliveryStatus(enum.StrEnum):
    """What became of a delivery: the ``status`` of ``osemn_notifications_total``.

    ``retried`` counts failed attempts of a delivery that stays pending; the
    others are final states of an outbox row.
    """

    PENDING = "pending"
    SENT = "sent"
    RETRIED = "retried"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


_PENDING = DeliveryStatus.PENDING.value


_outbox = sa.Table(
    "osemn_outbox",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    # Sent as Idempotency-Key on every attempt; unique, so an enqueue repeated is a no-op.
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("receiver", sa.String(), nullable=False),
    sa.Column("receiver_type", sa.String(), nullable=False),  # of the config at enqueue
    sa.Column("target", sa.String(), nullable=False),  # "", an Alertmanager URL, a fingerprint
    sa.Column("group_key", sa.String(), nullable=False),
    sa.Column("notification", sa.Text(), nullable=False),  # Notification.to_json()
    sa.Column("status", sa.String(16), nullable=False),  # DeliveryStatus, never RETRIED
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("enqueued_at", _UtcDateTime(), nullable=False),  # max_age counts from here
    sa.Column("notified_at", _UtcDateTime(), nullable=False),  # Notification.created_at
    # Due time while pending; set ahead when an attempt starts, so a crash mid-send
    # (kill -9) makes the row due again once that attempt would have timed out.
    sa.Column("next_attempt_at", _UtcDateTime(), nullable=False),
    sa.Column("finished_at", _UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),  # scrubbed of secrets
    sa.UniqueConstraint("idempotency_key", name="osemn_outbox_idempotency_key"),
    sa.Index("osemn_outbox_due", "status", "next_attempt_at"),
    sa.Index("osemn_outbox_target", "receiver", "target", "status", "id"),
    sa.Index("osemn_outbox_finished", "finished_at"),
)


def _older_pending(*, due_after: datetime | None = None) -> sa.Exists:
    """An older pending delivery to the same target exists (one not due by ``due_after``)."""
    older = _outbox.alias("older")
    conditions = [
        older.c.receiver == _outbox.c.receiver,
        older.c.target == _outbox.c.target,
        older.c.status == _PENDING,
        older.c.id < _outbox.c.id,
    ]
    if due_after is not None:
        conditions.append(older.c.next_attempt_at > due_after)
    return sa.exists().where(*conditions)


def _insert_new(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose idempotency key is not in the outbox yet."""
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(_outbox).on_conflict_do_nothing(), rows)
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(_outbox).on_conflict_do_nothing(), rows)
    else:
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(_outbox).values(row))
            except sa.exc.IntegrityError:
                continue  # already enqueued


def _supersede(
    conn: sa.Connection, *, receiver: str, target: str, group_key: str, now: datetime
) -> int:
    """Mark all but the newest pending delivery of this group to this URL superseded."""
    c = _outbox.c
    pending = conn.execute(
        sa.select(c.id)
        .where(
            c.receiver == receiver,
            c.target == target,
            c.group_key == group_key,
            c.status == _PENDING,
        )
        .order_by(c.notified_at, c.id)
    ).scalars()
    older = list(pending)[:-1]
    if not older:
        return 0
    update = (
        sa.update(_outbox)
        .where(c.id.in_(older), c.status == _PENDING)
        .values(status=DeliveryStatus.SUPERSEDED.value, finished_at=now)
    )
    return int(conn.execute(update).rowcount)
