"""Disk full under the spool, against the real daemon: the state directory is a small tmpfs
(mounted by the test: needs root), the broker is down so events pile up in the spool, then a
filler file takes every free byte. The daemon must keep running and counting what it could
not store, store again as soon as space returns (even with the broker still down: a SIGTERM
then loses nothing), and deliver every event in order once the broker is back."""

from __future__ import annotations

import errno
import re
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import settle_and_tally, wait_delivered
from needs import need

pytestmark = pytest.mark.integration


def fill(path: Path) -> int:
    """Write ``path`` until the file system says ENOSPC; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    written += f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


@pytest.fixture
def small_state_dir(need_root, tmp_path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    need(res.returncode == 0, "a tmpfs mount", f"run as root, CAP_SYS_ADMIN (mount: {res.stderr.strip()})")
    yield state
    subprocess.run(["umount", "-l", str(state)], capture_output=True, timeout=30, check=False)


def test_disk_full_under_the_spool(small_state_dir, broker, watched, fault_row):
    col, d = watched("diskfull", spool=small_state_dir / "spool.db")
    assert d.wait_produced(5, 60)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)

    broker.stop()  # outage: from now on events stay in the spool
    assert d.wait_more(5, 30) >= 5
    filler = small_state_dir / "filler"
    filled = fill(filler)
    n_full = len(d.produced())
    assert d.wait_log(r"spool .* cannot store events", 30), d.log()[-3000:]
    time.sleep(4)
    assert d.alive, d.log()[-3000:]
    made_while_full = len(d.produced()) - n_full
    filler.unlink()
    t_free = time.monotonic()
    assert d.wait_log(r"spool .* is writable again", 20), (
        "space returned but the spool did not store again:\n" + d.log()[-3000:]
    )
    recovered_s = time.monotonic() - t_free
    m = re.search(r"\((\d+) events were kept only in memory meanwhile\)", d.log())
    unstored = int(m.group(1)) if m else -1
    # durable again while the broker is still away: a stop now must lose nothing
    assert d.terminate() == 0
    assert "held only in memory are lost" not in d.log(), d.log()[-3000:]
    d.start().wait_ready()
    assert d.wait_more(3, 60) >= 3
    broker.start()
    t = settle_and_tally(d, col)

    fault_row.update(
        key="disk-full",
        fault="disk full under the spool",
        how=f"state dir on an 8 MiB tmpfs, broker down, a filler file took the last "
        f"{filled // 1024} KiB; removed after 4 s; then SIGTERM, restart, broker back",
        result=f"kept running; {unstored} events held in memory while full (counted), stored "
        f"again {recovered_s:.1f} s after space returned; none lost across the restart",
        **t.row(),
        details={
            "unstored": unstored,
            "events_made_while_full": made_while_full,
            "seconds_to_store_again": round(recovered_s, 1),
        },
    )
    assert t.lost == 0 and t.in_order, t
    assert unstored >= 1 and made_while_full >= 1
