"""OpenSLO v1: import, export, the round trip, and clear errors on bad documents."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osemn._slo_config import SLOConfig
from osemn.cli import main
from osemn.config import load_config
from osemn.errors import ConfigError, RuleError
from osemn.rules.openslo import export_openslo, load_openslo, parse_openslo

ALNUM = "abz09"


@st.composite
def slo_configs(draw: st.DrawFn) -> SLOConfig:
    """Any valid SLO: every field set or not, names and values with awkward characters."""
    sli = draw(
        st.sampled_from(
            [
                "freshness",
                "validity",
                "completeness",
                "volume",
                "checks",
                "drift",
                "accuracy",
                "availability",
            ]
        )
    )
    name = draw(st.sampled_from(ALNUM)) + draw(st.text("ab0-", max_size=6))
    doc: dict[str, Any] = {
        "name": name + draw(st.sampled_from(ALNUM)),
        "sli": sli,
        "objective": draw(st.floats(0, 1, exclude_min=True, exclude_max=True)),
        "window": timedelta(minutes=draw(st.integers(24 * 60, 400 * 24 * 60))),
        "for": timedelta(seconds=draw(st.integers(0, 86_400))),
        "labels": draw(
            st.dictionaries(st.sampled_from(["team", "Tier", "env_1"]), st.text(max_size=6))
        ),
    }
    subject = draw(st.text("aZ_.:-0 é", min_size=1, max_size=8))
    if sli == "availability":
        doc["source"] = subject
        doc["feature_view"] = draw(st.none() | st.text("ab_", min_size=1, max_size=4))
    else:
        doc["model" if sli == "accuracy" else "dataset"] = subject
    if sli == "completeness":
        column = st.text("ab_,", min_size=1, max_size=4)
        doc["columns"] = tuple(draw(st.lists(column, min_size=1, max_size=3)))
    text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
    for key in ("description", "runbook_url", "dashboard_url"):
        doc[key] = draw(st.none() | text)
    seconds = st.integers(1, 10**6)
    doc["absent_after"] = draw(st.none() | seconds.map(lambda s: timedelta(seconds=s)))
    return SLOConfig.model_validate(doc)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(slos=st.lists(slo_configs(), max_size=3))
def test_export_then_load_gives_the_same_slos(slos: list[SLOConfig]) -> None:
    text = export_openslo(slos, check_intervals={s.name: timedelta(minutes=7) for s in slos})
    if not slos:
        assert text == ""
        return
    assert parse_openslo(text) == slos


def test_export_writes_openslo_v1(tmp_path: Path) -> None:
    slos = [
        SLOConfig.model_validate(
            {
                "name": "orders-fresh",
                "dataset": "orders",
                "sli": "freshness",
                "objective": "99.5%",
                "window": "28d",
                "for": "5m",
                "labels": {"team": "data"},
                "runbook_url": "https://runbooks.example.com/orders",
            }
        ),
        SLOConfig.model_validate(
            {
                "name": "customers-complete",
                "dataset": "customers",
                "sli": "completeness",
                "columns": ["email", "name"],
                "objective": 0.99,
                "window": "30d",
                "description": "Customers have an email and a name.",
            }
        ),
    ]
    text = export_openslo(slos, check_intervals={"orders-fresh": timedelta(seconds=90)})
    fresh, complete = yaml.safe_load_all(text)
    assert fresh == {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {
            "name": "orders-fresh",
            "labels": {"team": "data"},
            "annotations": {
                "osemn.dev/runbook-url": "https://runbooks.example.com/orders",
                "osemn.dev/for": "5m",
            },
        },
        "spec": {
            "service": "orders",
            "indicator": {
                "metadata": {"name": "orders-fresh-sli"},
                "spec": {
                    "ratioMetric": {
                        "counter": True,
                        "good": {
                            "metricSource": {
                                "type": "osemn",
                                "spec": {"dataset": "orders", "sli": "freshness"},
                            }
                        },
                        "total": {
                            "metricSource": {
                                "type": "osemn",
                                "spec": {"dataset": "orders", "sli": "freshness"},
                            }
                        },
                    }
                },
            },
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "budgetingMethod": "Timeslices",
            "objectives": [{"target": 0.995, "timeSliceTarget": 1, "timeSliceWindow": "2m"}],
        },
    }
    assert complete["spec"]["description"] == "Customers have an email and a name."
    assert complete["spec"]["budgetingMethod"] == "Occurrences"
    assert complete["spec"]["objectives"] == [{"target": 0.99}]
    source = complete["spec"]["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]
    assert source["spec"] == {
        "dataset": "customers",
        "sli": "completeness",
        "columns": "email,name",
    }
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    assert load_openslo(path) == slos


def test_export_refuses_a_window_openslo_cannot_write() -> None:
    slo = SLOConfig.model_validate(
        {"name": "odd", "dataset": "d", "sli": "checks", "objective": 0.9, "window": "86430s"}
    )
    with pytest.raises(
        RuleError, match=r"SLO 'odd': window 86430s is not a whole number of minutes"
    ):
        export_openslo([slo])


HAND_WRITTEN = """\
# Written by hand, as an OpenSLO user would: a Service, an SLI referenced by name.
apiVersion: openslo/v1
kind: Service
metadata: {name: shop}
spec: {description: The shop}
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: orders-validity
spec:
  ratioMetric:
    counter: true
    good:
      metricSource: {type: osemn, spec: {dataset: orders, sli: validity}}
    total:
      metricSource: {type: osemn, spec: {dataset: orders, sli: validity}}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: orders-valid
  displayName: Orders are valid
  labels: {team: [data], tier: gold}
  annotations: {osemn.dev/absent-after: 2h, other.io/owner: someone}
