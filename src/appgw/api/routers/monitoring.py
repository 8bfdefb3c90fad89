"""What monitoring systems poll: Prometheus metrics and a liveness check."""

from __future__ import annotations

from fastapi import APIRouter, Response

from appgw.api.common import Authenticated
from appgw.observability import metrics_response

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(_c: Authenticated) -> Response:
    """Prometheus text format, added up over every worker (token required: the labels
    name backends and listeners)."""
    body, content_type = metrics_response()
    return Response(content=body, media_type=content_type)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
