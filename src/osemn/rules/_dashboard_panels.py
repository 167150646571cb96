"""The panels of osemn's three dashboards: executive, on-call and debug.

Each function returns a dashboard spec (see ``_dashboard_spec``) for a config;
``osemn.rules.dashboards`` gives it its uid and renders it.
"""

from __future__ import annotations

from datetime import timedelta

from osemn.config import Config, SLOConfig, schedule_interval
from osemn.rules._dashboard_promql import (
    DEFAULT_SLO_WINDOW,
    FIRING,
    burn_steps,
    duration,
    freshness_share,
    percent,
    quote,
    run_window,
    sli,
)
from osemn.rules._dashboard_spec import (
    BUDGET,
    NEUTRAL,
    RATIO,
    Dashboard,
    Query,
    Row,
    bars,
    series,
    stat,
    table,
)

__all__ = ["debug", "executive", "oncall"]


def executive(config: Config) -> Dashboard:
    budget = 'min by (slo) (osemn_slo_error_budget_remaining_ratio{slo=~"$slo"})'
    rows = [
        Row(
            "SLOs",
            (
                stat(
                    "SLOs within budget",
                    "SLOs with error budget left in their window.",
                    f"count({budget} > 0) or vector(0)",
                    steps=NEUTRAL,
                ),
                stat(
                    "SLOs out of budget",
                    "SLOs whose budget is spent: the objective is missed.",
                    f"count({budget} <= 0) or vector(0)",
                ),
                bars(
                    "Error budget remaining",
                    "Share of each SLO's error budget left in its window (the agent's evaluation).",
                    budget,
                    unit="percentunit",
                    steps=BUDGET,
                    max=1,
                    width=16,
                    height=4,
                ),
                series(
                    "Error budget remaining over time",
                    "How fast each SLO spends its budget.",
                    budget,
                    unit="percentunit",
                    max=1,
                    width=24,
                    height=7,
                ),
            ),
        ),
    ]
    rows.extend(_slo_row(config, slo) for slo in config.slo_list)
    return Dashboard(
        title="osemn / Executive: SLOs",
        description="Data SLOs: are they met, and how much error budget is left.",
        variables=(("slo", "SLO", "label_values(osemn_sli_events_total, slo)"),),
        rows=tuple(rows),
    )


def _slo_row(config: Config, slo: SLOConfig) -> Row:
    """One SLO's panels, with its objective, window and page factor written in."""
    name, window = quote(slo.name), duration(slo.window)
    ds = config.datasets.get(slo.subject)
    interval = schedule_interval(ds.schedule) if ds is not None else timedelta(0)
    recent = duration(max(timedelta(hours=1), 2 * interval))
    return Row(
        f"{slo.name}: {slo.sli} of {slo.subject}, {percent(slo.objective)} over {window}",
        (
            stat(
                f"SLI over {window}",
                f"Good events / all events over the SLO window; green from the objective "
                f"{percent(slo.objective)}.",
                sli(f"slo={name}", window),
                unit="percentunit",
                steps=((None, "red"), (slo.objective, "green")),
                width=5,
                height=6,
            ),
            stat(
                "Error budget remaining",
                f"Share of the {window} budget ({percent(slo.error_budget)} of events) left.",
                f"min(osemn_slo_error_budget_remaining_ratio{{slo={name}}})",
                unit="percentunit",
                steps=BUDGET,
                width=5,
                height=6,
            ),
            series(
                f"SLI over {recent} vs objective",
                f"The SLI over a sliding {recent} (at least two check runs) against the objective.",
                Query(sli(f"slo={name}", recent), "SLI"),
                Query(f"vector({slo.objective!r})", "objective"),
                unit="percentunit",
                width=9,
                height=6,
            ),
            bars(
                "Burn rate by window",
                f"Error ratio / error budget: 1 spends the budget exactly in {window}; red "
                "from the page factor.",
                f"max by (window) (osemn_slo_burn_rate{{slo={name}}})",
                steps=burn_steps(slo.window),
                width=5,
                height=6,
            ),
        ),
    )


