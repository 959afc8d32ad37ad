"""Detection, 1:1 verification and the policy's dry run. Every biometric request states its
purpose; the policy decides before any image is decoded."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile
from pydantic import BaseModel

from faceaccord import documents
from faceaccord.governance.enforcement import GovernedEngine
from faceaccord.governance.entities import PolicyRequest, RequestContext
from faceaccord.governance.vocabulary import ConsentKind, Operation, Purpose
from faceaccord.platform.keys import Role
from faceaccord.platform.verification import verify as verify_faces
from faceaccord.service.auth import Caller, CallerDep, requires
from faceaccord.service.routes.forms import ContextForm, read_upload

router = APIRouter(prefix="/v1", tags=["biometrics"])
OperatorDep = Annotated[Caller, Depends(requires(Role.OPERATOR, Role.ADMIN))]
PurposeForm = Annotated[Purpose, Form(description="Why: one of the catalogue's purposes")]


def _governed(who: Caller) -> GovernedEngine:
    platform = who.platform
    return GovernedEngine(
        engine=platform.engine,
        policy=platform.policy,
        on_decision=lambda request, decision: platform.record_decision(
            actor=who.actor,
            operation=str(request.operation),
            purpose=request.purpose,
            decision=decision,
            outcome="allowed" if decision.allowed else "denied",
        ),
    )


@router.post("/detect")
def detect(
    image: UploadFile, purpose: PurposeForm, who: OperatorDep, context: ContextForm
) -> dict[str, Any]:
    governed = _governed(who)
    decision = governed.authorise(
        Operation.DETECT, organisation=who.organisation, purpose=purpose, context=context
    )
    data = read_upload(image, limit=who.platform.settings.images.max_bytes)
    engine = who.platform.engine
    decoded = engine.read(data)
    faces = engine.detect(decoded)
    return {
        "image": documents.image_json(decoded),
        "faces": [
            documents.face_json(f, engine.quality_reasons(f, faces_in_image=len(faces)))
            for f in faces
        ],
        "decision": decision.as_dict(),
    }


@router.post("/verify")
def verify(
    image_a: UploadFile,
    image_b: UploadFile,
    purpose: PurposeForm,
    who: OperatorDep,
    context: ContextForm,
) -> dict[str, Any]:
    """Are the two photos' largest faces the same person? Under a human-review obligation a
    match comes back ``pending_review``, with how many people must confirm it."""
    limit = who.platform.settings.images.max_bytes
    verification = verify_faces(
        who.platform,
        probe=read_upload(image_a, limit=limit),
        reference=read_upload(image_b, limit=limit),
        purpose=purpose,
        actor=who.actor,
        context=context,
    )
    return {
        **documents.verification_json(verification.result),
        "status": verification.status,
        "required_reviewers": verification.required_reviewers,
        "decision": verification.decision.as_dict(),
    }


class PolicyCheck(BaseModel):
    operation: Operation
    purpose: Purpose
    realtime: bool = False
    public_space: bool = False
    emergency: bool = False
    reviewers: int | None = None
    consent: ConsentKind = ConsentKind.NONE
    notice_given: bool = False


@router.post("/policy/check")
def policy_check(body: PolicyCheck, who: CallerDep) -> dict[str, Any]:
    """What the policy would decide for this organisation, without doing anything."""
    decision = who.platform.policy.decide(
        PolicyRequest(
            organisation=who.organisation,
            operation=body.operation,
            purpose=body.purpose,
            context=RequestContext(
                realtime=body.realtime,
                public_space=body.public_space,
                emergency=body.emergency,
                reviewers=body.reviewers,
                consent=body.consent,
                notice_given=body.notice_given,
            ),
        )
    )
    return decision.as_dict()
