"""Alembic environment: migrations run against the URL in the config (see :func:`device_registry.db.upgrade`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from device_registry.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "device_registry.db.alembic_config sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
