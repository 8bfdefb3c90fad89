"""Observability: Prometheus metrics under Azure Application Gateway's metric names."""

from appgw.observability.metrics import (
    HealthMetrics,
    RequestMetrics,
    WafMetrics,
    configure_multiprocess,
    mark_process_dead,
    metrics_directory,
    metrics_response,
)

__all__ = [
    "HealthMetrics",
    "RequestMetrics",
    "WafMetrics",
    "configure_multiprocess",
    "mark_process_dead",
    "metrics_directory",
    "metrics_response",
]
