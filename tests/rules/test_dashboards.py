"""The generated Grafana dashboards: their structure, and every PromQL target run
against a real Prometheus scraping a real agent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from osemn._clock import utcnow
from osemn.agent.agent import Agent
from osemn.config import Config, parse_config
from osemn.demo.warehouse import DEMO_SCHEMA_DIR, demo_config_text
from osemn.errors import RuleError
from osemn.rules.dashboards import DASHBOARD_UIDS, build_dashboards, write_dashboards
from tests.agent.helpers import load_orders, make_agent, order_rows, write_config
from tests.conftest import Warehouse
from tests.prometheus_helpers import poll_query, running_prometheus
from tests.servers import free_port

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# What Grafana would put in for each variable: a multi-value selection becomes
# a regex group; the built-in intervals become durations.
VALUES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$dataset": "(orders)",
    "$slo": "(orders-fresh)",
    "$column": ".*",
    "$kind": ".*",
    "$source": ".*",
}

# Queries of events, not states: whether an alert fires (the agent's evaluator
# decides when) or a notification went out yet, so they may be empty.
MAY_BE_EMPTY = frozenset({"Firing alerts", "osemn alerts firing", "Notifications"})
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
REGENERATE = (
    'python -c "from pathlib import Path; from osemn.config import parse_config; '
    "from osemn.demo.warehouse import DEMO_SCHEMA_DIR, demo_config_text; "
    "from osemn.rules.dashboards import write_dashboards; write_dashboards(parse_config("
    "demo_config_text(Path('demo.duckdb'), 'sqlite:///state.db', '127.0.0.1:9108', "
    "DEMO_SCHEMA_DIR)), 'deploy/grafana')\""
)

DATASETS = """
  orders:
    source: wh
    table: {table}
    timestamp: created_at
    schedule: every 1s
    incremental: false
    schema: orders.yaml
    freshness: {{max_age: 15m}}
    volume: {{window: 1h, min_rows: 5}}
    drift:
      columns: [amount, status]
      reference: {{window: 1d, offset: 1h}}
      current: {{window: 1h}}
      min_rows: 5
"""
SLOS = """
slos:
  - {name: orders-fresh, dataset: orders, sli: freshness, objective: 99.5%, window: 28d}
  - {name: orders-valid, dataset: orders, sli: validity, objective: 0.9, window: 7d}
"""


def substitute(text: str) -> str:
    for name in sorted(VALUES, key=len, reverse=True):
        text = text.replace(name, VALUES[name])
    assert "$" not in text, f"a variable the test does not know: {text}"
    return text


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def targets(dashboards: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(panel or annotation title, expr) of every query of every dashboard."""
    out = []
    for model in dashboards.values():
        out += [(p["title"], t["expr"]) for p in panels(model) for t in p["targets"]]
        out += [(a["name"], a["expr"]) for a in model["annotations"]["list"]]
    return out


def query_variables(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in model["templating"]["list"] if v["type"] == "query"]


