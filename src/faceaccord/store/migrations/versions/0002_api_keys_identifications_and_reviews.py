"""api keys, identifications and reviews

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("gallery_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("required_reviewers", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("operating_point", sa.String(length=60), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identifications")),
    )
    with op.batch_alter_table("identifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identifications_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_api_keys_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_keys_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "identification_candidates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("identification_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("subject_reference", sa.String(length=300), nullable=True),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.ForeignKeyConstraint(
            ["identification_id"],
            ["identifications.id"],
            name=op.f("fk_identification_candidates_identification_id_identifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identification_candidates")),
    )
    with op.batch_alter_table("identification_candidates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identification_candidates_identification_id"),
            ["identification_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_identification_candidates_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "scale_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_scale_requests_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scale_requests")),
    )
    with op.batch_alter_table("scale_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scale_requests_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["identification_candidates.id"],
            name=op.f("fk_reviews_candidate_id_identification_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_candidate_id"), ["candidate_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_subject_id"), ["subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_subject_id"))
        batch_op.drop_index(batch_op.f("ix_reviews_candidate_id"))

    op.drop_table("reviews")
    with op.batch_alter_table("scale_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scale_requests_organisation_id"))

    op.drop_table("scale_requests")
    with op.batch_alter_table("identification_candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identification_candidates_subject_id"))
        batch_op.drop_index(batch_op.f("ix_identification_candidates_identification_id"))

    op.drop_table("identification_candidates")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_organisation_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("identifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identifications_organisation_id"))

    op.drop_table("identifications")
