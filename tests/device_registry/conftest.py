"""Registry fixtures: every registry test runs on a fresh SQLite file and on a fresh PostgreSQL database
(:mod:`tests.support.registry_db`)."""

from tests.support.registry_db import engine, registry_url

__all__ = ["engine", "registry_url"]
