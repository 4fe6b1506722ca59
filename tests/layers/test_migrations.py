"""Schema components: registered migration sequences, each with its own version."""

from __future__ import annotations

import pytest

from cim.errors import DatasetIOError
from layers.store.schema import (
    CORE,
    Component,
    component,
    register_migrations,
)


def _things(n: int):
    def statements(dialect: str) -> list[str]:
        return [f"CREATE TABLE plugin_t{n} (id INTEGER PRIMARY KEY, v TEXT)"]

    return statements


def test_register_validates_and_is_idempotent() -> None:
    migrations = [(1, _things(1))]
    comp = register_migrations("test-idem", migrations)
    assert register_migrations("test-idem", migrations) is not None
    assert component("test-idem") == comp and comp.version == 1
    with pytest.raises(ValueError, match="already registered"):
        register_migrations("test-idem", [(1, _things(1)), (2, _things(2))])
    with pytest.raises(ValueError, match="increase from 1"):
        register_migrations("test-bad", [(2, _things(1)), (1, _things(2))])
    with pytest.raises(ValueError, match="increase from 1"):
        register_migrations("test-bad", [])
    with pytest.raises(KeyError):
        component("never-registered")


def test_components_move_independently(store) -> None:
    plugin = Component("test-plugin", ((1, _things(1)), (2, _things(2))))
    assert store.schema_version(plugin) == 0
    assert store.migrate(plugin) == 2
    assert store.migrate(plugin) == 2  # idempotent
    assert store.schema_version(plugin) == 2 and store.schema_version() == CORE.version
    with store.transaction(write=True) as tx:
        tx.execute("INSERT INTO plugin_t2 (id, v) VALUES (1, 'x')")  # the tables exist
        rows = tx.execute(
            "SELECT component, version FROM schema_migrations ORDER BY component, version"
        )
    assert ("test-plugin", 1) in rows and ("test-plugin", 2) in rows and ("live", 1) in rows
    # a newer toolkit's version of the plugin is refused; the core still opens
    newer = Component("test-plugin", ((1, _things(1)),))
    with pytest.raises(DatasetIOError, match="test-plugin schema version 2, newer"):
        store.migrate(newer)
    assert store.migrate() == CORE.version


def test_failed_migration_leaves_the_last_complete_version(store) -> None:
    def broken(dialect: str) -> list[str]:
        return ["CREATE TABLE plugin_ok (id INTEGER)", "CREATE TABLE no such syntax"]

    comp = Component("test-broken", ((1, _things(3)), (2, broken)))
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own error
        store.migrate(comp)
    assert store.schema_version(comp) == 1
    with store.transaction() as tx:  # version 2 rolled back as a whole
        assert not store._has_table(tx, "plugin_ok")


def test_legacy_version_tables_are_adopted(store) -> None:
    with store.transaction(write=True) as tx:  # a store as the first release left it
        tx.execute("DROP TABLE schema_migrations")
        tx.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        tx.execute("INSERT INTO schema_version (version) VALUES (?)", [CORE.version])
        tx.execute("CREATE TABLE legacy_version (version INTEGER)")
        tx.execute("INSERT INTO legacy_version (version) VALUES (1)")
    assert store.schema_version() == 0  # nothing in the new table yet
    # adopted (running migration 1 again would fail: its tables exist)
    assert store.migrate() == CORE.version == store.schema_version()
    plugin = Component("test-legacy", ((1, _things(4)), (2, _things(5))), "legacy_version")
    assert store.migrate(plugin) == 2  # adopted at 1, then migration 2 only
    with store.transaction() as tx:
        assert store._has_table(tx, "plugin_t5") and not store._has_table(tx, "plugin_t4")
        assert tx.execute(
            "SELECT component, version FROM schema_migrations ORDER BY component, version"
        ) == [("live", CORE.version), ("test-legacy", 1), ("test-legacy", 2)]


def test_events_use_the_registry(store) -> None:
    from layers.events.schema import EVENTS, EVENTS_SCHEMA_VERSION
    from layers.events.store import migrate_events

    assert component("events") is EVENTS
    assert migrate_events(store) == EVENTS_SCHEMA_VERSION == store.schema_version("events")
    with store.transaction() as tx:
        assert not store._has_table(tx, "events_schema_version")  # no table of its own


def test_deptlayers_use_the_registry(store) -> None:
    from layers.deptlayers.schema import DEPTLAYERS, DEPTLAYERS_SCHEMA_VERSION
    from layers.deptlayers.store import DeptLayers

    DeptLayers(store)  # migrates its tables
    assert component("deptlayers") is DEPTLAYERS
    assert store.schema_version("deptlayers") == DEPTLAYERS_SCHEMA_VERSION
    with store.transaction() as tx:
        assert not store._has_table(tx, "deptlayers_schema_version")


def test_deptlayers_store_of_the_first_release_is_adopted(store) -> None:
    from layers.deptlayers.schema import DEPTLAYERS, DEPTLAYERS_MIGRATIONS

    with store.transaction(write=True) as tx:  # as the first release's own migrator left it
        for stmt in DEPTLAYERS_MIGRATIONS[0][1](store.dialect):
            tx.execute(stmt)
        tx.execute("CREATE TABLE deptlayers_schema_version (version INTEGER NOT NULL)")
        tx.execute("INSERT INTO deptlayers_schema_version (version) VALUES (1)")
        tx.execute(
            "INSERT INTO dept_layers (name, department, style, version, feature_count,"
            " geometry_types, fields, created, updated) VALUES (?, ?, ?, 1, 0, ?, ?, 0, 0)",
            ["消火栓", "water", "{}", "[]", "[]"],
        )
    # adopted at 1: migration 1 is not run again (its CREATE TABLE would fail)
    assert store.migrate(DEPTLAYERS) == DEPTLAYERS.version
    with store.transaction() as tx:
        assert tx.scalar("SELECT name FROM dept_layers") == "消火栓"  # the data is kept
        assert tx.execute(
            "SELECT version FROM schema_migrations WHERE component = 'deptlayers'"
        ) == [(1,)]
