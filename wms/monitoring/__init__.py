"""Watching the service: a local Prometheus, Grafana dashboards as code, input drift, the canary's analysis."""
