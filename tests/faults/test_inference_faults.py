"""An inference request raising, against the real daemon, through the test-only hook of
expressiond/faults.py (EXPRESSIOND_FAULTS, read once at start): the frame whose request
cannot start is skipped and counted and the pipeline goes on; a device that keeps failing
makes the daemon exit 1 (systemd's Restart=on-failure restarts it). Never a hang."""

from __future__ import annotations

import re
import signal
import time

import pytest
from faultkit import settle_and_tally, wait_delivered, wait_stats

from expressiond.daemon.faults import FaultPlan, InjectedFault, parse
from expressiond.errors import ConfigError

pytestmark = pytest.mark.integration


def test_fault_spec_is_strict():
    assert parse("") == FaultPlan() and not parse("")
    plan = parse("infer-raise:frame=20; infer-raise:frame=45")
    assert plan.raise_at == {20, 45} and plan.raise_from is None
    plan.before_submit(19)
    with pytest.raises(InjectedFault):
        plan.before_submit(20)
    assert parse("infer-raise:from=7").raise_from == 7
    assert parse("stop-hang").stop_hang and not parse("infer-raise:from=7").stop_hang
    for bad in ("infer-raise", "infer-raise:frame=0", "infer-raise:frame=x", "crash:frame=1"):
        with pytest.raises(ConfigError):
            parse(bad)


def test_one_failing_request_is_skipped_and_counted(watched, fault_row):
    col, d = watched("infer-once", env={"EXPRESSIOND_FAULTS": "infer-raise:frame=20;infer-raise:frame=60"})
    assert d.wait_log(r"TEST-ONLY fault injection is active", 5)
    assert d.wait_log(r"inference failed on frame \d+, frame skipped", 60, count=2), d.log()[-3000:]
    n_fault = len(d.produced())
    assert d.wait_more(5, 60) >= 5, "no events after the failed requests"
    stats = wait_stats(col, lambda s: s.get("inference", {}).get("frames", 0) > 80)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    assert d.alive
    t = settle_and_tally(d, col)
    inf = stats.get("inference", {})

    fault_row.update(
        key="inference-raises-once",
        fault="inference request raising (once)",
        how='EXPRESSIOND_FAULTS="infer-raise:frame=20;infer-raise:frame=60": the 20th and '
        "60th frame submissions raise like a refused infer request",
        result=f"recovered: 2 frames skipped, stats inference.errors = {inf.get('errors')}, "
        f"{inf.get('frames')} frames done, events continued",
        **t.row(),
        details={
            "errors": inf.get("errors"),
            "frames": inf.get("frames"),
            "events_before_fault_logged": n_fault,
        },
    )
    assert inf.get("errors") == 2, inf
    assert t.lost == 0 and t.in_order, t
    assert "Traceback" not in d.log()


def test_a_device_that_keeps_failing_exits_1_for_systemd(watched, fault_row):
    col, d = watched("infer-always", env={"EXPRESSIOND_FAULTS": "infer-raise:from=40"})
    t0 = time.monotonic()
    rc = d.wait_exit(60)  # bounded: a hang fails here
    exit_s = time.monotonic() - t0
    assert rc == 1, d.log()[-3000:]
    m = re.search(r"inference cannot go on \((\d+) frames in a row", d.log())
    assert m, d.log()[-3000:]
    t = settle_and_tally(d, col, stop=False)

    fault_row.update(
        key="inference-raises-always",
        fault="inference request raising (every frame)",
        how='EXPRESSIOND_FAULTS="infer-raise:from=40": every submission from the 40th raises, '
        "a device that died",
        result=f"exit 1 after {m.group(1)} failed frames in a row, {exit_s:.1f} s after ready "
        "(systemd Restart=on-failure restarts it); events made before were flushed",
        **t.row(),
        details={"exit_code": rc, "seconds_to_exit": round(exit_s, 1)},
    )
    assert t.lost == 0 and t.in_order, t


def test_a_stop_that_hangs_ends_with_stacks_and_exit_1(watched, fault_row):
    """A stop that never returns (a driver call stuck in the kernel) must not hang until
    systemd's SIGKILL: after STOP_GUARD_S the thread stacks go to stderr and the daemon exits 1.
    Events made before the stop are in the spool or delivered, none lost."""
    from expressiond.daemon.main import STOP_GUARD_S

    col, d = watched("stop-hang", env={"EXPRESSIOND_FAULTS": "stop-hang"})
    assert d.wait_more(3, 60) >= 3, "no events before the stop"
    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    rc = d.wait_exit(STOP_GUARD_S + 15)  # bounded: a hang fails here
    exit_s = time.monotonic() - t0
    log = d.log()
    assert rc == 1, log[-3000:]
    assert STOP_GUARD_S - 1 <= exit_s <= STOP_GUARD_S + 10, exit_s
    assert "stopping has taken over 15 s and is stuck" in log, log[-3000:]
    stacks = log[log.index("is stuck") :]
    assert stacks.count("(most recent call first)") >= 3, stacks[-3000:]  # every thread
    assert re.search(r'File "[^"]*faults\.py", line \d+ in before_stop', stacks), stacks[-3000:]
    # An event the tracker made in the last moment before the exit is in the spool, not yet
    # sent (seen: 3 of 87 in one run): a start without the fault sends it first.
    first_run = len(d.produced())
    d.env.pop("EXPRESSIOND_FAULTS", None)
    d.start().wait_ready()  # same config, same spool
    t = settle_and_tally(d, col)

    fault_row.update(
        key="stop-hangs",
        fault="shutdown stuck",
        how='EXPRESSIOND_FAULTS="stop-hang": stopping the frame path blocks for ever after SIGTERM',
        result=f"exit 1 {exit_s:.1f} s after SIGTERM (guard {STOP_GUARD_S:g} s, below "
        "TimeoutStopSec=20), every thread's stack in the log; spooled events sent by the next start",
        **t.row(),
        details={"exit_code": rc, "seconds_to_exit": round(exit_s, 1), "events_first_run": first_run},
    )
    assert t.lost == 0 and t.in_order, t