def oncall(config: Config) -> Dashboard:
    ds = 'dataset=~"$dataset"'
    burn = 'osemn_slo_burn_rate{slo=~"$slo"'
    fresh = freshness_share(config)
    window = run_window(config)
    now = [
        stat(
            "Alerts firing",
            "Alerts the agent has firing now, pages and tickets.",
            "sum(osemn_alerts_firing) or vector(0)",
        ),
        stat(
            "Failing checks",
            "Checks whose last run did not pass (failed, errored or lacked data).",
            f"count(max by (dataset, check) (osemn_check_success{{{ds}}}) == 0) or vector(0)",
        ),
        stat(
            "Sources down",
            "Sources whose last query failed: their checks are errors, not failures.",
            "count(max by (source) (osemn_source_up) == 0) or vector(0)",
        ),
        stat(
            "Notifications pending",
            "Alerts in the outbox not yet delivered (a receiver is slow or down).",
            "sum(osemn_outbox_pending) or vector(0)",
        ),
    ]
    data = [
        series(
            "Freshness",
            "Age of the newest row of each dataset; it grows between runs "
            "and while a source cannot be read.",
            f"max by (dataset) (osemn_dataset_freshness_seconds{{{ds}}})",
            unit="s",
        ),
        table(
            "Failed rows of failing checks",
            "Rows that broke each failing check in its "
            "last run (an errored check has no row count: see the runs table).",
            f"max by (dataset, check) (osemn_check_failed_rows{{{ds}}}) and on (dataset, "
            f"check) (max by (dataset, check) (osemn_check_success{{{ds}}}) == 0)",
        ),
    ]
    if fresh is not None:
        now.append(
            stat(
                "Stale datasets",
                "Datasets whose newest row is older than their freshness.max_age.",
                f"count(({fresh}) > 1) or vector(0)",
            )
        )
        data.insert(
            0,
            bars(
                "Freshness, share of max_age",
                "Age of the newest row / the dataset's freshness.max_age: red from 100% (stale).",
                fresh,
                unit="percentunit",
                min=0,
                steps=((None, "green"), (0.8, "orange"), (1, "red")),
            ),
        )
    windows = [slo.window for slo in config.slo_list] or [DEFAULT_SLO_WINDOW]
    return Dashboard(
        title="osemn / On-call",
        description="What burns now: SLO burn rates, firing alerts, stale data, failing checks.",
        variables=(
            ("dataset", "Dataset", "label_values(osemn_check_runs_total, dataset)"),
            ("slo", "SLO", "label_values(osemn_sli_events_total, slo)"),
        ),
        rows=(
            Row("Now", tuple(now)),
            Row(
                "SLO burn rates",
                (
                    bars(
                        "Burn rate now",
                        "Error ratio / error budget per SLO and window: orange "
                        "above 1 (the budget will not last), red from the page factor.",
                        f"max by (slo, window) ({burn}}})",
                        steps=burn_steps(*windows),
                    ),
                    series(
                        "Burn rate, page windows",
                        "The windows of the page alerts: 1h with 5m, 6h with 30m.",
                        f'max by (slo, window) ({burn},window=~"5m|30m|1h|6h"}})',
                    ),
                    series(
                        "Burn rate, ticket windows",
                        "The windows of the ticket alerts: 1d with 2h, 3d with 6h.",
                        f'max by (slo, window) ({burn},window=~"2h|6h|1d|3d"}})',
                    ),
                ),
            ),
            Row(
                "Alerts and delivery",
                (
                    table(
                        "Firing alerts",
                        "Alerts firing now by name and severity.",
                        FIRING,
                    ),
                    series(
                        "Notifications",
                        "Notifications by receiver and delivery status.",
                        "sum by (receiver, status) "
                        "(increase(osemn_notifications_total[$__rate_interval]))",
                    ),
                    series(
                        "Outbox pending",
                        "Notifications waiting for delivery, by receiver.",
                        "sum by (receiver) (osemn_outbox_pending)",
                    ),
                ),
            ),
            Row(
                "Data",
                (
                    *data,
                    table(
                        f"Runs that failed or errored ({window})",
                        "Failed: the data broke the "
                        "rule. Errored: osemn could not evaluate the check (source down, "
                        "timeout, bad schema).",
                        "sum by (dataset, check, status) (increase("
                        f'osemn_check_runs_total{{{ds},status=~"fail|error"}}[{window}])) > 0',
                        width=24,
                    ),
                ),
            ),
        ),
    )


