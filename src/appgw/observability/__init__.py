"""Observability: Prometheus metrics under Azure Application Gateway's metric names."""

from appgw.observability.metrics import (
    HealthMetrics,
    RequestMetrics,
    configure_multiprocess,
    mark_process_dead,
    metrics_directory,
    metrics_response,
)

__all__ = [
    "HealthMetrics",
    "RequestMetrics",
    "configure_multiprocess",
    "mark_process_dead",
    "metrics_directory",
    "metrics_response",
]
