"""Knowledge-base snapshots: how every replica serves the same knowledge base and gets
its updates without a restart.

One job builds the store (``kb import`` or ``kb sync``, into a file of its own) and
publishes it (``kb publish DIR``): a copy made with SQLite's online backup, complete
and flushed to disk under a temporary name before it is renamed to
``kb-<time>-<digest>.db``; then ``CURRENT`` is rewritten the same way to name it. A
rename is atomic, so a reader sees the old snapshot or the new one, never half of one.

A replica whose ``ASSIST_KB_PATH`` is that directory serves the snapshot ``CURRENT``
names, opened read-only and immutable. It reads ``CURRENT`` every
``ASSIST_KB_POLL_S``; when it names another snapshot, the replica opens that one and
loads its vectors and vocabulary off the event loop, and only then switches: each
search runs on the one snapshot it started with. A snapshot that cannot be opened,
or whose vectors another embedder made, is refused with a warning (once per
snapshot; it is tried again at each poll, quietly) and the replica keeps the one it
has. A replica opens every connection to its snapshot when it takes it up
(:class:`ServedSnapshot`), so it keeps serving it after ``kb publish`` has pruned
the file; ``/readyz`` names the snapshot each replica serves, and says ``degraded``
once its file is gone from the directory.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import anyio

from server.errors import SnapshotError
from server.kb.bm25 import attach
from server.kb.embedders.base import Embedder
from server.kb.store import KnowledgeBase

log = logging.getLogger("assist_panel.knowledge")

CURRENT = "CURRENT"
_NAME = re.compile(r"^kb-\d{8}T\d{6}Z-[0-9a-f]{12}\.db$")


#: Snapshots a publication keeps, at least: the new one and the one it replaces, which
#: replicas serve until their next poll. A replica that has taken a snapshot up keeps
#: reading it once deleted (ServedSnapshot); one starting up opens CURRENT's by name,
#: so the current one and the one before are never deleted by the next publication.
MIN_KEEP = 2
#: Connections a served snapshot opens when it is taken up, shared by every thread
#: that reads it: as many as retrieval's search threads (4), so searches seldom share.
CONNECTIONS = 4


def publish(source: Path, directory: Path, *, keep: int = 3) -> str:
    """Copy the store ``source`` into ``directory`` as a new snapshot, make it the current
    one, and delete all but the ``keep`` newest (at least ``MIN_KEEP``); its file name."""
    if keep < MIN_KEEP:
        raise SnapshotError(f"keep {keep}: at least {MIN_KEEP} snapshots must be kept "
                            "(the new one and the one replicas serve until they poll)")
    if not source.is_file():
        raise SnapshotError(f"{source}: no knowledge-base file there")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    temporary = directory / f".kb-{stamp}-{os.getpid()}.tmp"
    try:
        with sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True) as reader:
            if not reader.execute("SELECT count(*) FROM sqlite_master WHERE name = 'articles'"
                                  ).fetchone()[0]:
                raise SnapshotError(f"{source}: not a knowledge-base store")
            writer = sqlite3.connect(temporary)
            try:
                reader.backup(writer)  # a consistent copy, even while an import writes
                # One self-contained file: no write-ahead log beside it.
                writer.execute("PRAGMA journal_mode=DELETE")
            finally:
                writer.close()
        digest = _digest(temporary)
        name = f"kb-{stamp}-{digest[:12]}.db"
        _flush(temporary)
        os.replace(temporary, directory / name)
        _write_atomically(directory / CURRENT, name + "\n")
    except sqlite3.Error as exc:
        raise SnapshotError(f"{source}: cannot be copied ({exc})") from None
    finally:
        temporary.unlink(missing_ok=True)
    _prune(directory, name, keep)
    return name


def current(directory: Path) -> Path | None:
    """The snapshot ``CURRENT`` names (None when nothing is published yet)."""
    try:
        name = (directory / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _NAME.match(name):
        raise SnapshotError(f"{directory / CURRENT} names no snapshot: {name[:80]!r}")
    return directory / name


def check(directory: Path) -> Path:
    """The current snapshot of ``directory``, after making sure SQLite can read it.

    Raises ``SnapshotError`` when nothing is published yet or the file is unreadable.
    """
    path = current(directory)
    if path is None:
        raise SnapshotError(f"{directory}: no knowledge-base snapshot published yet "
                            "(assist-panel kb publish)")
    kb = KnowledgeBase(path, None, snapshot=True)
    try:
        kb.count()
    except sqlite3.Error as exc:
        raise SnapshotError(f"{path.name}: cannot be read ({exc})") from None
    finally:
        kb.close()
    return path


class ServedSnapshot(KnowledgeBase):
    """A snapshot as a replica serves it: every SQLite connection opened up front and
    shared by the threads that read it, so it stays readable once its file is deleted.

    Why: ``kb publish`` prunes old snapshots whatever replicas serve, and a replica that
    refuses the newer ones serves a deleted file. ``KnowledgeBase`` opens a connection
    by name in each new thread (retrieval's worker threads come and go), and that
    failed "unable to open database file". Opening through a descriptor held open
    (``/proc/self/fd/N``) does not help: SQLite resolves symbolic links in each path it
    opens, back to the deleted name. An open connection holds its own descriptor, so
    the file's pages stay readable as long as it lives. Sharing them between threads
    is safe: Python's ``sqlite3`` is built serialized (``threadsafety`` 3), and nothing
    ever writes a snapshot. They close when the snapshot is no longer referenced.
    """

    def __init__(self, path: Path, embedder: Embedder | None, *,
                 connections: int = CONNECTIONS) -> None:
        super().__init__(path, embedder, snapshot=True)
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        self._pool: list[sqlite3.Connection] = []
        self._turn = itertools.count()
        # Closed as the last reference to the snapshot goes (a switch, once the searches
        # on it end): a connection object lives on until the collector's next full pass
        # (its statement cache refers back to it), and with it the deleted file, open.
        self._closer = weakref.finalize(self, _close_all, self._pool)
        try:
            for _ in range(max(1, connections)):
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._pool.append(conn)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # readable now
                attach(conn)
        except sqlite3.Error:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        # Each thread keeps to one of the connections opened up front, in turn.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            pool = self._pool
            if not pool:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            conn = self._local.conn = pool[next(self._turn) % len(pool)]
        return conn

    def close(self) -> None:
        """Close every connection (each thread's): the snapshot is read no more."""
        self._closer()


def _close_all(pool: list[sqlite3.Connection]) -> None:
    while pool:
        pool.pop().close()


def open_snapshot(path: Path, embedder: Embedder | None) -> KnowledgeBase:
    """A snapshot ready to search (vectors and vocabulary loaded), every connection it
    will use already open (:class:`ServedSnapshot`); blocking."""
    try:
        kb = ServedSnapshot(path, embedder)
    except sqlite3.Error as exc:
        raise SnapshotError(f"{path.name}: cannot be read ({exc})") from None
    try:
        if kb.needs_reindex():
            state = kb.index_state()
            raise SnapshotError(
                f"{path.name} was indexed with {state.get('embedder') or 'no embedder'} "
                f"(passages {state.get('passages')}); this server embeds with "
                f"{embedder.name if embedder else 'no embedder'}: publish one built with it")
        kb.warm()
    except sqlite3.Error as exc:
        kb.close()
        raise SnapshotError(f"{path.name}: cannot be read ({exc})") from None
    except BaseException:  # refused: its connections close now, not when collected
        kb.close()
        raise
    return kb


class LiveKnowledge:
    """The knowledge base this process serves now, and which one it is: ``version`` is
    the snapshot's file name in ``directory`` (or the store's name, without one)."""

    def __init__(self, kb: KnowledgeBase, version: str, directory: Path | None = None
                 ) -> None:
        self.kb = kb
        self.version = version
        self.directory = directory

    def file_gone(self) -> bool:
        """Whether the snapshot served is no longer in its directory (pruned while this
        replica refused the newer ones): still served, but a restart would not find
        it. One ``stat``; blocking (a network volume may be slow to answer)."""
        return self.directory is not None and not (self.directory / self.version).exists()


#: Snapshot names whose refusal is remembered, so that each is logged once.
_REFUSALS_KEPT = 64


async def follow(directory: Path, live: LiveKnowledge, embedder: Embedder | None,
                 poll_s: float, *, on_switch: Callable[[KnowledgeBase], None]) -> None:
    """Switch ``live`` to the current snapshot whenever ``CURRENT`` changes, telling
    ``on_switch`` first (the retriever); runs until cancelled.

    A snapshot refused is tried again at each poll (a file still arriving on a synced
    volume, or fixed in place, is taken then), but its refusal is logged once.
    """
    refused: dict[str, None] = {}  # names in the order refused: a bounded ordered set
    while True:
        await anyio.sleep(poll_s)
        name: str | None = None
        try:
            path = current(directory)
            if path is None or path.name == live.version:
                continue
            name = path.name
            kb = await anyio.to_thread.run_sync(open_snapshot, path, embedder)
        except (SnapshotError, OSError) as exc:
            if _first_refusal(refused, name or f"{type(exc).__name__}: {exc}"):
                log.warning("knowledge-base snapshot not taken, keeping %s: %s",
                            live.version, exc)
            continue
        except Exception:  # a bug: still never the end of following (nobody awaits this)
            if _first_refusal(refused, name or "?"):
                log.exception("knowledge-base snapshot not taken, keeping %s", live.version)
            continue
        on_switch(kb)
        live.kb, live.version = kb, path.name
        refused.pop(path.name, None)
        log.info("serving knowledge-base snapshot %s", path.name)


def _first_refusal(refused: dict[str, None], name: str) -> bool:
    """Note ``name`` refused; whether it was not already."""
    if name in refused:
        return False
    refused[name] = None
    if len(refused) > _REFUSALS_KEPT:
        del refused[next(iter(refused))]
    return True


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _flush(path: Path) -> None:
    with path.open("rb+") as file:
        os.fsync(file.fileno())


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _prune(directory: Path, keep_name: str, keep: int) -> None:
    # The current one and the newest others up to ``keep`` in all: the one just
    # replaced stays for the replicas still serving it until their next poll. Older
    # ones go even if a replica that refused the newer ones serves one: it reads it
    # through the connections it holds (ServedSnapshot), and /readyz says degraded.
    others = sorted((p for p in directory.iterdir()
                     if _NAME.match(p.name) and p.name != keep_name),
                    key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    for old in others[max(keep - 1, 0):]:
        old.unlink(missing_ok=True)
