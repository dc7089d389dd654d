"""Knowledge-base snapshots: published whole or not at all, served read-only, and taken
up by every replica without a restart."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner

from server.app import create_app
from server.cli import main
from server.errors import SnapshotError
from server.kb import snapshots
from server.kb.embedders import WordLlamaEmbedder
from server.kb.importer import find_files, import_files
from server.kb.snapshots import CURRENT, LiveKnowledge, check, current, open_snapshot, publish
from server.kb.store import KnowledgeBase
from server.pipeline.context import SearchQuery
from server.pipeline.retrieval import HybridSearch
from tests.asgi import TestClient, asgi_client
from tests.checks import wait_until
from tests.factories import bearer, make_settings
from tests.serve_process import free_port, running_serve, serve_env

NEW_ARTICLE = """---
id: billing-paper-bills
title: Paper bills by post
url: https://help.brightwave.example/billing/paper-bills
---
# Paper bills by post

Paper bills cost $2 a month and arrive by the 5th of each month.
"""


@pytest.fixture
def source(tmp_path: Path, sample_kb_path: Path, embedder: WordLlamaEmbedder) -> Path:
    """A store of its own, as the publishing job's ``kb import`` leaves it (its index
    marked as made by this embedder)."""
    path = tmp_path / "build" / "kb.db"
    path.parent.mkdir()
    with sqlite3.connect(sample_kb_path) as reader, sqlite3.connect(path) as writer:
        reader.backup(writer)
    kb = KnowledgeBase(path, embedder)
    kb.reindex()
    kb.close()
    return path


def add_article(store: Path, embedder: WordLlamaEmbedder, tmp_path: Path) -> None:
    article = tmp_path / "paper-bills.md"
    article.write_text(NEW_ARTICLE)
    kb = KnowledgeBase(store, embedder)
    assert not import_files(kb, find_files([article])).errors
    kb.close()


def test_publish_makes_a_whole_snapshot_current(source: Path, tmp_path: Path,
                                                embedder: WordLlamaEmbedder) -> None:
    shared = tmp_path / "shared"
    name = publish(source, shared)
    assert current(shared) == shared / name
    assert sorted(p.name for p in shared.iterdir()) == sorted([CURRENT, name])  # no temp left
    kb = open_snapshot(shared / name, embedder)
    assert kb.count() == KnowledgeBase(source, embedder).count()
    assert kb.passages("billing-autopay")
    kb.close()
    # Read-only and immutable: reading it leaves no journal or lock files beside it.
    assert sorted(p.name for p in shared.iterdir()) == sorted([CURRENT, name])


def test_a_snapshot_reads_its_generation_once_and_a_live_store_once_a_search(
        source: Path, tmp_path: Path, embedder: WordLlamaEmbedder) -> None:
    """A snapshot is never written again, so its generation (what the in-memory index
    is checked against) is read once, not on every search as a live store must."""
    def reads(kb: KnowledgeBase) -> int:
        statements: list[str] = []
        kb._connect().set_trace_callback(statements.append)
        search = HybridSearch(kb)
        for text in ("restocking fee", "reset my password", "late fee"):
            assert search.search(SearchQuery.of(text), 3).sources
        return sum("FROM meta" in statement for statement in statements)

    snapshot = open_snapshot(tmp_path / "shared" / publish(source, tmp_path / "shared"),
                             embedder)
    assert reads(snapshot) <= 1
    assert reads(KnowledgeBase(source, embedder)) >= 3


def test_a_new_publication_replaces_current_and_old_ones_are_pruned(
        source: Path, tmp_path: Path, embedder: WordLlamaEmbedder) -> None:
    shared = tmp_path / "shared"
    first = publish(source, shared)
    add_article(source, embedder, tmp_path)
    second = publish(source, shared, keep=2)
    assert first != second and current(shared) == shared / second
    # The one replaced stays for the replicas serving it until their next poll.
    assert (shared / first).exists()
    late = tmp_path / "late-fees.md"
    late.write_text(NEW_ARTICLE.replace("billing-paper-bills", "billing-late-fees"))
    kb = KnowledgeBase(source, embedder)
    assert not import_files(kb, find_files([late])).errors
    kb.close()
    third = publish(source, shared, keep=2)
    assert {p.name for p in shared.glob("kb-*.db")} == {second, third}
    assert open_snapshot(shared / third, embedder).get("billing-paper-bills") is not None
    # Regression: --keep 1 deleted the snapshot every replica still served, and a
    # replica's next worker thread, opening it by name, could not.
    with pytest.raises(SnapshotError, match="at least 2"):
        publish(source, shared, keep=1)


def test_what_cannot_be_published_or_served_says_why(tmp_path: Path,
                                                     embedder: WordLlamaEmbedder) -> None:
    with pytest.raises(SnapshotError, match="no knowledge-base file"):
        publish(tmp_path / "missing.db", tmp_path / "shared")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(SnapshotError, match="not a knowledge-base store"):
        publish(other, tmp_path / "shared")
    (tmp_path / "shared").mkdir(exist_ok=True)
    (tmp_path / "shared" / CURRENT).write_text("../../etc/passwd\n")
    with pytest.raises(SnapshotError, match="names no snapshot"):
        current(tmp_path / "shared")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SnapshotError, match="no knowledge-base snapshot published yet"):
        check(empty)
    damaged = "kb-20261204T000000Z-0123456789ab.db"
    (tmp_path / "shared" / damaged).write_bytes(b"not sqlite at all " * 100)
    (tmp_path / "shared" / CURRENT).write_text(damaged + "\n")
    with pytest.raises(SnapshotError, match="cannot be read"):
        check(tmp_path / "shared")


def test_a_snapshot_made_with_another_embedder_is_refused(source: Path, tmp_path: Path
                                                          ) -> None:
    name = publish(source, tmp_path / "shared")
    with pytest.raises(SnapshotError, match="indexed with"):
        open_snapshot(tmp_path / "shared" / name, None)  # a server without vectors


def test_kb_publish_command(source: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["kb", "publish", str(tmp_path / "shared"),
                                       "--db", str(source)])
    assert result.exit_code == 0, result.output
    assert current(tmp_path / "shared") is not None
    assert f"to {tmp_path / 'shared'}" in result.output


# Two replicas on one snapshot directory ---------------------------------------------------

@pytest.fixture
def replicas(source: Path, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    shared = tmp_path / "shared"
    publish(source, shared)
    settings = make_settings(kb_path=shared, kb_poll_s=0.05)
    with asgi_client(create_app(settings)) as a, asgi_client(create_app(settings)) as b:
        yield a, b


def served(panel: TestClient) -> tuple[str, int]:
    body = panel.get("/readyz").json()
    return body["knowledgeBase"], body["articles"]


def test_every_replica_takes_up_a_new_snapshot_without_a_restart(
        replicas: tuple[TestClient, TestClient], source: Path, tmp_path: Path,
        embedder: WordLlamaEmbedder) -> None:
    a, b = replicas
    first = served(a)
    assert served(b) == first and first[0].startswith("kb-")
    add_article(source, embedder, tmp_path)
    name = publish(source, tmp_path / "shared")
    for replica in (a, b):
        wait_until(lambda replica=replica: served(replica)[0] == name,  # type: ignore[misc]
                   message="a replica kept the old snapshot")
        assert served(replica)[1] == first[1] + 1


def test_a_snapshot_that_cannot_be_read_is_not_taken(
        replicas: tuple[TestClient, TestClient], source: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    a, _ = replicas
    before = served(a)
    shared = tmp_path / "shared"
    broken = shared / "kb-20990101T000000Z-0123456789ab.db"
    broken.write_bytes(b"not a database" * 100)
    (shared / CURRENT).write_text(broken.name + "\n")
    wait_until(lambda: "snapshot not taken" in caplog.text,
               message="the broken snapshot was not looked at")
    assert served(a) == before  # still the last good one
    shutil.copy(shared / before[0], broken)  # fixed in place: taken at the next look
    wait_until(lambda: served(a)[0] == broken.name)


def test_two_server_processes_take_up_a_new_snapshot(source: Path, tmp_path: Path,
                                                     embedder: WordLlamaEmbedder) -> None:
    shared = tmp_path / "shared"
    first = publish(source, shared)
    servers = []
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            env = serve_env(free_port(), shared, "http://127.0.0.1:9", 5,
                            ASSIST_GENERATOR="extractive", ASSIST_KB_POLL_S="0.1")
            server = stack.enter_context(running_serve([], env))
            servers.append(server)
        for server in servers:
            server.wait_for("Uvicorn running on")
            assert httpx.get(f"{server.url}/readyz").json()["knowledgeBase"] == first
        add_article(source, embedder, tmp_path)
        second = publish(source, shared)
        for server in servers:
            wait_until(lambda server=server: httpx.get(  # type: ignore[misc]
                f"{server.url}/readyz").json()["knowledgeBase"] == second,
                message="a server process kept the old snapshot")
            server.wait_for(f"serving knowledge-base snapshot {second}")


@pytest.mark.anyio
async def test_an_unforeseen_error_taking_a_snapshot_up_does_not_end_the_following(
        source: Path, tmp_path: Path, embedder: WordLlamaEmbedder,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: only SnapshotError and OSError were caught; any other error ended the
    task nobody awaits, and the replica served its old snapshot for ever."""
    shared = tmp_path / "shared"
    first = publish(source, shared)
    live = snapshots.LiveKnowledge(open_snapshot(shared / first, embedder), first)
    add_article(source, embedder, tmp_path)
    second = publish(source, shared)
    calls: list[Path] = []
    real_open = snapshots.open_snapshot

    def flaky(path: Path, with_embedder: object) -> KnowledgeBase:
        calls.append(path)
        if len(calls) == 1:
            raise ValueError("a bug of ours")
        return real_open(path, embedder)

    monkeypatch.setattr(snapshots, "open_snapshot", flaky)
    switched = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(functools.partial(
            snapshots.follow, shared, live, embedder, 0.01, on_switch=lambda kb: switched.set()))
        with anyio.fail_after(10):
            await switched.wait()
        tasks.cancel_scope.cancel()
    assert live.version == second and len(calls) == 2
    assert "knowledge-base snapshot not taken" in caplog.text and "ValueError" in caplog.text


