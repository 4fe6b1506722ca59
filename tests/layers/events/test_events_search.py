"""The list's free-text search (``q=``) through its index, on SQLite and PostgreSQL.

SQLite answers it from ``events_fts`` (FTS5 trigrams, two characters by the indexed
trigrams' prefix), PostgreSQL from pg_trgm's GIN indexes on ``events_text``; either
way the cases found, the total and the counts by state must be exactly those of the
plain ``LIKE '%…%'`` scan over description, address and building (the search's
meaning), for any text: Chinese, ``%``, ``_``, quotes, backslashes, ASCII in mixed
case, letters whose case only Unicode folds, one, two, three characters and more.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata

import pytest

from layers.events import store as store_module
from layers.events.config import events_config
from layers.events.model import Actor
from layers.events.schema import EVENTS_MIGRATIONS, EVENTS_SCHEMA_VERSION, FTS_END
from layers.events.store import EventFilter, EventStore, _caseless, migrate_events
from layers.events.worktime import CST
from layers.store.schema import Component

OP = Actor("li", "operator")
BOSS = Actor("boss", "admin")
AT = dt.datetime(2026, 11, 25, 9, tzinfo=CST)
#: what the texts are made of: Chinese, ASCII in both cases, LIKE's and FTS5's special
#: characters, letters only Unicode folds (Ä/ä, the Kelvin sign and k, long s and s)
ALPHABET = list("井盖破损路灯不亮中山号巡查") + list("AaBbKk12 %_\\'\"*-") + [
    "Ä", "ä", "\u212a", "\u017f", "s", "é", "É", "１",
]  # fmt: skip
WORDS = ["井盖", "井盖破损", "路灯不亮", "中山路12号", "B000123", "b000123", "100%", "a_b",
         'say "hi"', "c:\\tmp", "It's", "KELVIN", "Straße"]  # fmt: skip


def _text(rng: random.Random) -> str:
    parts = [rng.choice(WORDS) if rng.random() < 0.3 else "" for _ in range(2)]
    noise = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))
    return parts[0] + noise + parts[1]


@pytest.fixture
def events(store) -> EventStore:
    """About 150 cases of random texts (some without address or building)."""
    es = EventStore(store, events_config(None))
    _fill(es, random.Random(5), 150)
    return es


def _fill(es: EventStore, rng: random.Random, n: int) -> None:
    with es.store.transaction(write=True):  # the reports join it: one commit
        for _ in range(n):
            es.report(subcategory="SJ0102", source="hotline", description=_text(rng),
                      address=_text(rng) if rng.random() < 0.7 else None,
                      building=_text(rng) if rng.random() < 0.5 else None,
                      reporter=OP, at=AT, lon=112.5, lat=37.8)  # fmt: skip


def _scan(es: EventStore, text: str) -> tuple[list[int], dict[str, int]]:
    """The cases a plain LIKE scan finds (newest first) and their counts by state."""
    like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    cond = " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in ("description", "address", "building"))
    with es.store.transaction() as tx:
        ids = [r[0] for r in tx.execute(f"SELECT id FROM events WHERE {cond} ORDER BY id DESC",
                                        [like] * 3)]  # fmt: skip
        counts = dict(tx.execute(f"SELECT state, count(*) FROM events WHERE {cond} GROUP BY state",
                                 [like] * 3))  # fmt: skip
    return ids, {str(k): int(v) for k, v in counts.items()}


def _queries(es: EventStore, rng: random.Random) -> list[str]:
    """Substrings of the stored texts (1, 2, 3+ characters, case flipped at random),
    texts of the alphabet, the words, and a few that match nothing."""
    with es.store.transaction() as tx:
        texts = [t for row in tx.execute("SELECT description, address, building FROM events")
                 for t in row if t]  # fmt: skip
    out = [*WORDS, "井", "盖", "%", "_", "\\", '"', "'", "k", "K", "s", "Ä", "ä", "zzz",
                         '""', "*", "井盖*", "NEAR(a b)", "a OR b", "井" + FTS_END,
                         FTS_END]  # fmt: skip
    for _ in range(120):
        t = rng.choice(texts)
        n = rng.choice([1, 2, 2, 3, 4, 6])
        i = rng.randint(0, max(0, len(t) - n))
        q = t[i : i + n]
        if rng.random() < 0.3:
            q = q.swapcase()
        out.append(q)
    out += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))) for _ in range(60)]
    return [q for q in dict.fromkeys(out) if (q.strip() == q and q) or FTS_END in q]


def test_search_finds_exactly_what_a_like_scan_finds(events: EventStore) -> None:
    rng = random.Random(11)
    if events.store.dialect == "sqlite":  # the index is there and answers
        assert events._has_index()
        assert events._match("井盖") is not None and events._match("井盖破损")[2] is False  # type: ignore[index]
        assert events._match("B000123")[2] is True  # type: ignore[index]  # letters: rechecked
    checked = 0
    for q in _queries(events, rng):
        ids, counts = _scan(events, q)
        page = events.list_page(EventFilter(text=q, limit=1000))
        assert [e.id for e in page.items] == ids, q
        assert page.total == len(ids) and page.counts == counts, q
        marks = events.markers(EventFilter(text=q, limit=1000, newest_first=False))
        assert [m[0] for m in marks.items] == ids[::-1], q
        checked += bool(ids)
    assert checked > 100  # most queries find something: the comparison means something
    # with other filters and a page further on
    page = events.list_page(EventFilter(text="井盖", states=["reported"], limit=3, offset=2))
    assert [e.id for e in page.items] == _scan(events, "井盖")[0][2:5]


@pytest.mark.parametrize("window", [50_000, 7])
def test_a_common_search_counts_its_newest_matches_only(
    events: EventStore, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``count_cap`` matches the total and counts are those of the newest matches
    (flagged ``capped``); the page itself is exact, and so is ``count_by_state``.
    PostgreSQL reads the matches in id windows: one, or many narrow ones."""
    monkeypatch.setattr(store_module, "PG_FIRST_WINDOW", window)
    for i in _scan(events, "")[0][::3]:  # two states, mixed along the ids
        events.transition(i, "file", BOSS)  # type: ignore[arg-type]
    for q in ("井盖", "井", "k", "井盖破"):  # two characters, one, a recheck's, three
        ids, counts = _scan(events, q)
        assert len(ids) > 12, q
        events.count_cap = 12
        page = events.list_page(EventFilter(text=q, limit=5))
        newest = _states(events, ids[:12])
        assert len(newest) == 2 and newest != counts, q
        assert page.capped and page.total == 12 and page.counts == newest, q
        assert [e.id for e in page.items] == ids[:5], q
        marks = events.markers(EventFilter(text=q, limit=5))
        assert marks.capped and marks.counts == newest, q
        state = next(iter(newest))
        page = events.list_page(EventFilter(text=q, states=[state], limit=5))
        assert page.capped and page.total == newest[state], q
        assert events.count_by_state(EventFilter(text=q)) == counts, q
        events.count_cap = len(ids)  # as many as it has: exact
        page = events.list_page(EventFilter(text=q, limit=5))
        assert not page.capped and page.total == len(ids) and page.counts == counts, q


