"""The outgoing-message spool: an ordered, bounded, on-disk FIFO (SQLite, WAL).

An event is appended (and durably committed) before anything tries to publish it, and is
removed only when the broker acknowledged it, so a broker outage or a SIGKILL loses nothing.
``append_many`` stores the events of one tracker step, and the open-track changes they make
(spool_db.py), in one transaction: one fsync per step, however many events it made.

Durability: inserts commit with ``synchronous=FULL`` (the WAL is fsynced on every commit), so
an event survives a power cut, not only a crashed process; a NUC on a wall socket does lose
power. Removals commit with ``synchronous=NORMAL``: losing a removal in a power cut only means
that event is sent again, which QoS 1 consumers handle anyway (same event id).

Order: rows carry increasing ids from one counter; readers page through ``id > cursor``.

Bounds: at ``max_events`` the oldest rows are dropped and counted. When the disk refuses a
write (full, I/O error), events go to an in-memory tail instead (counted as ``unstored``,
not durable) and keep flowing; while that tail is not empty new events join it, so all
disk rows are always older than all memory rows and order holds. Once a second, an append
tries to move the whole tail to disk (same ids, one transaction): durability comes back as
soon as space does, not only when the broker has taken the tail. ``":memory:"`` keeps
everything in memory on purpose (no durability; benchmarks and tests).

Thread: appended to by the service's "events" thread, read and trimmed by "mqtt-publisher";
every access to the database is under the spool's lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from expressiond.errors import ConfigError
from expressiond.sinks.mqtt import spool_db
from expressiond.sinks.mqtt.spool_db import TrackChange, open_db

log = logging.getLogger(__name__)
MEMORY = ":memory:"
_WARN_EVERY_S = 60.0
_DISK_RETRY_S = 1.0


class SpoolRow(NamedTuple):
    id: int
    topic: str
    payload: bytes


class Spool:
    def __init__(self, path: str | os.PathLike[str], max_events: int):
        if max_events < 1:
            raise ConfigError("[mqtt] spool_max_events must be at least 1")
        self.path = str(path)
        self.max_events = int(max_events)
        self.durable = self.path != MEMORY
        self.dropped = 0  # removed unacknowledged because the spool was full
        self.unstored = 0  # could not be written to disk; held in memory only
        self._lock = threading.Lock()
        self._mem: dict[int, tuple[str, bytes]] = {}  # id -> (topic, payload), ascending ids
        self._undeleted: set[int] = set()  # acknowledged, but the disk refused the DELETE
        self._disk_depth = 0
        self._next_id = 1
        self._disk_failing = False
        self._disk_retry_at = 0.0
        self._last_drop_warning = float("-inf")
        self._dropped_since_warning = 0
        self._db: sqlite3.Connection | None = None
        if self.durable:
            self._db = self._open()
        self._max_track = 0
        if self._db is not None:
            row = self._db.execute("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM spool").fetchone()
            self._next_id, self._disk_depth = int(row[0]) + 1, int(row[1])
            self._max_track = spool_db.max_track(self._db)
            if self._disk_depth:
                log.info(
                    "spool %s: %d unsent events from an earlier run will be sent first",
                    self.path,
                    self._disk_depth,
                )

    def _open(self) -> sqlite3.Connection | None:
        try:
            return open_db(Path(self.path))
        except sqlite3.DatabaseError as exc:  # disk trouble: events go to memory meanwhile
            self._disk_trouble(exc)
            return None

    # -- public API ------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Events not yet acknowledged (disk and memory)."""
        return self._disk_depth - len(self._undeleted) + len(self._mem)

    @property
    def storing(self) -> bool:
        """Appends go where they should: to disk (durable spool), or to memory by choice
        (":memory:"). False while the disk refuses writes and events wait in memory only."""
        return not self.durable or (self._db is not None and not self._disk_failing)

    def append(self, topic: str, payload: bytes) -> int:
        """Store one message; returns its id. Never raises for disk trouble (see module doc)."""
        return self.append_many([(topic, payload)])[0]

    def append_many(
        self, messages: Sequence[tuple[str, bytes]], tracks: Sequence[TrackChange] = ()
    ) -> list[int]:
        """Store messages (and the open-track changes they make) in one transaction: one
        fsync for the lot. Returns their ids. Never raises for disk trouble."""
        with self._lock:
            n = len(messages)
            if n and self.depth + n > self.max_events:
                self._drop_oldest(self.depth + n - self.max_events)
            ids = list(range(self._next_id, self._next_id + n))
            self._next_id += n
            rows = [(sid, t, p) for sid, (t, p) in zip(ids, messages, strict=True)]
            if self._db is not None and (not self._mem or self._store_memory_tail()):
                try:
                    self._db.execute("BEGIN")
                    self._db.executemany("INSERT INTO spool (id, topic, payload) VALUES (?, ?, ?)", rows)
                    spool_db.apply_tracks(self._db, tracks)
                    self._db.execute("COMMIT")
                    self._disk_depth += n
                    self._max_track = max([self._max_track, *(c.track for c in tracks)])
                    if self._disk_failing:
                        self._disk_failing = False
                        log.warning(
                            "spool %s is writable again (%d events were kept only in memory meanwhile)",
                            self.path,
                            self.unstored,
                        )
                    return ids
                except sqlite3.DatabaseError as exc:
                    self._disk_trouble(exc)
            self._max_track = max([self._max_track, *(c.track for c in tracks)])
            for sid, topic, payload in rows:
                self._mem[sid] = (topic, payload)
            if self.durable:
                self.unstored += n
            return ids

    def open_tracks(self) -> list[TrackChange]:
        """The tracks whose last stored event is not an end: what the previous run left open."""
        with self._lock:
            if self._db is None:
                return []
            try:
                return spool_db.open_tracks(self._db)
            except sqlite3.DatabaseError as exc:
                log.error("spool %s: cannot read the open tracks (%s)", self.path, exc)
                return []

    @property
    def max_track(self) -> int:
        """The highest track id ever stored (0: none)."""
        with self._lock:
            return self._max_track

    def read_after(self, cursor: int, limit: int) -> list[SpoolRow]:
        """Up to ``limit`` rows with id > cursor, oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows: list[SpoolRow] = []
            if self._db is not None and self._disk_depth > len(self._undeleted):
                try:
                    cur = self._db.execute(
                        "SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                        (cursor, limit + len(self._undeleted)),
                    )
                    rows = [SpoolRow(i, t, bytes(p)) for i, t, p in cur if i not in self._undeleted][:limit]
                except sqlite3.DatabaseError as exc:
                    log.error("spool %s: cannot read (%s); will retry", self.path, exc)
                    return []
            for sid, (topic, payload) in self._mem.items():
                if len(rows) >= limit:
                    break
                if sid > cursor:
                    rows.append(SpoolRow(sid, topic, payload))
            return rows

    def remove(self, ids: Iterable[int]) -> None:
        """Forget acknowledged rows."""
        with self._lock:
            disk = [i for i in ids if self._mem.pop(i, None) is None]
            disk.extend(self._undeleted)
            if not disk or self._db is None:
                return
            try:
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN")
                n = 0
                for chunk in _chunks(sorted(set(disk)), 500):
                    marks = ",".join("?" * len(chunk))
                    n += self._db.execute(f"DELETE FROM spool WHERE id IN ({marks})", chunk).rowcount
                self._db.execute("COMMIT")
                self._disk_depth -= n
                self._undeleted.clear()
            except sqlite3.DatabaseError as exc:
                self._rollback()
                self._undeleted.update(disk)
                log.debug("spool %s: cannot delete acknowledged rows yet (%s)", self.path, exc)
            finally:
                self._set_sync_full()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                finally:
                    self._db = None
            if self._mem and self.durable:
                log.error(
                    "spool %s: %d events held only in memory are lost at exit", self.path, len(self._mem)
                )

    # -- internals -------------------------------------------------------------------------
    def _drop_oldest(self, n: int) -> None:
        dropped = 0
        if self._db is not None and self._disk_depth > len(self._undeleted):
            try:
                cur = self._db.execute(
                    "SELECT id FROM spool ORDER BY id LIMIT ?", (n + len(self._undeleted),)
                )
                oldest = [i for (i,) in cur if i not in self._undeleted][:n]
                marks = ",".join("?" * len(oldest))
                dropped = self._db.execute(f"DELETE FROM spool WHERE id IN ({marks})", oldest).rowcount
                self._disk_depth -= dropped
            except sqlite3.DatabaseError as exc:
                self._disk_trouble(exc)
        while dropped < n and self._mem:
            del self._mem[next(iter(self._mem))]
            dropped += 1
        self.dropped += dropped
        self._dropped_since_warning += dropped
        now = time.monotonic()
        if now - self._last_drop_warning >= _WARN_EVERY_S:
            log.warning(
                "spool %s is full (%d events): dropped the %d oldest unsent events "
                "(%d in total); raise [mqtt] spool_max_events or fix the broker link",
                self.path,
                self.max_events,
                self._dropped_since_warning,
                self.dropped,
            )
            self._last_drop_warning = now
            self._dropped_since_warning = 0

    def _store_memory_tail(self) -> bool:
        """Move the in-memory tail to disk if the disk takes writes again (tried at most
        once per _DISK_RETRY_S). Its ids are all newer than every disk row, so the order and
        the publisher's cursor hold. True when the tail is now empty."""
        now = time.monotonic()
        if self._db is None or now < self._disk_retry_at:
            return False
        self._disk_retry_at = now + _DISK_RETRY_S
        rows = [(sid, topic, payload) for sid, (topic, payload) in self._mem.items()]
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO spool (id, topic, payload) VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            log.debug("spool %s: memory tail still not storable (%s)", self.path, exc)
            return False
        self._disk_depth += len(rows)
        self._mem.clear()
        return True

    def _disk_trouble(self, exc: sqlite3.DatabaseError) -> None:
        self._rollback()
        if not self._disk_failing:
            self._disk_failing = True
            log.error(
                "spool %s cannot store events (%s): new events are kept in memory only "
                "(lost if the process stops) until the disk accepts writes again; "
                "free space on %s",
                self.path,
                exc,
                Path(self.path).parent,
            )

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass

    def _set_sync_full(self) -> None:
        if self._db is not None:
            try:
                self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.DatabaseError:
                pass


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
