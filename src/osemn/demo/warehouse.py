"""The demo's embedded warehouse: a DuckDB file with orders, customers, a view, and a
churn model's predictions and (late) labels.

DuckDB lets one process open a database file with one configuration only, so
the demo opens it once, read-write, and shares that engine between the
incident generator (the pipeline being watched) and the agent (which sends it
nothing but SELECTs). Event times are stored as naive UTC, the convention the
checks assume for columns without a zone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from osemn._units import format_duration

__all__ = [
    "CHECK_INTERVAL",
    "COUNTRIES",
    "DEMO_SCHEMA_DIR",
    "DRIFT_CURRENT_WINDOW",
    "DRIFT_MIN_ROWS",
    "FRESHNESS_MAX_AGE",
    "LABEL_LATE_SHARE",
    "MODEL_WINDOW",
    "STATUSES",
    "VOLUME_MIN_ROWS",
    "VOLUME_WINDOW",
    "create_demo_warehouse",
    "demo_config_text",
    "demo_tables",
    "label_delay",
    "model_tables",
    "order_amount",
    "order_status",
    "utc_naive",
]

DEMO_SCHEMA_DIR = Path(__file__).resolve().parent
"""Where ``orders.yaml`` and ``customers.yaml`` (pandera schemas) ship."""

CHECK_INTERVAL = timedelta(seconds=5)
# The feed writes every second, so 15s is a stall and not jitter; a short max_age
# keeps the stall (and so the one-minute demo) short.
FRESHNESS_MAX_AGE = timedelta(seconds=15)
VOLUME_WINDOW = timedelta(minutes=1)
VOLUME_MIN_ROWS = 20
# Drift compares the last 30s (about 75 orders at the live rate) with 12 to 24
# hours ago (about 1,500 seeded orders). That reference stays inside the seeded
# history for half a day, so live incidents never leak into it. min_rows 50 is
# met while the feed runs and missed soon after it stalls; on fewer rows a test
# sees only very large changes.
DRIFT_CURRENT_WINDOW = timedelta(seconds=30)
DRIFT_MIN_ROWS = 50
_DRIFT_REFERENCE = {"window": "12h", "offset": "12h"}
# At the live rate a per-run false alarm of the 5% default would show every few
# minutes; 1% keeps them rare and still flags the demo's shift within ~15s.
_DRIFT_FDR = 0.01

# The churn model: evaluated over the last 30s of predictions (about 75), every check
# interval. Most labels land at once, the rest up to a minute later, so the current
# window is never fully labelled and the windows before it fill up as labels land.
MODEL_WINDOW = timedelta(seconds=30)
LABEL_LATE_SHARE = 0.4
_LABEL_LATE_SECONDS = (10.0, 60.0)
_LATENCY_THRESHOLD = "250ms"

STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
COUNTRIES = ("US", "DE", "FR", "GB", "NL", "ES", "JP", "BR", "IN", "CA")

_STATUS_WEIGHTS = (10, 30, 25, 25, 6, 4)
_FIRST = ("ada", "alan", "grace", "edsger", "barbara", "ken", "margaret", "linus", "frances")
_LAST = ("lovelace", "turing", "hopper", "dijkstra", "liskov", "thompson", "hamilton", "torvalds")
_DOMAINS = ("example.com", "example.org", "mail.example.net")

_CUSTOMERS = 250
_HISTORY_ORDERS = 3000  # spread over the last 24 h
_WARM_SECONDS = 120  # the last minutes are seeded at the live rate, so volume windows pass
_SEED = 20260101


def demo_tables() -> tuple[sa.Table, sa.Table]:
    """The ``customers`` and ``orders`` tables as created in the demo warehouse."""
    metadata = sa.MetaData()
    customers = sa.Table(
        "customers",
        metadata,
        sa.Column("customer_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String, nullable=False),
        sa.Column("country", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.BigInteger),
        sa.Column("amount", sa.Double),
        sa.Column("status", sa.String),
        sa.Column("email", sa.String),
        sa.Column("created_at", sa.DateTime),
    )
    return customers, orders


def model_tables() -> tuple[sa.Table, sa.Table]:
    """The ``predictions`` and ``labels`` tables of the demo's churn model."""
    metadata = sa.MetaData()
    predictions = sa.Table(
        "predictions",
        metadata,
        sa.Column("request_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("predicted_at", sa.DateTime, nullable=False),
        sa.Column("p_churn", sa.Double, nullable=False),
        sa.Column("predicted", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String, nullable=False),
        sa.Column("country", sa.String, nullable=False),
        sa.Column("latency_seconds", sa.Double, nullable=False),
    )
    labels = sa.Table(
        "labels",
        metadata,
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("churned", sa.Integer, nullable=False),
        sa.Column("labelled_at", sa.DateTime, nullable=False),
    )
    return predictions, labels


def label_delay(rng: random.Random) -> float:
    """Seconds until a prediction's label lands: 0 for most, up to a minute for the rest."""
    if rng.random() >= LABEL_LATE_SHARE:
        return 0.0
    return rng.uniform(*_LABEL_LATE_SECONDS)


def prediction_row(
    rng: random.Random, request_id: int, at: datetime, *, decayed: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One served prediction and its true outcome (labelled later).

    The score is a calibrated probability: the outcome is drawn from it. While
    ``decayed`` the world has moved on and the outcome is the opposite of what
    the model believes, so its accuracy collapses though its scores look as usual.
    """
    p = rng.betavariate(0.6, 1.8)
    outcome = int(rng.random() < p)
    if decayed:
        outcome = 1 - outcome
    prediction = {
        "request_id": request_id,
        "predicted_at": at,
        "p_churn": round(p, 6),
        "predicted": int(p >= 0.5),
        "model_version": "v2" if request_id % 4 else "v1",
        "country": rng.choice(COUNTRIES),
        "latency_seconds": round(min(rng.lognormvariate(-3.2, 0.6), 5.0), 4),
    }
    return prediction, {"request_id": request_id, "churned": outcome}


class _CreateOrReplaceView(ExecutableDDLElement):
    """``CREATE OR REPLACE VIEW name AS <select>`` (SQLAlchemy 2.0 has no CreateView)."""

    inherit_cache = False

    def __init__(self, name: str, select: sa.Select[Any]) -> None:
        self.name = name
        self.select = select


@compiles(_CreateOrReplaceView)
def _compile_view(element: _CreateOrReplaceView, compiler: DDLCompiler, **kw: Any) -> str:
    name = compiler.preparer.quote(element.name)
    body = compiler.sql_compiler.process(element.select, literal_binds=True)
    return f"CREATE OR REPLACE VIEW {name} AS {body}"


def utc_naive(value: datetime) -> datetime:
    """``value`` as the demo stores event times: naive UTC (a naive input is taken as UTC)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def create_demo_warehouse(path: Path, *, clock: Callable[[], datetime]) -> sa.Engine:
    """Create (or reset) the demo DuckDB file and seed a day of clean history.

    The demo tables are replaced if the file already has them; other tables are
    left alone. The caller owns the returned read-write engine and disposes it.

    Args:
        path: the DuckDB file; its folder is created if missing.
        clock: returns now; history ends at this instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(sa.URL.create("duckdb", database=str(path)))
    customers, orders = demo_tables()
    predictions, labels = model_tables()
    rng = random.Random(_SEED)
    now = utc_naive(clock())
    customer_rows = _customer_rows(rng, now)
    order_rows = _order_rows(rng, now, customer_rows)
    prediction_rows, label_rows = _model_rows(rng, now)
    with engine.begin() as conn:
        customers.metadata.drop_all(conn)
        customers.metadata.create_all(conn)
        predictions.metadata.drop_all(conn)
        predictions.metadata.create_all(conn)
        conn.execute(sa.insert(customers), customer_rows)
        conn.execute(sa.insert(orders), order_rows)
        conn.execute(sa.insert(predictions), prediction_rows)
        conn.execute(sa.insert(labels), label_rows)
        conn.execute(_CreateOrReplaceView("orders_enriched", _enriched_select(orders, customers)))
    return engine


def _enriched_select(orders: sa.Table, customers: sa.Table) -> sa.Select[Any]:
    o, c = orders.c, customers.c
    return sa.select(
        o.order_id,
        o.customer_id,
        o.amount,
        o.status,
        o.created_at,
        c.country,
        c.email.label("customer_email"),
        c.created_at.label("customer_since"),
    ).select_from(orders.join(customers, o.customer_id == c.customer_id))


def _customer_rows(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for customer_id in range(1, _CUSTOMERS + 1):
        email = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{customer_id}@{rng.choice(_DOMAINS)}"
        rows.append(
            {
                "customer_id": customer_id,
                "email": email,
                "country": rng.choice(COUNTRIES),
                "created_at": now - timedelta(days=2 + rng.random() * 363),
            }
        )
    return rows


def _order_rows(
    rng: random.Random, now: datetime, customers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    day = timedelta(days=1).total_seconds()
    history = sorted(rng.uniform(_WARM_SECONDS, day) for _ in range(_HISTORY_ORDERS))
    warm = [i * 0.4 for i in range(int(_WARM_SECONDS / 0.4))]  # 2.5 orders a second
    ages = sorted(history + warm, reverse=True)
    rows = []
    for order_id, age in enumerate(ages, start=1):
        customer = rng.choice(customers)
        rows.append(
            {
                "order_id": order_id,
                "customer_id": customer["customer_id"],
                "amount": order_amount(rng),
                "status": order_status(rng),
                "email": customer["email"],
                "created_at": now - timedelta(seconds=age),
            }
        )
    return rows


def _model_rows(
    rng: random.Random, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ten minutes of predictions at the live rate, with the labels landed by ``now``.

    Labels still due after ``now`` are dropped: the generator knows only its own.
    """
    predictions, labels = [], []
    seconds = 600
    for i, age in enumerate(x * 0.4 for x in range(int(seconds / 0.4))):
        at = now - timedelta(seconds=seconds - age)
        prediction, label = prediction_row(rng, i + 1, at)
        predictions.append(prediction)
        landed = at + timedelta(seconds=label_delay(rng))
        if landed <= now:
            labels.append({**label, "labelled_at": landed})
    return predictions, labels


def order_amount(rng: random.Random) -> float:
    """A plausible basket value: log-normal around 60, always within the schema's range."""
    return round(min(max(rng.lognormvariate(4.1, 0.8), 1.0), 5000.0), 2)


def order_status(rng: random.Random) -> str:
    """A status in the healthy mix (mostly paid, shipped or delivered).

    The seeded history and the live feed both draw from it, so drift compares
    like with like until an incident says otherwise.
    """
    return rng.choices(STATUSES, weights=_STATUS_WEIGHTS)[0]


# The demo's SLOs: its incidents (null burst, out-of-range amounts, stalled feed,
# distribution shift, accuracy decay) each burn one of them.
DEMO_SLOS: list[dict[str, Any]] = [
    # 99.9%: the first run checks a day of history, which a burst must outweigh.
    {"name": "orders-valid", "dataset": "orders", "sli": "validity", "objective": "99.9%"},
    {
        "name": "orders-complete",
        "dataset": "orders",
        "sli": "completeness",
        "objective": "99.9%",
        "columns": ["email"],  # the null burst empties it
    },
    {"name": "orders-fresh", "dataset": "orders", "sli": "freshness", "objective": "99%"},
    {"name": "orders-stable", "dataset": "orders", "sli": "drift", "objective": "95%"},
    # About 80% of healthy predictions are right; a decay drops that to about 20%.
    {"name": "churn-accurate", "model": "churn", "sli": "accuracy", "objective": "75%"},
]


def demo_config_text(
    warehouse_path: Path,
    state_url: str,
    listen: str,
    schema_dir: Path,
    *,
    alerts_path: Path | None = None,
    alertmanager: str | None = None,
    feature_repo: Path | None = None,
) -> str:
    """The osemn.yaml the demo runs, watching the demo warehouse (and its feature store).

    Args:
        warehouse_path: the DuckDB file made by ``create_demo_warehouse``.
        state_url: SQLAlchemy URL of the state store.
        listen: ``host:port`` of the agent's HTTP server.
        schema_dir: folder holding ``orders.yaml`` and ``customers.yaml``
            (``DEMO_SCHEMA_DIR`` for the ones shipped with osemn).
        alerts_path: where the file receiver appends notifications (JSON lines);
            None leaves alerting out.
        alertmanager: an Alertmanager URL that gets every alert too.
        feature_repo: the demo's Feast repo (``build_feature_repo``), watched as the
            source ``features``: its views checked and probed every check interval.
    """
    every = f"every {format_duration(CHECK_INTERVAL)}"
    freshness = {"max_age": format_duration(FRESHNESS_MAX_AGE)}
    volume = {"window": format_duration(VOLUME_WINDOW), "min_rows": VOLUME_MIN_ROWS}
    url = sa.URL.create("duckdb", database=str(warehouse_path)).render_as_string()
    sources: dict[str, Any] = {
        "warehouse": {"url": url, "max_concurrency": 2, "statement_timeout": "10s"}
    }
    if feature_repo is not None:
        # Every check interval, so that a stall past the views' 30s TTL is seen at once.
        sources["features"] = {
            "feast": str(feature_repo),
            "interval": format_duration(CHECK_INTERVAL),
            "probe": {"interval": format_duration(CHECK_INTERVAL)},
            "parity": {"sample": 50},
        }
    config = {
        "version": 1,
        "agent": {"state": state_url, "listen": listen},
        "sources": sources,
        "datasets": {
            "orders": {
                "source": "warehouse",
                "table": "main.orders",
                "timestamp": "created_at",
                "schedule": every,
                "schema": str(schema_dir / "orders.yaml"),
                "freshness": freshness,
                "volume": volume,
                "failures": {"sample": 3, "mask": ["email"]},
                # Short lateness: a burst of bad rows leaves the checked window soon
                # after it ends, so the demo shows recovery as well as the incident.
                "lateness": "10s",
                "drift": {
                    "columns": ["amount", "status"],
                    "reference": _DRIFT_REFERENCE,
                    "current": {"window": format_duration(DRIFT_CURRENT_WINDOW)},
                    "min_rows": DRIFT_MIN_ROWS,
                    "fdr": _DRIFT_FDR,
                },
            },
            "customers": {
                "source": "warehouse",
                "table": "main.customers",
                "schedule": "every 10s",
                "schema": str(schema_dir / "customers.yaml"),
                "failures": {"sample": 3, "mask": ["email"]},
            },
            "orders_enriched": {
                "source": "warehouse",
                "table": "main.orders_enriched",
                "timestamp": "created_at",
                "schedule": every,
                "freshness": freshness,
                "volume": volume,
                "lateness": "10s",
            },
            "predictions": {
                "source": "warehouse",
                "table": "main.predictions",
                "timestamp": "predicted_at",
                "schedule": every,
                "freshness": freshness,
            },
            "labels": {
                "source": "warehouse",
                "table": "main.labels",
                "timestamp": "labelled_at",
                "schedule": "every 10s",
            },
        },
        "models": {
            "churn": {
                "predictions": {
                    "dataset": "predictions",
                    "id": "request_id",
                    "score": "p_churn",
                    "prediction": "predicted",
                    "version": "model_version",
                    "latency": "latency_seconds",
                    "segments": ["country"],
                },
                "labels": {"dataset": "labels", "id": "request_id", "label": "churned"},
                "task": "binary",
                "window": format_duration(MODEL_WINDOW),
                "relabel_windows": 3,
                "schedule": every,
                "latency_threshold": _LATENCY_THRESHOLD,
                "top_k": 5,
                "min": {"accuracy": 0.6},
            },
        },
    }
    config["slos"] = DEMO_SLOS
    if alerts_path is not None:
        receivers: dict[str, Any] = {"file": {"type": "file", "path": str(alerts_path)}}
        # Demo-sized timers: a minute-long demo shows a page going out and resolving.
        timers = {"group_wait": "2s", "group_interval": "10s", "repeat_interval": "1h"}
        routes: list[dict[str, Any]] = [{"receiver": "file", "continue": True, **timers}]
        if alertmanager:
            receivers["alertmanager"] = {
                "type": "alertmanager",
                "url": alertmanager,
                "resend_interval": "10s",
            }
            routes.append({"receiver": "alertmanager"})
        config["alerting"] = {
            "evaluation_interval": format_duration(CHECK_INTERVAL),
            "receivers": receivers,
            "routes": routes,
        }
    header = "# osemn demo: an embedded DuckDB warehouse and Feast repo with live incidents.\n"
    return header + yaml.safe_dump(config, sort_keys=False)
