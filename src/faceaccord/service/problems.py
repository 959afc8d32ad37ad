"""Every error as RFC 9457 problem details (``application/problem+json``), mapped in exactly
one place. The ``type`` of a problem is stable (a URI ending in the error's code); the body
never carries a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceaccord.errors import (
    ConfigurationError,
    FaceAccordError,
    ImageTooLargeError,
    InputError,
    ModelError,
    PolicyDeniedError,
    QualityRejectedError,
    ReviewError,
    TooManyPixelsError,
)
from faceaccord.governance.vocabulary import Purpose

__all__ = ["PROBLEM_BASE", "install_problem_handlers", "problem"]

PROBLEM_BASE = "https://faceaccord.dev/problems/"
_log = logging.getLogger("faceaccord.service")

_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limited",
}
_NOT_FOUND = {
    "gallery_not_found",
    "subject_not_found",
    "identification_not_found",
    "organisation_not_found",
    "key_not_found",
    "fairness_audit_not_found",
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse(
        {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


_STATUS_BY_KIND: tuple[
    tuple[type[FaceAccordError] | tuple[type[FaceAccordError], ...], int], ...
] = (
    (PolicyDeniedError, 403),
    ((ImageTooLargeError, TooManyPixelsError), 413),
    ((QualityRejectedError, InputError), 422),
    (ReviewError, 409),
    ((ModelError, ConfigurationError), 500),
)


def status_of(error: FaceAccordError) -> int:
    if error.code in _NOT_FOUND:
        return 404
    for kinds, status in _STATUS_BY_KIND:
        if isinstance(error, kinds):
            return status
    return 400


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(FaceAccordError)
    async def faceaccord_error(request: Request, error: FaceAccordError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(error, PolicyDeniedError):
            extra = error.decision.as_dict()
        if isinstance(error, QualityRejectedError):
            extra = {"reasons": [str(reason) for reason in error.reasons]}
        status = status_of(error)
        if status >= 500:
            _log.error("request failed: %s", error.message, extra={"code": error.code})
        return problem(status, error.code, error.code.replace("_", " "), error.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "problem": e["msg"],
            }
            for e in error.errors()
        ]
        missing_purpose = any(f["field"].endswith("purpose") for f in fields)
        detail = (
            "every biometric request states its purpose: send purpose=<one of "
            + ", ".join(p.value for p in Purpose)
            + ">"
            if missing_purpose
            else "the request does not have the expected fields: see 'errors'"
        )
        code = "purpose_required" if missing_purpose else "invalid_request"
        return problem(422, code, code.replace("_", " "), detail, errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return problem(
            error.status_code,
            code,
            code.replace("_", " "),
            str(error.detail),
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal_error",
            "internal error",
            "the server failed to handle this request; it has been logged",
        )
