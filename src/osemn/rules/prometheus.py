"""``osemn rules``: the SLOs as Prometheus rules, their promtool tests, an Alertmanager snippet.

Prometheus computes everything from one counter the agent exports,
``osemn_sli_events_total{slo, outcome="good"|"bad"}``. Names follow Sloth
(``slo:sli_error:ratio_rate5m``, ``slo:objective:ratio``, ...) so that Sloth's
Grafana dashboards work unchanged. The burn-rate tiers and the window widening
come from :mod:`osemn.rules.burn`, the same code the agent's evaluator uses, so
both fire on the same data. docs/rules.md describes the generated rules.

Every function returns plain dicts for ``yaml.safe_dump`` (or :func:`to_yaml`).
The rule file and the facts it shares with the agent live in ``_prom_rules``,
the promtool tests in ``_promtool``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from osemn.config import Config, RouteConfig
from osemn.lineage.incidents import ROLE_ROOT, ROLE_SYMPTOM
from osemn.rules._prom_rules import (
    METRIC,
    RULE_FILE,
    absent_window,
    alert_annotations,
    alert_labels,
    burn_threshold,
    check_interval,
    prom_duration,
    prometheus_rules,
    widened_windows,
)
from osemn.rules._promtool import promtool_tests

__all__ = [
    "ALERTMANAGER_FILE",
    "METRIC",
    "RULE_FILE",
    "TEST_FILE",
    "absent_window",
    "alert_annotations",
    "alert_labels",
    "alertmanager_config",
    "burn_threshold",
    "check_interval",
    "prom_duration",
    "prometheus_rules",
    "promtool_tests",
    "to_yaml",
    "widened_windows",
]

TEST_FILE = "osemn-rules.test.yaml"
ALERTMANAGER_FILE = "alertmanager.yaml"


def alertmanager_config(config: Config) -> dict[str, Any]:
    """An Alertmanager config: osemn alerts to a page and a ticket receiver.

    The receivers are placeholders (webhooks to example URLs) to replace with
    real ones; timings come from the config's routes for the same severity. A page
    inhibits the tickets of the same SLO, and a root-cause alert its downstream
    symptoms (labels the agent sets from lineage).
    """
    routes = []
    for severity in ("page", "ticket"):
        timing = _route_timing(config, severity)
        routes.append(
            {"receiver": f"osemn-{severity}", "matchers": [f'severity="{severity}"'], **timing}
        )
    return {
        "route": {
            "receiver": "default",
            "routes": [
                {
                    "receiver": "osemn-ticket",
                    "matchers": ['alertname=~"Osemn.+"'],
                    "group_by": ["alertname", "slo"],
                    "routes": routes,
                }
            ],
        },
        "receivers": [
            {"name": "default"},
            *(
                {
                    "name": f"osemn-{severity}",
                    "webhook_configs": [
                        {
                            "url": f"https://alerts.example.com/osemn/{severity}",
                            "send_resolved": True,
                        }
                    ],
                }
                for severity in ("page", "ticket")
            ),
        ],
        "inhibit_rules": [
            {
                "source_matchers": ['severity="page"'],
                "target_matchers": ['severity="ticket"'],
                "equal": ["slo"],
            },
            {
                "source_matchers": [f'dq_role="{ROLE_ROOT}"'],
                "target_matchers": [f'dq_role="{ROLE_SYMPTOM}"'],
                "equal": ["incident_root"],
            },
        ],
    }


def _route_timing(config: Config, severity: str) -> dict[str, str]:
    routes = config.alerting.routes
    route = next(
        (r for r in routes if r.match.get("severity") == severity),
        next((r for r in routes if not r.match), RouteConfig(receiver="default")),
    )
    return {
        "group_wait": prom_duration(route.group_wait),
        "group_interval": prom_duration(route.group_interval),
        "repeat_interval": prom_duration(route.repeat_interval),
    }


# --- formatting ----------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, so the rule file reads like PromQL."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: Mapping[str, Any], *, comments: Sequence[str] = ()) -> str:
    """``doc`` as YAML in the order written, after ``comments`` as ``#`` lines."""
    head = "".join(f"# {line}\n" for line in comments)
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
