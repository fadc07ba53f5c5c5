"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lrs import __version__

from .responses import error_response

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: the statement store answers."""
    try:
        await request.app.state.backend.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return error_response(503, f"statement store unavailable: {exc}")
    return Response(b'{"status":"ready"}', media_type="application/json")


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