def test_one_character_reads_the_index_unless_most_cases_hold_it(events: EventStore) -> None:
    rare = events.report(subcategory="SJ0102", source="hotline", description="龘", reporter=OP,
                         at=AT, lon=112.5, lat=37.8)  # fmt: skip
    if events.store.dialect == "postgresql":  # the characters' GIN index (migration 6)
        where, params = events._where(EventFilter(text="龘"), AT)
        with events.store.transaction() as tx:
            tx.execute("SET LOCAL enable_seqscan = off")
            plan = " ".join(r[0] for r in tx.execute(f"EXPLAIN SELECT id FROM events{where}",
                                                     params))  # fmt: skip
        assert "events_text_description_chars" in plan, plan
        assert [e.id for e in events.list_page(EventFilter(text="龘")).items] == [rare.id]
        return
    assert events._match("龘") is not None  # the index's terms: no scan for a rare one
    assert [e.id for e in events.list_page(EventFilter(text="龘")).items] == [rare.id]
    for _ in range(8):  # 柳: in a few cases
        events.report(subcategory="SJ0102", source="hotline", description="柳巷口", reporter=OP,
                      at=AT, lon=112.5, lat=37.8)  # fmt: skip
    n = len(_scan(events, "")[0])
    shares = {c: len(_scan(events, c)[0]) / n for c in "井盖破损路灯中山号巡查12柳"}
    dense = [c for c, share in shares.items() if share >= 0.3]
    sparse = [c for c, share in shares.items() if 0 < share < 0.2]
    assert dense and sparse, shares
    for c in dense + sparse:
        assert (events._match(c) is None) == (c in dense), (c, shares[c])
        page = events.list_page(EventFilter(text=c, limit=1000))
        assert [e.id for e in page.items] == _scan(events, c)[0], c


