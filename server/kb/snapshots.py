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
or whose vectors another embedder made, is refused with a warning and the replica
keeps the one it has. ``/readyz`` names the snapshot each replica serves.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from server.errors import SnapshotError
from server.kb.embedders.base import Embedder
from server.kb.store import KnowledgeBase

log = logging.getLogger("assist_panel.knowledge")

CURRENT = "CURRENT"
_NAME = re.compile(r"^kb-\d{8}T\d{6}Z-[0-9a-f]{12}\.db$")


#: Snapshots a publication keeps, at least: the new one and the one it replaces, which
#: replicas serve until their next poll (a replica opens it again by name in each new
#: worker thread, so deleting it at once broke them).
MIN_KEEP = 2


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


def open_snapshot(path: Path, embedder: Embedder | None) -> KnowledgeBase:
    """A snapshot ready to search (vectors and vocabulary loaded); blocking."""
    kb = KnowledgeBase(path, embedder, snapshot=True)
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
    return kb


class LiveKnowledge:
    """The knowledge base this process serves now, and which one it is."""

    def __init__(self, kb: KnowledgeBase, version: str) -> None:
        self.kb = kb
        self.version = version


async def follow(directory: Path, live: LiveKnowledge, embedder: Embedder | None,
                 poll_s: float, *, on_switch: Callable[[KnowledgeBase], None]) -> None:
    """Switch ``live`` to the current snapshot whenever ``CURRENT`` changes, telling
    ``on_switch`` first (the retriever); runs until cancelled."""
    while True:
        await anyio.sleep(poll_s)
        try:
            path = current(directory)
            if path is None or path.name == live.version:
                continue
            kb = await anyio.to_thread.run_sync(open_snapshot, path, embedder)
        except (SnapshotError, OSError) as exc:
            log.warning("knowledge-base snapshot not taken, keeping %s: %s", live.version, exc)
            continue
        except Exception:  # a bug: still never the end of following (nobody awaits this)
            log.exception("knowledge-base snapshot not taken, keeping %s", live.version)
            continue
        on_switch(kb)
        live.kb, live.version = kb, path.name
        log.info("serving knowledge-base snapshot %s", path.name)


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
    # replaced stays for the replicas still serving it until their next poll.
    others = sorted((p for p in directory.iterdir()
                     if _NAME.match(p.name) and p.name != keep_name),
                    key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    for old in others[max(keep - 1, 0):]:
        old.unlink(missing_ok=True)