def config_text(tmp_path: Path, wh_url: str = "duckdb:///wh.duckdb") -> str:
    (tmp_path / "orders.yaml").write_text("")
    return f"""
version: 1
sources:
  wh: {{url: "{wh_url}"}}
datasets:{DATASETS.format(table="main.orders")}{SLOS}"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(config_text(tmp_path), path=str(tmp_path / "osemn.yaml"))


# --- structure ---------------------------------------------------------------


def test_three_dashboards_with_unique_uids(config: Config) -> None:
    dashboards = build_dashboards(config)
    assert {k: m["uid"] for k, m in dashboards.items()} == DASHBOARD_UIDS
    assert len({m["uid"] for m in dashboards.values()}) == 3
    assert len({m["title"] for m in dashboards.values()}) == 3
    for model in dashboards.values():
        assert model["tags"] == ["osemn"]
        assert model["links"][0]["type"] == "dashboards" and model["links"][0]["tags"] == ["osemn"]
        # The SDK reads back what it wrote: the JSON follows its Grafana schema.
        assert Dashboard.from_json(model).uid == model["uid"]


def test_every_panel_target_and_variable_uses_the_datasource_variable(config: Config) -> None:
    for model in build_dashboards(config).values():
        variables = model["templating"]["list"]
        assert variables[0] == {**variables[0], "type": "datasource", "name": "datasource"}
        assert variables[0]["query"] == "prometheus"
        for variable in query_variables(model):
            assert variable["datasource"] == DATASOURCE
            assert variable["query"].startswith("label_values(")
            assert variable["includeAll"] and variable["allValue"] == ".*"
        assert panels(model), model["uid"]
        for annotation in model["annotations"]["list"]:
            assert annotation["datasource"] == DATASOURCE
        for panel in panels(model):
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, panel["title"]
                assert re.findall(r"\bosemn_\w+|\bvector\(", target["expr"]), target["expr"]


def test_variables_in_expressions_are_defined(config: Config) -> None:
    for model in build_dashboards(config).values():
        defined = {v["name"] for v in model["templating"]["list"]}
        exprs = [expr for _, expr in targets({"": model})]
        exprs += [v["query"] for v in query_variables(model)]
        used = {name for e in exprs for name in re.findall(r"\$(\w+)", e)}
        assert used - defined <= {"__rate_interval"}, model["uid"]
        assert "recording" not in json.dumps(model) and "slo:" not in json.dumps(model)


def test_panel_ids_unique_and_grid_fits(config: Config) -> None:
    for model in build_dashboards(config).values():
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids
        for p in model["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]


def test_config_thresholds_are_written_in(config: Config) -> None:
    executive = build_dashboards(config)["executive"]
    rows = [p["title"] for p in executive["panels"] if p["type"] == "row"]
    assert rows == [
        "SLOs",
        "orders-fresh: freshness of orders, 99.5% over 28d",
        "orders-valid: validity of orders, 90% over 7d",
    ]
    by_title: dict[str, list[dict[str, Any]]] = {}
    for p in panels(executive):
        by_title.setdefault(p["title"], []).append(p)
    sli = by_title["SLI over 28d"][0]
    assert sli["fieldConfig"]["defaults"]["thresholds"]["steps"][1] == {
        "value": 0.995,
        "color": "green",
    }
    assert "[28d]" in sli["targets"][0]["expr"]
    assert 'slo="orders-fresh"' in sli["targets"][0]["expr"]
    line = by_title["SLI over 1h vs objective"][1]["targets"][1]
    assert (line["expr"], line["legendFormat"]) == ("vector(0.9)", "objective")
    # The 6h page tier of a 7d SLO pages at 5% of the budget in 6h: 0.05 * 28 = 1.4.
    burn = by_title["Burn rate by window"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert burn[-1] == {"value": 1.4, "color": "red"}
    oncall = {p["title"]: p for p in panels(build_dashboards(config)["oncall"])}
    share = oncall["Freshness, share of max_age"]["targets"][0]["expr"]
    assert share.endswith(" / 900")
    # every 1s checks: the run-rate window is its floor, 1m
    assert "Runs that failed or errored (1m)" in oncall


def test_without_slos_or_freshness(tmp_path: Path) -> None:
    text = """
version: 1
sources: {wh: {url: "duckdb:///wh.duckdb"}}
datasets:
  customers: {source: wh, table: customers, schedule: every 5m, volume: {min_rows: 1}}
"""
    dashboards = build_dashboards(parse_config(text))
    executive = dashboards["executive"]
    assert [p["title"] for p in executive["panels"] if p["type"] == "row"] == ["SLOs"]
    oncall = {p["title"] for p in panels(dashboards["oncall"])}
    assert "Stale datasets" not in oncall and "Freshness, share of max_age" not in oncall
    assert "Runs that failed or errored (10m)" in oncall


def test_write_dashboards(config: Config, tmp_path: Path) -> None:
    out = tmp_path / "grafana" / "dashboards"
    paths = write_dashboards(config, out)
    assert [p.name for p in paths] == [
        "osemn-executive.json",
        "osemn-oncall.json",
        "osemn-debug.json",
    ]
    assert json.loads(paths[0].read_text()) == build_dashboards(config)["executive"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RuleError, match=r"cannot write dashboards to .*file.*-o"):
        write_dashboards(config, blocker / "sub")


def test_deploy_examples_are_the_demo_dashboards() -> None:
    text = demo_config_text(
        Path("demo.duckdb"), "sqlite:///state.db", "127.0.0.1:9108", DEMO_SCHEMA_DIR
    )
    for key, model in build_dashboards(parse_config(text)).items():
        written = json.loads((DEPLOY / f"{DASHBOARD_UIDS[key]}.json").read_text())
        assert written == model, f"deploy/grafana is stale; regenerate it with: {REGENERATE}"


def test_the_sdk_is_imported_only_when_building() -> None:
    code = (
        "import sys, osemn.rules.dashboards; "
        "print(any(m.startswith('grafana_foundation_sdk') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# --- against a real Prometheus scraping a real agent -------------------------


@dataclass
class Scraped:
    prometheus: httpx.Client  # on Prometheus's base URL
    config: Config


def orders_with_history(now: datetime) -> list[dict[str, Any]]:
    """The ten orders of the last ten minutes, and 300 reference orders over the 20h before.

    Reference amounts are 500 higher: the current hour's amounts drifted.
    """
    rows = order_rows(1, at=now)
    for i in range(1, 31):
        batch = order_rows(1 + 10 * i, at=now - timedelta(hours=1, minutes=40 * i))
        for row in batch:
            row["email"] = f"r{row['id']}@x.io"
            if row["amount"] is not None:
                row["amount"] += 500
        rows += batch
    return rows


@pytest.fixture
def scraped(duckdb_warehouse: Warehouse, tmp_path: Path) -> Iterator[Scraped]:
    load_orders(duckdb_warehouse, orders_with_history(datetime.now(UTC)))
    agent_address = f"127.0.0.1:{free_port()}"
    path = write_config(
        tmp_path,
        duckdb_warehouse,
        datasets=DATASETS.format(table=duckdb_warehouse.qualified("orders")),
    )
    path.write_text(path.read_text().replace("127.0.0.1:0", agent_address) + SLOS)
    # Prometheus starts while the agent loads: its first scrapes fail, later ones land.
    with running_prometheus(tmp_path, agent_address) as base:
        agent: Agent | None = None
        try:
            agent = make_agent(path, utcnow, wh=duckdb_warehouse)
            agent.run_once()
            agent.start(serve=True)
            # Two scrapes: enough samples for every rate() and increase() window.
            poll_query(base, "count_over_time(osemn_source_up[1m]) >= 2", time.monotonic() + 20)
            with httpx.Client(base_url=base, timeout=10) as client:
                yield Scraped(client, agent.config)
        finally:
            if agent is not None:
                agent.stop(timeout=5)
                agent.close()


def instant(prometheus: httpx.Client, promql: str) -> dict[str, Any]:
    response = prometheus.post("/api/v1/query", data={"query": promql})
    body: dict[str, Any] = response.json()
    return body


def label_values(prometheus: httpx.Client, variable_query: str) -> dict[str, Any]:
    """What Grafana asks Prometheus for ``label_values(selector, label)``."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable_query)
    assert match, variable_query
    selector, label = match.groups()
    response = prometheus.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
    body: dict[str, Any] = response.json()
    return body


