"""The application factory: the only place the service builds real objects.

``create_app(settings)`` opens the deployment (database, vault, keys, policy, face engine) in
the app's lifespan, so nothing happens at import and a test can hand in its own settings and a
fake engine. The app speaks RFC 9457 problem details for every error, limits request bodies,
rate-limits per API key (``service/ratelimit.py``), logs one JSON line per request, and
exposes Prometheus metrics.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceaccord.biometrics.pipeline import Engine
from faceaccord.platform.deployment import Clock, Platform
from faceaccord.platform.fairness import fail_interrupted_audits
from faceaccord.service.problems import install_problem_handlers, problem
from faceaccord.service.ratelimit import RateLimiter
from faceaccord.service.routes import (
    audit,
    biometrics,
    fairness,
    galleries,
    health,
    identifications,
    organisations,
)
from faceaccord.settings import Settings

__all__ = ["create_app"]

_log = logging.getLogger("faceaccord.service")


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "faceaccord_requests",
                "HTTP requests",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "faceaccord_request_seconds",
                "HTTP request latency",
                ["method", "route"],
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
        )


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or Settings()
    _configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform.open(settings, engine=engine or Engine.load(settings), clock=clock)
        app.state.platform = platform
        try:
            normaliser = platform.normaliser  # a bad calibration file stops the start, loudly
        except BaseException:
            platform.close()
            raise
        fail_interrupted_audits(platform)
        app.state.fairness_executor = ThreadPoolExecutor(max_workers=1)
        _log.info(
            "faceaccord service ready",
            extra={"home": str(settings.home), "score_normaliser": normaliser.id},
        )
        try:
            yield
        finally:
            app.state.fairness_executor.shutdown(wait=True, cancel_futures=True)
            platform.close()
            _log.info("faceaccord service stopped")

    app = FastAPI(
        title="faceaccord",
        version="0.1.0",
        summary="Face recognition that is accountable by construction.",
        lifespan=lifespan,
    )
    app.state.metrics = Metrics.create()
    app.state.rate_limiter = RateLimiter(settings.service.rate_limit)
    install_problem_handlers(app)

    for router in (
        health.router,
        organisations.router,
        biometrics.router,
        galleries.router,
        galleries.retention,
        identifications.router,
        audit.router,
        fairness.router,
    ):
        app.include_router(router)

    app.middleware("http")(_observe)
    app.add_middleware(BodyLimit, limit=settings.service.max_body_bytes)
    return app


async def _observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One JSON log line and the metrics for every request."""
    started = time.perf_counter()
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    response = await call_next(request)
    elapsed = time.perf_counter() - started
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    metrics: Metrics = request.app.state.metrics
    metrics.requests.labels(request.method, template, str(response.status_code)).inc()
    metrics.latency.labels(request.method, template).observe(elapsed)
    response.headers["X-Request-ID"] = request_id
    _log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            "route": template,
            "status": response.status_code,
            "ms": round(elapsed * 1000, 2),
        },
    )
    return response


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 problem: at once when the declared
    length is too large, and for a streamed body as soon as it grows too large (the application
    is told the client went away, and its own response, if any, is replaced)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "request_too_large",
            "request too large",
            f"the request body exceeds {self.limit:,} bytes",
        )
        await response(scope, receive, send)


class _JsonFormatter(logging.Formatter):
    _standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def _configure_logging() -> None:
    logger = logging.getLogger("faceaccord.service")
    if not any(isinstance(h.formatter, _JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(_JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
