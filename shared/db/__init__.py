"""The system of record: the ORM models, the session factory and the schema migrations (Alembic)."""