def _states(es: EventStore, ids: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in ids:
        state = es.get(i).state.value
        out[state] = out.get(state, 0) + 1
    return out


def test_index_follows_updates_deletes_and_transitions(events: EventStore) -> None:
    def found(q: str) -> list[int]:
        got = [e.id for e in events.list_page(EventFilter(text=q, limit=1000)).items]
        assert got == _scan(events, q)[0], q
        return got

    first = events.list_page(EventFilter(limit=1)).items[0].id
    with events.store.transaction(write=True) as tx:
        tx.execute("UPDATE events SET description = ?, address = NULL, building = ? "
                   "WHERE id = ?", ["雨水箅子堵塞", "楼X9", first])  # fmt: skip
    assert found("雨水箅子") == [first] and found("箅子") == [first] and found("X9") == [first]
    # a transition's UPDATE sets every column (the texts unchanged): still found once
    written = _text_row_version(events, first)
    events.transition(first, "file", BOSS)  # type: ignore[arg-type]
    assert found("雨水箅子") == [first]
    # ... and it leaves the indexed texts alone (PostgreSQL: events_text's row version)
    assert _text_row_version(events, first) == written
    with events.store.transaction(write=True) as tx:
        tx.execute("UPDATE events SET description = ? WHERE id = ?", ["已整改", first])
    assert found("雨水箅子") == [] and found("整改") == [first] and found("楼X9") == [first]
    with events.store.transaction(write=True) as tx:
        tx.execute("DELETE FROM event_audit WHERE event_id = ?", [first])
        tx.execute("DELETE FROM events WHERE id = ?", [first])
    assert found("整改") == [] and found("楼X9") == []
    if events.store.dialect == "sqlite":
        with events.store.transaction() as tx:  # the index's own consistency
            tx.execute("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")


def test_a_store_migrated_from_v4_finds_its_cases(store) -> None:
    v4 = Component("events", tuple(EVENTS_MIGRATIONS[:4]), "events_schema_version")
    assert store.migrate(v4) == 4
    es = EventStore(store, events_config(None), migrate=False)
    _fill(es, random.Random(3), 40)
    es.report(subcategory="SJ0102", source="hotline", description="检查井盖板断裂",
              address="平城市中山路12号", reporter=OP, at=AT, lon=112.5, lat=37.8)  # fmt: skip
    for q in ["井盖", "井盖板断裂"]:  # at v4, without the index: the scan
        page = es.list_page(EventFilter(text=q, limit=1000))
        assert [e.id for e in page.items] == _scan(es, q)[0]
    assert migrate_events(store) == EVENTS_SCHEMA_VERSION
    es = EventStore(store, events_config(None))
    for q in ["井盖板断裂", "井盖", "中山路12号", "12", "Straße", "%", "K"]:
        page = es.list_page(EventFilter(text=q, limit=1000))
        ids, counts = _scan(es, q)
        assert [e.id for e in page.items] == ids and page.counts == counts, q
    assert es.list_page(EventFilter(text="井盖板断裂")).total == 1
    if store.dialect == "sqlite":
        assert es._match("井盖板断裂") is not None
    else:
        with store.transaction() as tx:
            names = {r[0] for r in tx.execute("SELECT indexname FROM pg_indexes "
                                              "WHERE tablename = 'events_text'")}  # fmt: skip
        assert {f"events_text_{c}_{k}" for c in ("description", "address", "building")
                for k in ("trgm", "bigrams")} <= names  # fmt: skip


def _text_row_version(events: EventStore, event_id: int) -> object:
    """PostgreSQL: the transaction that last wrote the case's ``events_text`` row (None
    on SQLite, whose index skips unchanged texts in its trigger's WHEN)."""
    if events.store.dialect != "postgresql":
        return None
    with events.store.transaction() as tx:
        return tx.scalar("SELECT xmin::text FROM events_text WHERE id = ?", [event_id])


def test_caseless_characters_fold_to_themselves_and_nothing_folds_into_them(tmp_path) -> None:
    """What makes a search of caseless characters exact without a LIKE recheck, checked
    against the FTS5 trigram tokenizer itself over the Basic Multilingual Plane and the
    CJK extensions: a caseless character's trigram is itself, and no other character
    folds into a caseless one."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / "fold.sqlite")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(t, tokenize='trigram', content='')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    codes = [c for c in [*range(32, 0xD800), *range(0xE000, 0x10000), *range(0x20000, 0x2A6E0)]
             if unicodedata.category(chr(c)) != "Cn"]  # fmt: skip
    conn.executemany("INSERT INTO f (rowid, t) VALUES (?, ?)", [(c, chr(c) * 3) for c in codes])
    folded = dict(conn.execute("SELECT doc, term FROM v"))
    assert len(folded) > 100_000
    for code, term in folded.items():
        c = chr(code)
        assert len(term) == 3 and term == term[0] * 3
        if _caseless(c):
            assert term[0] == c, hex(code)
        if _caseless(term[0]):
            assert term[0] == c, hex(code)  # nothing else folds into a caseless character