spec:
  service: shop
  indicatorRef: orders-validity
  timeWindow: [{duration: 1M, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: good enough, targetPercent: 99.9}]
"""


def test_a_hand_written_document_loads(tmp_path: Path) -> None:
    (slo,) = parse_openslo(HAND_WRITTEN)
    assert slo == SLOConfig.model_validate(
        {
            "name": "orders-valid",
            "dataset": "orders",
            "sli": "validity",
            "objective": "99.9%",
            "window": "30d",
            "labels": {"team": "data", "tier": "gold"},
            "absent_after": "2h",
        }
    )


def test_slos_load_from_an_openslo_file_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "orders.yaml").write_text(HAND_WRITTEN)
    config_path = tmp_path / "osemn.yaml"
    config_path.write_text(
        textwrap.dedent(
            """\
            version: 1
            sources: {wh: {url: "sqlite:///unused.db"}}
            datasets:
              orders: {source: wh, table: orders, schema: schemas/orders.yaml}
            slos:
              - {name: orders-checks, dataset: orders, sli: checks, objective: 99%}
              - openslo: slos/orders.yaml
            """
        )
    )
    config = load_config(config_path, env={})
    assert [s.name for s in config.slo_list] == ["orders-checks", "orders-valid"]

    (tmp_path / "slos" / "orders.yaml").write_text(
        HAND_WRITTEN.replace("targetPercent: 99.9", "targetPercent: 100")
    )
    with pytest.raises(ConfigError) as info:
        load_config(config_path, env={})
    assert str(info.value).startswith(f"{config_path}:7: slos.1: ")
    assert (
        f"{tmp_path / 'slos' / 'orders.yaml'}:31: spec.objectives.0.targetPercent: "
        "objective 1 leaves no usable error budget" in str(info.value)
    )


SLO_DOC = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: orders-checks}
spec:
  service: orders
  indicator:
    metadata: {name: orders-checks-sli}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: osemn, spec: {dataset: orders, sli: checks}}}
        total: {metricSource: {type: osemn, spec: {dataset: orders, sli: checks}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.995}]
"""


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("openslo/v1", "openslo/v1alpha", ":1: apiVersion:", "osemn reads apiVersion: openslo/v1"),
        ("kind: SLO", "kind: Slo", ":2: kind:", "unknown kind 'Slo'; OpenSLO v1 kinds are SLO"),
        ("{name: orders-checks}", "{displayName: x}", ":3: metadata.name:", "required key"),
        ("{name: orders-checks}", "{name: Orders}", ":3: metadata.name:", "not a valid SLO name"),
        ("ratioMetric:", "thresholdMetric:", ":8: spec.indicator.spec:", "ratios of events"),
        (
            "good: {metricSource: {type: osemn",
            "good: {metricSource: {type: Prometheus",
            ":11: spec.indicator.spec.ratioMetric.good.metricSource.type:",
            "write type: osemn (got 'Prometheus')",
        ),
        (
            "total: {metricSource: {type: osemn, spec: {dataset: orders",
            "total: {metricSource: {type: osemn, spec: {dataset: other",
            ":12: spec.indicator.spec.ratioMetric.total.metricSource.spec:",
            "good and total must count the same osemn SLI",
        ),
        (
            "sli: checks}}}\n        total",
            "sli: checks, query: x}}}\n        total",
            ":11: spec.indicator.spec.ratioMetric.good.metricSource.spec.query:",
            "unknown key; valid keys: dataset, model, source, feature_view, sli, columns",
        ),
        (
            "sli: checks}",
            "sli: speed}",
            ":11: spec.indicator.spec.ratioMetric.good.metricSource.spec.sli:",
            "Input should be 'freshness'",
        ),
        ("isRolling: true", "isRolling: false", ":13: spec.timeWindow.0.isRolling:", "roll"),
        (
            "duration: 28d",
            "duration: 28 days",
            ":13: spec.timeWindow.0.duration:",
            "not an OpenSLO duration",
        ),
        ("duration: 28d", "duration: 12h", ":13: spec.timeWindow.0.duration:", "shorter than 1d"),
        (
            "Occurrences",
            "Timeslices",
            ":14: spec.budgetingMethod:",
            "write budgetingMethod: Occurrences",
        ),
        (
            "[{target: 0.995}]",
            "[{target: 0.995}, {target: 0.9}]",
            ":15: spec.objectives:",
            "one objective per SLO",
        ),
        ("[{target: 0.995}]", "[{target: 1.5}]", ":15: spec.objectives.0.target:", "outside 0..1"),
        (
            "[{target: 0.995}]",
            "[{target: high}]",
            ":15: spec.objectives.0.target:",
            "must be a ratio",
        ),
        (
            "[{target: 0.995}]",
            "[{op: lte}]",
            ":15: spec.objectives.0.target:",
            "required key is missing",
        ),
        (
            "metadata: {name: orders-checks}",
            "metadata: {name: orders-checks, annotations: {osemn.dev/runbook: x}}",
            ":3: metadata.annotations.osemn.dev/runbook:",
            "unknown osemn annotation; valid ones: osemn.dev/runbook-url",
        ),
        (
            "metadata: {name: orders-checks}",
            "metadata: {name: orders-checks, labels: {team: [a, b]}}",
            ":3: metadata.labels.team:",
            "one string value",
        ),
        ("  timeWindow:", "  timeWindow:\n  timeWindow:", ":14: spec.timeWindow:", "duplicate key"),
    ],
)
def test_bad_documents_name_file_line_key_and_fix(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in SLO_DOC
    path = tmp_path / "bad.yaml"
    path.write_text(SLO_DOC.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_openslo(path)
    assert str(info.value).startswith(f"{path}{where}"), str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no OpenSLO SLO document"),
        ("apiVersion: openslo/v1\nkind: Service\nmetadata: {name: s}\n", "holds no OpenSLO SLO"),
        ("- a\n- b\n", "must be a mapping with apiVersion, kind, metadata and spec"),
        ("kind: [unclosed\n", "not valid YAML"),
        (
            SLO_DOC.replace("indicator:\n", "indicatorRef: nope\n  unused:\n"),
            "no kind: SLI document named 'nope' in this file; known: none",
        ),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_openslo(path)
    assert info.value.path == str(path)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read OpenSLO file: No such file or directory"):
        load_openslo(tmp_path / "none.yaml")


def test_cli_slo_export(tmp_path: Path) -> None:
    config_path = tmp_path / "osemn.yaml"
    config_path.write_text(
        textwrap.dedent(
            """\
            version: 1
            sources: {wh: {url: "sqlite:///unused.db"}}
            datasets:
              orders:
                {source: wh, table: orders, timestamp: ts, freshness: {max_age: 1h},
                 schedule: every 10m}
            slos:
              - {name: orders-fresh, dataset: orders, sli: freshness, objective: 99.5%}
              - {name: orders-checks, dataset: orders, sli: checks, objective: 99%, window: 30d}
            """
        )
    )
    result = CliRunner().invoke(main, ["slo", "export", "-c", str(config_path)])
    assert result.exit_code == 0, result.output
    config = load_config(config_path, env={})
    assert parse_openslo(result.stdout) == list(config.slo_list)
    first = next(yaml.safe_load_all(result.stdout))
    assert first["spec"]["objectives"][0]["timeSliceWindow"] == "10m"

    out = tmp_path / "openslo.yaml"
    result = CliRunner().invoke(main, ["slo", "export", "-c", str(config_path), "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert load_openslo(out) == list(config.slo_list)


def test_cli_slo_export_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    config_path = tmp_path / "osemn.yaml"
    config_path.write_text("version: 1\nsources: {}\nslos: [{name: x, sli: checks}]\n")
    result = CliRunner().invoke(main, ["slo", "export", "-c", str(config_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"osemn: {config_path}:3: slos.0")
