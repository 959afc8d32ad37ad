"""fairness audits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fairness_audits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("dataset", sa.String(length=300), nullable=False),
        sa.Column("model_id", sa.String(length=100), nullable=True),
        sa.Column("model_sha256", sa.String(length=64), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fairness_audits")),
    )
    with op.batch_alter_table("fairness_audits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fairness_audits_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("fairness_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fairness_audits_organisation_id"))

    op.drop_table("fairness_audits")
