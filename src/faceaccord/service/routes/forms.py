"""Reading uploads and the request context from multipart forms."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, UploadFile

from faceaccord.errors import ImageTooLargeError, InputError
from faceaccord.governance.entities import Authorisation, RequestContext
from faceaccord.governance.vocabulary import CaptureDevice, ConsentKind, Jurisdiction, LegalGround

__all__ = ["ContextForm", "read_upload", "request_context"]


def read_upload(upload: UploadFile, *, limit: int) -> bytes:
    """The file's bytes, refusing more than ``limit`` without reading further. Synchronous on
    purpose: the routes that handle images are plain functions, run by FastAPI in its thread
    pool, so a face being processed never blocks the event loop."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLargeError(
            f"{upload.filename or 'an upload'} is over {limit:,} bytes, the limit for an image"
        )
    return data


def _jurisdiction(code: str | None) -> Jurisdiction | None:
    if not code:
        return None
    try:
        return Jurisdiction.parse(code)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def request_context(
    realtime: Annotated[bool, Form()] = False,
    public_space: Annotated[bool, Form()] = False,
    emergency: Annotated[bool, Form()] = False,
    reviewers: Annotated[int | None, Form(ge=0)] = None,
    authorisation: Annotated[str | None, Form(description="TYPE:REFERENCE")] = None,
    subject_jurisdiction: Annotated[str | None, Form()] = None,
    location: Annotated[str | None, Form()] = None,
    capture_device: Annotated[CaptureDevice, Form()] = CaptureDevice.FIXED,
    subject_may_be_minor: Annotated[bool, Form()] = False,
    consent: Annotated[ConsentKind, Form(description="Consent of the person concerned")] = (
        ConsentKind.NONE
    ),
    notice_given: Annotated[bool, Form()] = False,
    legal_ground: Annotated[LegalGround | None, Form(description="GDPR Art. 9(2)")] = None,
) -> RequestContext:
    try:
        auth = Authorisation.parse(authorisation) if authorisation else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return RequestContext(
        realtime=realtime,
        public_space=public_space,
        emergency=emergency,
        reviewers=reviewers,
        authorisation=auth,
        subject_jurisdiction=_jurisdiction(subject_jurisdiction),
        location=_jurisdiction(location),
        capture_device=capture_device,
        subject_may_be_minor=subject_may_be_minor,
        consent=consent,
        notice_given=notice_given,
        legal_ground=legal_ground,
    )


ContextForm = Annotated[RequestContext, Depends(request_context)]
