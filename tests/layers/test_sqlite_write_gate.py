"""The SQLite live store's writers in one process queue on a lock of the store's, not in
SQLite's busy handler (which retries by sleeping, so a commit that met another writer
went on sleeping long after the write lock was free)."""

from __future__ import annotations

import threading
import time

from layers.store import open_store


def test_a_second_writer_begins_only_after_the_first_commits(tmp_path):
    store = open_store(tmp_path / "live.sqlite")
    try:
        order: list[str] = []
        lock = threading.Lock()

        def note(sql: str) -> None:
            if sql.split()[0] in ("BEGIN", "COMMIT"):
                with lock:
                    order.append(f"{threading.current_thread().name} {sql.split()[0]}")

        inside = threading.Event()

        def first() -> None:
            with store.transaction(write=True) as tx:
                inside.set()
                time.sleep(0.3)  # the second writer arrives meanwhile
                tx.execute("SELECT 1")

        def second() -> None:
            inside.wait(10)
            with store.transaction(write=True) as tx:
                tx.execute("SELECT 1")

        for conn in _two_connections(store):
            conn.set_trace_callback(note)
        ta = threading.Thread(target=first, name="a")
        ta.start()
        inside.wait(10)
        tb = threading.Thread(target=second, name="b")
        tb.start()
        ta.join(10)
        tb.join(10)
        # SQLite's busy handler would show "b BEGIN" before "a COMMIT"
        assert order == ["a BEGIN", "a COMMIT", "b BEGIN", "b COMMIT"]
    finally:
        store.close()


def _two_connections(store) -> list:
    """Two pooled connections (the writers' ones), made by two overlapping reads."""
    both = threading.Barrier(2)
    conns = []

    def read() -> None:
        with store.transaction() as tx:
            conns.append(tx.conn)
            both.wait(10)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(c) for c in conns}) == 2
    return conns


def test_a_writer_that_waits_too_long_gets_a_clear_error(tmp_path, monkeypatch):
    import pytest

    import layers.store.sqlite as sqlite_store
    from cim.errors import DatasetIOError

    monkeypatch.setattr(sqlite_store, "_WRITE_WAIT_S", 0.2)
    store = open_store(tmp_path / "live.sqlite")
    try:
        inside, done = threading.Event(), threading.Event()

        def holder() -> None:
            with store.transaction(write=True):
                inside.set()
                done.wait(10)

        t = threading.Thread(target=holder)
        t.start()
        inside.wait(10)
        with pytest.raises(DatasetIOError, match="busy"), store.transaction(write=True):
            pass
        done.set()
        t.join(10)
        with store.transaction(write=True) as tx:  # the store still works afterwards
            tx.execute("SELECT 1")
    finally:
        store.close()
