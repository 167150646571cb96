"""The agent end to end: bad rows burn an SLO, alerts go out through the outbox.

Real parts: a DuckDB warehouse, a SQLite state store, a real Alertmanager
(Debian's) routing to HTTP receivers in the test, and a signed webhook.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from osemn.exporters.receivers import verify_signature
from osemn.rules.alerts import ALERT_BURN_RATE, fingerprint
from tests.agent.helpers import FrozenClock, load_orders, make_agent, order_rows, write_config
from tests.conftest import Warehouse
from tests.servers import HttpReceiver, Received, start_alertmanager

SECRET = "test-hook-secret"


def _config(tmp_path: Path, wh: Warehouse, alerting: str) -> Path:
    path = write_config(tmp_path, wh)
    path.write_text(
        path.read_text()
        + """
slos:
  - {name: orders-valid, dataset: orders, sli: validity, objective: 99%,
     runbook_url: "https://runbooks.example.com/orders-valid"}
"""
        + alerting
    )
    return path


def _wait_for(receiver: HttpReceiver, path: str, count: int, timeout: float = 20) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [r for r in receiver.received if r.path == path]
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{path}: {len(got)} notifications, expected {count}: {got}")


def _add_good_rows(wh: Warehouse, table: sa.Table, start: int, n: int, at: datetime) -> None:
    rows = [
        {
            "id": start + i,
            "customer_id": 1,
            "amount": 10.0,
            "status": "paid",
            "email": f"u{start + i}@x.io",
            "created_at": at.replace(tzinfo=None) - timedelta(seconds=i % 60),
        }
        for i in range(n)
    ]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(table), rows)


def test_page_reaches_alertmanager_and_inhibits_the_ticket(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    """Through a real Alertmanager: the page is delivered, the same SLO's tickets are
    inhibited by it and never delivered, and the resolve reaches the page receiver."""
    now = datetime.now(UTC)
    table = load_orders(duckdb_warehouse, order_rows(at=now))
    with HttpReceiver() as hooks:
        am_config = f"""
route:
  receiver: ticket
  group_by: [alertname, slo, severity]
  # Long enough for Alertmanager's inhibitor to have seen the page that came in the
  # same POST as the tickets (it learns of new alerts asynchronously).
  group_wait: 5s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - {{matchers: ['severity="page"'], receiver: page}}
    - {{matchers: ['severity="ticket"'], receiver: ticket}}
receivers:
  - {{name: page, webhook_configs: [{{url: "{hooks.url}/page", send_resolved: true}}]}}
  - {{name: ticket, webhook_configs: [{{url: "{hooks.url}/ticket", send_resolved: true}}]}}
inhibit_rules:
  - {{source_matchers: ['severity="page"'], target_matchers: ['severity="ticket"'],
      equal: [slo]}}
"""
        with start_alertmanager(tmp_path / "am", am_config) as am_url:
            path = _config(
                tmp_path,
                duckdb_warehouse,
                f"""
alerting:
  receivers:
    am: {{type: alertmanager, url: "{am_url}", resend_interval: 1m}}
