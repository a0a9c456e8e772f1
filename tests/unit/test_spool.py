"""The on-disk spool: order, acknowledgement, bounds, permissions, crash durability, full disk.
Real SQLite files; the full-disk case uses a real (tiny) tmpfs when we may mount one."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from needs import need

from expressiond.errors import ConfigError
from expressiond.sinks.mqtt.spool import Spool


def fill(spool: Spool, n: int, start: int = 0) -> list[int]:
    return [spool.append("t/event", f"p{start + i}".encode()) for i in range(n)]


def payloads(spool: Spool, cursor: int = 0, limit: int = 10**6) -> list[bytes]:
    return [r.payload for r in spool.read_after(cursor, limit)]


def test_fifo_order_cursor_and_remove(tmp_path):
    s = Spool(tmp_path / "s.db", 1000)
    ids = fill(s, 10)
    assert ids == sorted(ids) and len(set(ids)) == 10 and s.depth == 10
    first = s.read_after(0, 4)
    assert [r.payload for r in first] == [b"p0", b"p1", b"p2", b"p3"]
    assert [r.payload for r in s.read_after(first[-1].id, 3)] == [b"p4", b"p5", b"p6"]
    s.remove([ids[1], ids[0], ids[5]])
    assert s.depth == 7
    assert payloads(s) == [b"p2", b"p3", b"p4", b"p6", b"p7", b"p8", b"p9"]
    s.remove([ids[0]])  # removing twice is harmless
    assert s.depth == 7
    s.close()


def test_reopen_keeps_rows_and_ids_keep_growing(tmp_path):
    s = Spool(tmp_path / "s.db", 1000)
    ids = fill(s, 5)
    s.remove(ids[:2])
    s.close()
    s2 = Spool(tmp_path / "s.db", 1000)
    assert s2.depth == 3 and payloads(s2) == [b"p2", b"p3", b"p4"]
    new = s2.append("t/event", b"later")
    assert new > ids[-1]
    assert payloads(s2)[-1] == b"later"
    s2.remove([r.id for r in s2.read_after(0, 100)])
    s2.close()
    s3 = Spool(tmp_path / "s.db", 1000)  # emptied spool: ids still never reused
    assert s3.depth == 0 and s3.append("t/event", b"x") > 0
    s3.close()


def test_appended_rows_survive_sigkill(tmp_path):
    """append() returns only after the commit: a process killed right after loses nothing."""
    db = tmp_path / "s.db"
    import expressiond

    env = dict(os.environ, PYTHONPATH=str(Path(expressiond.__file__).parent.parent))
    code = textwrap.dedent(f"""
        import os, signal
        from expressiond.sinks.mqtt.spool import Spool
        s = Spool({str(db)!r}, 10000)
        for i in range(500):
            s.append("t/event", b"e%d" % i)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], env=env, timeout=120)
    assert r.returncode == -signal.SIGKILL
    s = Spool(db, 10000)
    assert payloads(s) == [b"e%d" % i for i in range(500)]
    s.close()


def test_full_spool_drops_oldest_counts_and_warns_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    s = Spool(tmp_path / "s.db", 10)
    fill(s, 25)
    assert s.depth == 10 and s.dropped == 15
    assert payloads(s) == [b"p%d" % i for i in range(15, 25)]
    warnings = [r for r in caplog.records if "full" in r.getMessage()]
    assert len(warnings) == 1, "the warning is rate-limited"
    s.close()


def test_file_and_dir_permissions(tmp_path):
    d = tmp_path / "state" / "expressiond"
    s = Spool(d / "spool.db", 100)
    fill(s, 3)
    assert (d.stat().st_mode & 0o777) == 0o700
    names = sorted(p.name for p in d.iterdir())
    assert names == ["spool.db", "spool.db-shm", "spool.db-wal"]
    for p in d.iterdir():
        assert (p.stat().st_mode & 0o777) == 0o600, p
    s.close()


def test_existing_loose_file_is_tightened(tmp_path):
    p = tmp_path / "spool.db"
    Spool(p, 10).close()
    p.chmod(0o644)
    Spool(p, 10).close()
    assert (p.stat().st_mode & 0o777) == 0o600


def test_wal_and_full_sync_are_on(tmp_path):
    s = Spool(tmp_path / "s.db", 10)
    assert s._db is not None
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.remove(fill(s, 2))
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL restored after delete"
    s.close()


def test_memory_mode_has_no_file_and_counts_nothing_unstored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Spool(":memory:", 5)
    ids = fill(s, 7)
    assert not s.durable and s.unstored == 0 and s.dropped == 2 and s.depth == 5
    s.remove(ids[2:4])
    assert payloads(s) == [b"p4", b"p5", b"p6"]
    assert list(tmp_path.iterdir()) == []
    s.close()


def test_corrupt_spool_is_moved_aside(tmp_path, caplog):
    p = tmp_path / "spool.db"
    p.write_bytes(b"this is not sqlite" * 500)
    caplog.set_level(logging.ERROR)
    s = Spool(p, 10)
    fill(s, 2)
    assert s.depth == 2
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    assert list(tmp_path.glob("spool.db.corrupt-*"))
    s.close()


def test_bad_spool_location_is_a_config_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="spool_path"):
        Spool(tmp_path / "afile" / "spool.db", 10)
    with pytest.raises(ConfigError, match="spool_max_events"):
        Spool(tmp_path / "s.db", 0)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    need(
        r.returncode == 0,
        "a tmpfs mount",
        f"run as root with CAP_SYS_ADMIN (mount: {r.stderr.decode().strip()})",
    )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_disk(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"x" * chunk)
            except OSError:
                pass


def test_full_disk_keeps_order_in_memory_and_recovers(tiny_tmpfs, caplog):
    caplog.set_level(logging.INFO)
    s = Spool(tiny_tmpfs / "spool.db", 10000)
    on_disk = fill(s, 5)
    fill_disk(tiny_tmpfs / "filler")
    big = b"y" * 2048
    mem = [s.append("t/event", big) for _ in range(50)]  # must not raise
    assert s.unstored > 0 and s.depth == 55
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot store events" in errors[0].getMessage()
    rows = s.read_after(0, 1000)
    assert [r.id for r in rows] == on_disk + mem, "disk rows first, then memory, in id order"
    (tiny_tmpfs / "filler").unlink()
    later = s.append("t/event", b"after")  # memory tail not drained yet: joins it
    assert s.read_after(0, 1000)[-1].id == later
    s.remove([r.id for r in s.read_after(0, 1000)])
    assert s.depth == 0
    unstored = s.unstored
    s.append("t/event", b"disk again")
    assert s.unstored == unstored and s.depth == 1
    assert any("writable again" in r.getMessage() for r in caplog.records)
    s.close()
    assert [
        bytes(p) for (p,) in sqlite3.connect(tiny_tmpfs / "spool.db").execute("SELECT payload FROM spool")
    ] == [b"disk again"]
