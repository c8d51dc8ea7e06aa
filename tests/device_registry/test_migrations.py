"""Migrations take an empty database to head, on SQLite and PostgreSQL; the audit log refuses edits."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from device_registry.db import alembic_config, connect, current_revision, head_revision, upgrade
from device_registry.models import Base


def test_an_empty_database_upgrades_to_head_and_matches_the_models(registry_url: str) -> None:
    upgrade(registry_url)
    engine = connect(registry_url)
    try:
        assert current_revision(engine) == head_revision() is not None
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        for name, table in Base.metadata.tables.items():
            columns = {c["name"] for c in inspect(engine).get_columns(name)}
            assert columns == {c.name for c in table.columns}, name
        command.downgrade(alembic_config(registry_url), "base")
        assert not set(Base.metadata.tables) & set(inspect(engine).get_table_names())
        upgrade(registry_url)  # and back up again
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_audit_log_is_append_only(registry_url: str) -> None:
    upgrade(registry_url)
    engine = connect(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) "
                    "VALUES (CURRENT_TIMESTAMP, 'me', 'create', 'district', 'futian', '{}')"
                )
            )
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["me"]
    finally:
        engine.dispose()


def test_a_cases_history_is_append_only(registry_url: str) -> None:
    upgrade(registry_url)
    engine = connect(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO districts (id, name) VALUES ('futian', 'Futian')"))
            conn.execute(
                text(
                    "INSERT INTO cases (open_key, source, rule, severity, device_id, district_id, place_kind, place,"
                    " summary, evidence, state, occurrences, first_ts, last_ts, opened_at, updated_at) VALUES"
                    " ('flag:s:r', 'flag', 'r', 'high', 's', 'futian', 'stall', 'm/A', 'x', '{}', 'open', 1,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO case_events (case_id, at, actor, action, state, detail)"
                    " VALUES (1, CURRENT_TIMESTAMP, 'me', 'opened', 'open', '{}')"
                )
            )
        for statement in ("UPDATE case_events SET actor = 'someone else'", "DELETE FROM case_events"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM case_events")).scalars().all() == ["me"]
    finally:
        engine.dispose()
