"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from faceaccord.service.auth import platform_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def ready(request: Request) -> JSONResponse:
    """The database answers and the face engine is loaded."""
    platform = platform_of(request)
    checks: dict[str, str] = {}
    try:
        with platform.db.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports any failure, never raises
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["engine"] = "ok" if platform._engine is not None else "not loaded"
    ready_now = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"ready": ready_now, "checks": checks}, status_code=200 if ready_now else 503
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