""",
            )
            clock = FrozenClock(now)
            agent = make_agent(path, clock, wh=duckdb_warehouse)
            try:
                agent.run_once()  # 7 of 10 rows invalid: burn 70x on every window
                alerts = agent.evaluate_slos()
                firing = {
                    (a.name, a.labels.get("burnrate_tier")) for a in alerts if a.status == "firing"
                }
                assert firing == {
                    (ALERT_BURN_RATE, "1h-5m"),
                    (ALERT_BURN_RATE, "6h-30m"),
                    (ALERT_BURN_RATE, "1d-2h"),
                    (ALERT_BURN_RATE, "3d-6h"),
                    ("OsemnErrorBudgetExhausted", None),
                }
                assert agent.outbox is not None
                assert agent.outbox.deliver_due() == 1

                page = _wait_for(hooks, "/page", 1)
                doc = page[0].json()
                assert doc["status"] == "firing"
                assert doc["commonLabels"]["slo"] == "orders-valid"
                assert sorted(a["labels"]["burnrate_tier"] for a in doc["alerts"]) == [
                    "1h-5m",
                    "6h-30m",
                ]
                assert {a["fingerprint"] for a in doc["alerts"]} == {
                    fingerprint(a.labels) for a in alerts if a.labels["severity"] == "page"
                }
                assert doc["alerts"][0]["annotations"]["runbook_url"].endswith("orders-valid")
                in_am = httpx.get(f"{am_url}/api/v2/alerts").json()
                inhibited = {
                    a["labels"].get("burnrate_tier", a["labels"]["alertname"])
                    for a in in_am
                    if a["status"]["inhibitedBy"]
                }
                assert inhibited == {"1d-2h", "3d-6h", "OsemnErrorBudgetExhausted"}

                # Ten thousand good rows: every window falls under its threshold. The
                # clock stays real: Alertmanager resolves an alert at its endsAt.
                clock.now = datetime.now(UTC)
                _add_good_rows(duckdb_warehouse, table, 1000, 10_000, clock.now)
                agent.run_once()
                alerts = agent.evaluate_slos()
                assert {a.status for a in alerts} == {"resolved"}
                assert agent.outbox.deliver_due() == 1
                resolved = _wait_for(hooks, "/page", 2)[-1].json()
                assert resolved["status"] == "resolved"
                assert len(resolved["alerts"]) == 2
                time.sleep(2.5)  # two of Alertmanager's group intervals
                assert [r for r in hooks.received if r.path == "/ticket"] == []
            finally:
                agent.close()


def test_signed_webhook_after_group_wait(tmp_path: Path, duckdb_warehouse: Warehouse) -> None:
    now = datetime.now(UTC)
    load_orders(duckdb_warehouse, order_rows(at=now))
    with HttpReceiver() as hook:
        path = _config(
            tmp_path,
            duckdb_warehouse,
            f"""
alerting:
  external_url: http://osemn.example.com/
  receivers:
    hook: {{type: webhook, url: "{hook.url}/hook", secret: {SECRET}}}
  routes:
    - {{receiver: hook, match: {{severity: page}}, group_wait: 30s, group_by: [slo]}}
