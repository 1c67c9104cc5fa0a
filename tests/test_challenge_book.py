"""Liveness challenges kept in the database (issue 14 item 3): a prompt issued by one server
process is answered to another (several ``facegate serve`` behind one address), once, in
time, for its own scope only; a page asking for prompts in a loop replaces its own oldest."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from store_support import *  # noqa: F403

from facegate.access.challenge import MAX_OPEN_PER_SCOPE, PROMPTS, StoreChallengeBook
from facegate.store.db import Store
from facegate.store.models import LivenessChallenge


def _two_processes(db_url: str) -> tuple[Store, Store]:
    """Two stores with their own engines and pools, as two server processes have."""
    return Store(db_url), Store(db_url)


def _rows(store: Store) -> list[LivenessChallenge]:
    with store.session() as s:
        return list(s.scalars(select(LivenessChallenge)))


def test_issued_by_one_process_answered_once_at_another(db_url):
    a_store, b_store = _two_processes(db_url)
    try:
        a, b = StoreChallengeBook(a_store), StoreChallengeBook(b_store)
        c = a.issue("ap-1")
        assert c.prompt in PROMPTS
        # Only the nonce's hash is kept.
        (row,) = _rows(a_store)
        assert c.nonce not in (row.nonce_hash, row.scope, row.prompt)
        taken, why = b.take(c.nonce, "ap-1")
        assert why == "ok" and taken is not None and taken.prompt == c.prompt
        # Used once, whichever process is asked next.
        assert a.take(c.nonce, "ap-1") == (None, "expired")
        assert b.take(c.nonce, "ap-1") == (None, "expired")
        assert _rows(a_store) == []
        # Another scope's nonce does not answer (and is spent by the try).
        d = a.issue("enroll:p-1")
        assert b.take(d.nonce, "ap-1") == (None, "expired")
        assert a.take(d.nonce, "enroll:p-1") == (None, "expired")
        # No nonce: nothing was asked; an unknown one: refused.
        assert b.take(None, "ap-1") == (None, "not_done")
        assert b.take("made-up", "ap-1") == (None, "expired")
    finally:
        a_store.dispose()
        b_store.dispose()


def test_late_answers_are_refused_and_expired_rows_go(db_url):
    store = Store(db_url)
    try:
        late = StoreChallengeBook(store, ttl_s=0.0)
        c = late.issue("ap-1")
        assert late.take(c.nonce, "ap-1") == (None, "expired")
        for _ in range(3):
            late.issue("ap-2")
        # Issuing sweeps what has expired: at most the newest one is left.
        StoreChallengeBook(store).issue("ap-3")
        assert {r.scope for r in _rows(store)} == {"ap-3"}
    finally:
        store.dispose()


def test_a_page_asking_in_a_loop_replaces_only_its_own_oldest(db_url):
    store = Store(db_url)
    try:
        book = StoreChallengeBook(store)
        other = book.issue("enroll:p-2")
        issued = [book.issue("ap-kiosk") for _ in range(MAX_OPEN_PER_SCOPE + 7)]
        with store.session() as s:
            n = s.scalar(
                select(func.count())
                .select_from(LivenessChallenge)
                .where(LivenessChallenge.scope == "ap-kiosk")
            )
        assert n == MAX_OPEN_PER_SCOPE
        assert book.take(issued[-1].nonce, "ap-kiosk")[1] == "ok"
        assert book.take(issued[0].nonce, "ap-kiosk") == (None, "expired")
        assert book.take(other.nonce, "enroll:p-2")[1] == "ok"  # another scope untouched
    finally:
        store.dispose()


def _race(books: list[StoreChallengeBook], nonce: str) -> list[str]:
    results: list[str] = []
    start = threading.Barrier(len(books))

    def answer(book: StoreChallengeBook) -> None:
        start.wait()
        try:
            results.append(book.take(nonce, "ap-1")[1])
        except Exception as exc:  # noqa: BLE001 - a lock timeout is a refusal too
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=answer, args=(b,)) for b in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_processes_racing_for_one_nonce_one_wins(db_url):
    a_store, b_store = _two_processes(db_url)
    try:
        books = [StoreChallengeBook(a_store), StoreChallengeBook(b_store)]
        for _ in range(10):
            results = _race(books, books[0].issue("ap-1").nonce)
            assert results.count("ok") == 1, results
    finally:
        a_store.dispose()
        b_store.dispose()
