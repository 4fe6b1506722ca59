"""The live store: :func:`open_store` picks SQLite or PostgreSQL from ``[live] store``."""

from __future__ import annotations

from layers.config import LiveConfig, is_postgres_url
from layers.store.base import Department, InsertResult, ObservationRow, Store, Tx
from layers.store.batch import ObservationBatch

__all__ = [
    "Department",
    "InsertResult",
    "ObservationBatch",
    "ObservationRow",
    "Store",
    "Tx",
    "open_store",
]


def open_store(where: str | LiveConfig, migrate: bool = True) -> Store:
    """Open the live store named by a ``[live]`` config or a store string.

    Parameters
    ----------
    where : str or LiveConfig
        A SQLite file path or a ``postgresql://`` URL, or the resolved config.
    migrate : bool
        Bring the schema up to date (creating the store when empty).

    Returns
    -------
    Store
    """
    store_str = where.store if isinstance(where, LiveConfig) else str(where)
    store: Store
    if is_postgres_url(store_str):
        from layers.store.postgres import PostgresStore

        store = PostgresStore(store_str)
    else:
        from layers.store.sqlite import SqliteStore

        store = SqliteStore(store_str)
    if migrate:
        store.migrate()
    return store