def test_every_expression_runs_on_prometheus_scraping_the_agent(scraped: Scraped) -> None:
    prometheus = scraped.prometheus
    names = instant(prometheus, 'count by (__name__) ({__name__=~"osemn_.+"})')["data"]["result"]
    exported = {r["metric"]["__name__"] for r in names}
    dashboards = build_dashboards(scraped.config)

    errors, empty, filled = [], [], set()
    for title, expr in targets(dashboards):
        body = instant(prometheus, substitute(expr))
        if body["status"] != "success":
            errors.append(f"{title}: {expr}: {body.get('error')}")
            continue
        if set(re.findall(r"\bosemn_\w+", expr)) <= exported and title not in MAY_BE_EMPTY:
            if body["data"]["result"]:
                filled.add(title)
            else:
                empty.append(f"{title}: {expr}")
    assert errors == []
    assert empty == []
    assert {
        "Freshness",
        "Freshness, share of max_age",
        "Stale datasets",
        "Column completeness",
        "Check duration p95 (1m)",
        "Mean check duration (1m)",
        "Source up",
        "Drift score",
        "Columns drifted",
        "Failed rows of failing checks",
        "Runs that failed or errored (1m)",
    } <= filled

    for model in dashboards.values():
        for variable in query_variables(model):
            body = label_values(prometheus, substitute(variable["query"]))
            assert body["status"] == "success", (variable["name"], body)
            if set(re.findall(r"\bosemn_\w+", variable["query"])) <= exported:
                assert body["data"], variable["name"]
    values = label_values(prometheus, "label_values(osemn_check_runs_total, dataset)")["data"]
    assert values == ["orders"]
    check_any_dataset_name_is_quoted(prometheus, scraped.config.base_dir)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="$"), min_size=1
    ).filter(lambda s: s != "<<")  # YAML's merge key, not a name
)
@example(name='we"ird\\na\nme')
@example(name="naïve 😀")
def check_any_dataset_name_is_quoted(prometheus: httpx.Client, tmp_path: Path, name: str) -> None:
    """Config names reach PromQL as string literals that Prometheus parses, whatever they hold."""
    text = yaml.safe_dump(
        {
            "version": 1,
            "sources": {"wh": {"url": "duckdb:///wh.duckdb"}},
            "datasets": {
                name: {
                    "source": "wh",
                    "table": "t",
                    "timestamp": "ts",
                    "freshness": {"max_age": "15m"},
                }
            },
        }
    )
    oncall = build_dashboards(parse_config(text, path=str(tmp_path / "osemn.yaml")))["oncall"]
    for title, expr in targets({"oncall": oncall}):
        if "max_age" in title or title == "Stale datasets":
            body = instant(prometheus, substitute(expr))
            assert body["status"] == "success", (name, expr, body.get("error"))
            literal = re.search(r'dataset=("(?:[^"\\]|\\.)*")', expr)
            assert literal is not None and json.loads(literal.group(1)) == name