""",
        )
        clock = FrozenClock(now)
        agent = make_agent(path, clock, wh=duckdb_warehouse)
        try:
            agent.run_once()
            agent.evaluate_slos()
            assert agent.outbox is not None
            assert agent.outbox.deliver_due() == 0  # waiting for group_wait
            clock.advance(timedelta(seconds=30))
            assert agent.flush_alerts() == 1
            assert agent.outbox.deliver_due() == 1
            [request] = _wait_for(hook, "/hook", 1)
            assert verify_signature(request.body, request.headers["x-osemn-signature"], SECRET)
            assert not verify_signature(request.body, request.headers["x-osemn-signature"], "x")
            doc = json.loads(request.body)
            assert doc["version"] == "4"
            assert doc["groupLabels"] == {"slo": "orders-valid"}
            assert doc["externalURL"] == "http://osemn.example.com/"
            assert {a["labels"]["severity"] for a in doc["alerts"]} == {"page"}
            assert request.headers["idempotency-key"]
            # Metrics: the SLI events, burn rates and the delivery are exported. Exactly
            # one run's 7 bad events before start(), which runs the dataset again at once.
            before = generate_latest(agent.registry).decode()
            assert 'osemn_sli_events_total{outcome="bad",slo="orders-valid"} 7.0' in before
            body = httpx.get(f"http://127.0.0.1:{_serve(agent)}/metrics").text
            # start() also runs the dataset at once: each run adds 7 bad events.
            bad = re.search(
                r'osemn_sli_events_total\{outcome="bad",slo="orders-valid"\} (\S+)', body
            )
            assert bad is not None and float(bad[1]) in (7.0, 14.0)
            assert 'osemn_alerts_firing{alertname="OsemnSLOBurnRate",severity="page"} 2.0' in body
            assert 'osemn_notifications_total{receiver="hook",status="sent"} 1.0' in body
            assert 'osemn_outbox_pending{receiver="hook"} 0.0' in body
            slos = httpx.get(f"http://127.0.0.1:{agent.port}/api/v1/slos").json()
            assert slos["slos"][0]["burn_rates"]["1h"] == pytest.approx(70.0)
        finally:
            agent.stop(timeout=5)
            agent.close()


def _serve(agent: object) -> int:
    from osemn.agent.agent import Agent

    assert isinstance(agent, Agent)
    agent.start(serve=True)
    assert agent.port is not None
    return agent.port


def test_a_three_level_incident_is_one_notification(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    """orders -> v_orders -> v_orders2 all break on the same bad rows: through a real
    Alertmanager with the inhibit rule ``osemn rules`` emits, the receiver gets one
    notification (the root's), then its resolve; the two views' alerts are held."""
    import yaml

    from osemn.config import parse_config
    from osemn.rules.prometheus import alertmanager_config

    now = datetime.now(UTC)
    table = load_orders(duckdb_warehouse, order_rows(at=now))
    with duckdb_warehouse.engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW v_orders AS SELECT * FROM orders WHERE id > 0"))
        conn.execute(sa.text("CREATE VIEW v_orders2 AS SELECT * FROM v_orders"))
    views = "".join(
        f"""
  {name}:
    source: wh
    table: {name}
    timestamp: created_at
    schema: orders.yaml
"""
        for name in ("v_orders", "v_orders2")
    )
    with HttpReceiver() as hooks:
        path = write_config(tmp_path, duckdb_warehouse)
        slos = "".join(
            f"  - {{name: {d.replace('_', '-')}-valid, dataset: {d}, sli: validity, "
            "objective: 99%}\n"
            for d in ("orders", "v_orders", "v_orders2")
        )
        base = path.read_text() + views + "slos:\n" + slos + "lineage: {}\n"
        inhibit = alertmanager_config(parse_config(base, path=str(path)))["inhibit_rules"]
        assert {
            "equal": ["incident_root"],
            "source_matchers": ['dq_role="root_cause"'],
            "target_matchers": ['dq_role="downstream_symptom"'],
        } in inhibit
        am_config = f"""
route:
  receiver: hook
  group_by: [incident_root]
  group_wait: 2s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - {{name: hook, webhook_configs: [{{url: "{hooks.url}/hook", send_resolved: true}}]}}
{yaml.safe_dump({"inhibit_rules": inhibit})}
"""
        with start_alertmanager(tmp_path / "am", am_config) as am_url:
            path.write_text(
                base
                + f"""
alerting:
  receivers:
    am: {{type: alertmanager, url: "{am_url}", resend_interval: 1m}}
"""
            )
            clock = FrozenClock(now)
            agent = make_agent(path, clock, wh=duckdb_warehouse)
            try:
                graph = agent.scan_lineage()
                assert graph.incident_roots(["v_orders2", "v_orders", "orders"]) == {
                    "v_orders2": "orders",
                    "v_orders": "orders",
                    "orders": "orders",
                }
                agent.run_once()  # 7 of 10 rows invalid in all three
                alerts = agent.evaluate_slos()
                firing = [a for a in alerts if a.status == "firing"]
                assert {a.labels["dataset"] for a in firing} == {"orders", "v_orders", "v_orders2"}
                assert {a.labels["incident_root"] for a in firing} == {"orders"}
                roles = {(a.labels["dataset"], a.labels["dq_role"]) for a in firing}
                assert roles == {
                    ("orders", "root_cause"),
                    ("v_orders", "downstream_symptom"),
                    ("v_orders2", "downstream_symptom"),
                }
                assert agent.outbox is not None
                assert agent.outbox.deliver_due() == 1
                in_am = httpx.get(f"{am_url}/api/v2/alerts").json()
                assert {a["labels"]["dataset"] for a in in_am} == {"orders"}

                [note] = _wait_for(hooks, "/hook", 1)
                doc = note.json()
                assert doc["status"] == "firing"
                assert doc["groupLabels"] == {"incident_root": "orders"}
                assert {a["labels"]["dataset"] for a in doc["alerts"]} == {"orders"}
                time.sleep(3)  # more than Alertmanager's group_wait and group_interval
                assert len([r for r in hooks.received if r.path == "/hook"]) == 1

                # The root is fixed: everything resolves; only the root's resolve is sent.
                clock.now = datetime.now(UTC)
                _add_good_rows(duckdb_warehouse, table, 1000, 10_000, clock.now)
                agent.run_once()
                alerts = agent.evaluate_slos()
                assert {a.status for a in alerts} == {"resolved"}
                assert agent.outbox.deliver_due() == 1
                resolved = _wait_for(hooks, "/hook", 2)[-1].json()
                assert resolved["status"] == "resolved"
                assert {a["labels"]["dataset"] for a in resolved["alerts"]} == {"orders"}
            finally:
                agent.close()
