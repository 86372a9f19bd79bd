"""Alembic environment: runs on the connection hub.storage.migrate hands it (sync, inside run_sync)."""

from alembic import context

from hub.storage.models import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `omnihub migrate` (hub.storage.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
