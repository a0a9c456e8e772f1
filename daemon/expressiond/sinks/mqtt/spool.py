"""The outgoing-message spool: an ordered, bounded, on-disk FIFO (SQLite, WAL).

An event is appended (and durably committed) before anything tries to publish it, and is
removed only when the broker acknowledged it, so a broker outage or a SIGKILL loses nothing.

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
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from expressiond.errors import ConfigError

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
        if self._db is not None:
            row = self._db.execute("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM spool").fetchone()
            self._next_id, self._disk_depth = int(row[0]) + 1, int(row[1])
            if self._disk_depth:
                log.info(
                    "spool %s: %d unsent events from an earlier run will be sent first",
                    self.path,
                    self._disk_depth,
                )

    # -- opening ---------------------------------------------------------------------------
    def _open(self, retry: bool = True) -> sqlite3.Connection | None:
        p = Path(self.path)
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
            return self._connect(p)
        except sqlite3.DatabaseError as exc:
            if _is_disk_problem(exc):
                self._disk_trouble(exc)
                return None
            corrupt = "not a database" in str(exc) or "malformed" in str(exc)
            if not (corrupt and retry):
                raise ConfigError(f"cannot open the MQTT spool {p}: {exc}") from None
        aside = p.with_name(f"{p.name}.corrupt-{int(time.time())}")
        log.error("spool %s is corrupt; moved it to %s and started an empty spool", p, aside)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(p) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        return self._open(retry=False)

    @staticmethod
    def _connect(p: Path) -> sqlite3.Connection:
        db = sqlite3.connect(p, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("spool %s: WAL journal unavailable (got %s)", p, mode)
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS spool ("
                "id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL)"
            )
            db.execute("SELECT COUNT(*) FROM spool").fetchone()
        except BaseException:
            db.close()
            raise
        return db

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
        with self._lock:
            if self.depth >= self.max_events:
                self._drop_oldest(self.depth - self.max_events + 1)
            sid = self._next_id
            self._next_id += 1
            if self._db is not None and (not self._mem or self._store_memory_tail()):
                try:
                    self._db.execute(
                        "INSERT INTO spool (id, topic, payload) VALUES (?, ?, ?)", (sid, topic, payload)
                    )
                    self._disk_depth += 1
                    if self._disk_failing:
                        self._disk_failing = False
                        log.warning(
                            "spool %s is writable again (%d events were kept only in memory meanwhile)",
                            self.path,
                            self.unstored,
                        )
                    return sid
                except sqlite3.DatabaseError as exc:
                    self._disk_trouble(exc)
            self._mem[sid] = (topic, payload)
            if self.durable:
                self.unstored += 1
            return sid

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


_SQLITE_IOERR, _SQLITE_FULL = 10, 13


def _is_disk_problem(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
