"""SLOs: SLI events, burn rates, alerts, and the Prometheus rules and dashboards for them."""
