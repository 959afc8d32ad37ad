"""Persistence: SQLAlchemy 2 models and Alembic migrations. SQLite (WAL) is the embedded
default; PostgreSQL is fully supported. The key vault is a separate database on purpose."""