def debug(config: Config) -> Dashboard:
    col = 'dataset=~"$dataset",column=~"$column"'
    kind = 'dataset=~"$dataset",kind=~"$kind"'
    window = run_window(config)
    hist = "osemn_check_duration_seconds"
    return Dashboard(
        title="osemn / Debug",
        description="Why a dataset is unhealthy: columns, drift, check runs and sources.",
        variables=(
            ("dataset", "Dataset", "label_values(osemn_check_runs_total, dataset)"),
            (
                "column",
                "Column",
                'label_values({__name__=~"osemn_column_completeness_ratio|'
                'osemn_drift_score",dataset=~"$dataset"}, column)',
            ),
            ("kind", "Check kind", f'label_values({hist}_count{{dataset=~"$dataset"}}, kind)'),
            ("source", "Source", "label_values(osemn_source_up, source)"),
        ),
        rows=(
            Row(
                "Completeness and validity",
                (
                    series(
                        "Column completeness",
                        "Share of non-null values of each column in each run.",
                        f"min by (dataset, column) (osemn_column_completeness_ratio{{{col}}})",
                        width=12,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    bars(
                        "Column completeness, last run",
                        "The least complete columns stand out.",
                        f"min by (dataset, column) (osemn_column_completeness_ratio{{{col}}})",
                        width=6,
                        steps=RATIO,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    series(
                        "Validity",
                        "Share of rows passing every schema check.",
                        'min by (dataset) (osemn_dataset_validity_ratio{dataset=~"$dataset"})',
                        width=6,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                ),
            ),
            Row(
                "Drift",
                (
                    series(
                        "Drift score",
                        "Effect size of each column's drift from its reference "
                        "(by method: PSI, Jensen-Shannon, Hellinger, Wasserstein, KS D).",
                        f"max by (dataset, column, method) (osemn_drift_score{{{col}}})",
                        width=10,
                    ),
                    series(
                        "Drift p-value",
                        "p-value of the drift test before the FDR correction; "
                        "alert on drift detected, not on this.",
                        f"min by (dataset, column, method) (osemn_drift_pvalue{{{col}}})",
                        width=6,
                    ),
                    bars(
                        "Drifted share of columns",
                        "Share of each dataset's judged drift columns that drifted.",
                        'max by (dataset) (osemn_dataset_drift_share{dataset=~"$dataset"})',
                        width=4,
                        steps=((None, "green"), (0.01, "orange"), (0.5, "red")),
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    table(
                        "Columns drifted",
                        "Columns the last drift run found drifted.",
                        f"max by (dataset, column, method) (osemn_drift_detected{{{col}}}) == 1",
                        width=4,
                    ),
                ),
            ),
            Row(
                "Check runs",
                (
                    series(
                        f"Check duration p95 ({window})",
                        "95th percentile of run time by "
                        "dataset and kind (checks fused into one scan share one observation).",
                        "histogram_quantile(0.95, sum by (dataset, kind, le) "
                        f"(rate({hist}_bucket{{{kind}}}[{window}])))",
                        unit="s",
                    ),
                    series(
                        f"Mean check duration ({window})",
                        "Mean run time by dataset and kind.",
                        f"sum by (dataset, kind) (rate({hist}_sum{{{kind}}}[{window}])) / "
                        f"sum by (dataset, kind) (rate({hist}_count{{{kind}}}[{window}]))",
                        unit="s",
                    ),
                    bars(
                        "Time since last run",
                        "Since each kind of check last finished: a stuck "
                        "schedule shows here first.",
                        "time() - max by (dataset, kind) "
                        f"(osemn_check_last_run_timestamp_seconds{{{kind}}})",
                        unit="s",
                    ),
                    series(
                        f"Check runs by status ({window})",
                        "Runs by outcome: pass, fail, error, insufficient_data.",
                        "sum by (dataset, status) (increase("
                        f'osemn_check_runs_total{{dataset=~"$dataset"}}[{window}]))',
                        width=12,
                    ),
                    series(
                        "Rows in the volume window",
                        "Rows each dataset had in its volume window at each run.",
                        'max by (dataset, window) (osemn_dataset_rows{dataset=~"$dataset"})',
                        width=12,
                    ),
                ),
            ),
            Row(
                "Sources and agents",
                (
                    series(
                        "Source up",
                        "1 while the source answers osemn's queries, 0 after a failure.",
                        'min by (source) (osemn_source_up{source=~"$source"})',
                        steps=((None, "red"), (1, "green")),
                        min=0,
                        max=1,
                        width=16,
                    ),
                    table(
                        "Agents by version",
                        "How many agents run each osemn version.",
                        "count by (version) (osemn_build_info)",
                    ),
                ),
            ),
        ),
    )
