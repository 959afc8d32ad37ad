"""Alembic environment: migrations run on the engine faceaccord hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from faceaccord.store.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("faceaccord migrations run through faceaccord.store.database.upgrade")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
