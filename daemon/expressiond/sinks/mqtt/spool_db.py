"""The spool's SQLite file: opening it privately (0700 dir, 0600 file), WAL with
``synchronous=FULL``, moving a corrupt file aside, and its tables:

- ``spool``: the unacknowledged messages, in id order (spool.py);
- ``tracks``: per camera and track, the last start/change event payload of every track that
  has no end event yet, changed in the same transaction as the event rows, so that the next
  start can end the tracks a killed run left open;
- ``meta``: ``max_track``, the highest track id ever announced, so that track ids are never
  reused after a restart.

Thread: the caller's (the spool calls everything here under its lock).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from expressiond.errors import ConfigError

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tracks (camera TEXT NOT NULL, track INTEGER NOT NULL, "
    "payload BLOB NOT NULL, PRIMARY KEY (camera, track))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_SQLITE_IOERR, _SQLITE_FULL = 10, 13


class TrackChange(NamedTuple):
    """``payload`` set: the track is open with this last event; None: the track ended."""

    camera: str
    track: int
    payload: bytes | None


def open_db(p: Path, retry: bool = True) -> sqlite3.Connection:
    """The spool database at ``p``, created private. Raises sqlite3.DatabaseError for disk
    trouble (the caller keeps events in memory), ConfigError for anything an operator must fix."""
    try:
        if not p.parent.exists():
            p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(p.parent, 0o700)
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        if p.stat().st_mode & 0o077:
            os.chmod(p, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the MQTT spool {p}: {exc.strerror}; check [mqtt] spool_path "
            "and the state directory's owner and permissions"
        ) from None
    try:
        return _connect(p)
    except sqlite3.DatabaseError as exc:
        if is_disk_problem(exc):
            raise
        corrupt = "not a database" in str(exc) or "malformed" in str(exc)
        if not (corrupt and retry):
            raise ConfigError(f"cannot open the MQTT spool {p}: {exc}") from None
    aside = p.with_name(f"{p.name}.corrupt-{int(time.time())}")
    log.error("spool %s is corrupt; moved it to %s and started an empty spool", p, aside)
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(p) + suffix)
        if src.exists():
            os.replace(src, Path(str(aside) + suffix))
    return open_db(p, retry=False)


def _connect(p: Path) -> sqlite3.Connection:
    db = sqlite3.connect(p, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("spool %s: WAL journal unavailable (got %s)", p, mode)
        db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("SELECT COUNT(*) FROM spool").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def apply_tracks(db: sqlite3.Connection, changes: Iterable[TrackChange]) -> None:
    """Record opened/changed and ended tracks and raise ``max_track`` (inside the caller's
    transaction)."""
    top = 0
    for change in changes:
        top = max(top, change.track)
        if change.payload is None:
            db.execute("DELETE FROM tracks WHERE camera = ? AND track = ?", (change.camera, change.track))
        else:
            db.execute(
                "INSERT OR REPLACE INTO tracks (camera, track, payload) VALUES (?, ?, ?)",
                (change.camera, change.track, change.payload),
            )
    if top:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('max_track', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
            (top,),
        )


def open_tracks(db: sqlite3.Connection) -> list[TrackChange]:
    """Tracks without an end event, by camera and track id."""
    rows = db.execute("SELECT camera, track, payload FROM tracks ORDER BY camera, track")
    return [TrackChange(c, int(t), bytes(p)) for c, t, p in rows]


def max_track(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'max_track'").fetchone()
    return int(row[0]) if row else 0


def is_disk_problem(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text