# A replica whose snapshot is pruned ---------------------------------------------------------

def mark(store: Path, n: int) -> None:
    """Make ``store`` differ from its last publication (another digest, so another name
    within the same second), without touching what it serves."""
    with contextlib.closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_marks (n INTEGER)")
        conn.execute("INSERT INTO test_marks VALUES (?)", (n,))


def refused_by_replicas(source: Path, tmp_path: Path) -> Path:
    """A store like ``source`` whose index says no embedder made it: replicas that embed
    refuse its snapshots."""
    bad = tmp_path / "bad" / "kb.db"
    bad.parent.mkdir()
    shutil.copy(source, bad)
    kb = KnowledgeBase(bad, None)
    kb.reindex()
    kb.close()
    return bad


def deleted_files_open(directory: Path) -> list[str]:
    """What this process holds open in ``directory`` that is no longer there (Linux)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)) and target.endswith(" (deleted)"):
                found.append(target)
    return found


def test_a_snapshot_deleted_while_served_is_still_read_by_new_threads(
        source: Path, tmp_path: Path, embedder: WordLlamaEmbedder) -> None:
    """Regression: a replica opened its snapshot again by name in each new worker
    thread; once ``kb publish`` had pruned the file (a replica refusing the newer ones
    serves it for ever), every search there failed "unable to open database file"."""
    shared = tmp_path / "shared"
    name = publish(source, shared)
    kb = open_snapshot(shared / name, embedder)
    (shared / name).unlink()  # as kb publish prunes it
    search = HybridSearch(kb)

    def in_a_new_thread(query: str) -> tuple[int, int]:
        return len(search.search(SearchQuery.of(query), 3).sources), kb.count()

    queries = ["restocking fee", "reset my password", "late fee", "refund"] * 4
    with ThreadPoolExecutor(8) as threads:  # made after the delete: new threads
        found = list(threads.map(in_a_new_thread, queries))
    assert all(sources and articles == found[0][1] > 0 for sources, articles in found)
    kb.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")
def test_a_replica_refusing_newer_snapshots_keeps_serving_its_own_once_pruned(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Regression: after --keep publications the replica's own snapshot was deleted;
    streams fell back (searches in new threads could not open it) while /readyz said
    ready; and the refusal was tried and logged at every poll for ever."""
    shared = tmp_path / "shared"
    first = publish(source, shared)
    bad = refused_by_replicas(source, tmp_path)
    tries: dict[str, int] = {}
    real_open = snapshots.open_snapshot

    def counted(path: Path, with_embedder: object) -> KnowledgeBase:
        tries[path.name] = tries.get(path.name, 0) + 1
        return real_open(path, with_embedder)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshots, "open_snapshot", counted)
    settings = make_settings(kb_path=shared, kb_poll_s=0.02, rate_limit_per_minute=0,
                             extractive_token_delay_ms=0)
    with asgi_client(create_app(settings)) as panel:
        articles = served(panel)[1]
        names = []
        for n in range(2):
            mark(bad, n)
            names.append(publish(bad, shared, keep=2))
            wait_until(lambda: tries.get(names[-1], 0) >= 1, message="never looked at")
        assert not (shared / first).exists()  # pruned: the replica still serves it
        wait_until(lambda: tries.get(names[-1], 0) >= 5, message="not tried again")
        ready = panel.get("/readyz").json()
        assert (ready["status"], ready["knowledgeBase"], ready["articles"]) == (
            "degraded", first, articles)
        assert ready["knowledgeBaseFile"] == "gone"
        refusals = [r for r in caplog.records if "snapshot not taken" in r.getMessage()]
        assert len(refusals) == 2  # once a snapshot, not once a poll
        # Searches in worker threads, new ones among them, read the deleted file.
        panel.app_state["pipeline"].retriever.inline_below_s = 0.0
        live = panel.app_state["knowledge"]
        counted_in_thread: list[int] = []
        thread = threading.Thread(target=lambda: counted_in_thread.append(live.kb.count()))
        thread.start()
        thread.join()
        assert counted_in_thread == [articles]
        conversation = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
        for _ in range(3):
            answer = panel.post("/api/assist/stream", headers=bearer(conversation), json={
                "conversationId": conversation, "trigger": "manual",
                "query": "how long does a refund take"})
            events = [line[7:] for line in answer.text.splitlines()
                      if line.startswith("event: ")]
            assert "fallback" not in events and events[-1] == "done", answer.text[-300:]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")
