"""What ``kb sync`` remembers between runs, and the lock that keeps runs apart.

The ledger is a table of the knowledge-base file itself (its own connection):
per Genesys knowledge base, each synced document's id, its article id and the
version key it was synced at. The lock is ``fcntl.flock`` on ``<db>.sync.lock``
(taken without waiting; released by the OS if the process dies). The lock file
stays on disk: removing it could let two runs lock different files.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from server.errors import SyncBusy

#: The version key of a document being written: never equal to a real key, so an
#: entry left by a crash is fetched again (or removed) by the next run.
PENDING = "pending"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS genesys_sync_documents (
    knowledge_base_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    article_id TEXT NOT NULL,
    version_key TEXT NOT NULL,
    synced_at REAL NOT NULL,
    PRIMARY KEY (knowledge_base_id, document_id)
)
"""


@dataclass(frozen=True)
class LedgerEntry:
    """A synced document: its article and the version key it was synced at."""

    article_id: str
    version_key: str


class SyncLedger:
    """The ledger table of one knowledge-base file; use as a context manager."""

    def __init__(self, db_path: Path) -> None:
        """Open (and create if needed) the ledger in ``db_path``."""
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(db_path, timeout=30)
        with self._conn:
            self._conn.execute(_SCHEMA)

    def __enter__(self) -> SyncLedger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the ledger's connection."""
        self._conn.close()

    def documents(self, knowledge_base_id: str) -> dict[str, LedgerEntry]:
        """The synced documents of a knowledge base, by document id."""
        rows = self._conn.execute(
            "SELECT document_id, article_id, version_key FROM genesys_sync_documents"
            " WHERE knowledge_base_id = ?",
            (knowledge_base_id,),
        )
        return {doc_id: LedgerEntry(article_id, key) for doc_id, article_id, key in rows}

    def record(self, knowledge_base_id: str, document_id: str, article_id: str,
               key: str) -> None:
        """Remember a document at a version key (committed at once)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO genesys_sync_documents (knowledge_base_id, document_id,"
                " article_id, version_key, synced_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (knowledge_base_id, document_id) DO UPDATE SET"
                " article_id = excluded.article_id, version_key = excluded.version_key,"
                " synced_at = excluded.synced_at",
                (knowledge_base_id, document_id, article_id, key, time.time()),
            )

    def forget(self, knowledge_base_id: str, document_id: str) -> None:
        """Forget a document (committed at once)."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM genesys_sync_documents"
                " WHERE knowledge_base_id = ? AND document_id = ?",
                (knowledge_base_id, document_id),
            )


class SyncLock:
    """An exclusive, non-blocking lock on ``<db>.sync.lock``; use as a context manager.

    Entering raises :class:`SyncBusy` at once when another sync (any process, or
    another run in this one) holds it.
    """

    def __init__(self, db_path: Path) -> None:
        """The lock of the knowledge-base file ``db_path``."""
        self.path = db_path.with_name(db_path.name + ".sync.lock")
        self._file: IO[str] | None = None

    def __enter__(self) -> SyncLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip()
            file.close()
            who = f" (process {holder})" if holder.isdigit() else ""
            raise SyncBusy(
                f"another kb sync{who} is already running on this knowledge base "
                f"({self.path}); wait for it to finish, or stop it, then run again"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._file = file
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