def test_a_replaced_snapshot_is_let_go_with_its_files(
        source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression: the app's start-up kept the first snapshot in a local name for the
    worker's life; after a few switches its file, deleted, was still held open."""
    caplog.set_level(logging.INFO, "assist_panel.knowledge")
    shared = tmp_path / "shared"
    publish(source, shared)
    with asgi_client(create_app(make_settings(kb_path=shared, kb_poll_s=0.02))) as panel:
        first = weakref.ref(panel.app_state["knowledge"].kb)
        for n in range(3):
            mark(source, n)
            name = publish(source, shared, keep=2)
            wait_until(lambda name=name: served(panel)[0] == name,  # type: ignore[misc]
                       message="the new snapshot was not taken")
        # No collection asked for: start-up's objects are frozen out of the collector,
        # so the snapshot must go as its last reference does.
        wait_until(lambda: first() is None, message="the first snapshot is still held")
        assert deleted_files_open(shared) == []


def test_a_shared_volume_that_cannot_be_read_leaves_the_replica_ready_but_degraded(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (from a review): the check for the served file ran in /readyz's one
    try, so an ESTALE or EIO from the shared volume made every replica "not ready" at
    once, though each still serves its snapshot from the connections it holds."""
    shared = tmp_path / "shared"
    name = publish(source, shared)
    settings = make_settings(kb_path=shared, rate_limit_per_minute=0)
    with asgi_client(create_app(settings)) as panel:
        def stale(self: LiveKnowledge) -> bool:
            raise OSError(116, "Stale file handle")

        monkeypatch.setattr(LiveKnowledge, "file_gone", stale)
        answer = panel.get("/readyz")
        assert answer.status_code == 200
        ready = answer.json()
        assert (ready["status"], ready["knowledgeBase"], ready["knowledgeBaseFile"]) == (
            "degraded", name, "gone")
