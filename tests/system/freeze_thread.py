"""Freeze the threads of a process that carry one OS thread name, as a stuck driver call would.

    python3 freeze_thread.py PID NAME

ptrace-stops (PTRACE_SEIZE + PTRACE_INTERRUPT) every thread of PID whose comm is NAME while the
other threads keep running, prints one "froze ..." line, and keeps them stopped until they exit
(then it reaps them: a traced thread stays a zombie, and with it the whole process, until its
tracer waits for it) or until SIGTERM (which detaches them). The lowest tid is taken to be the
Python thread: it is caught inside a blocking system call, where it does not hold the GIL, or
the whole interpreter would stop with it. Needs root (CAP_SYS_PTRACE); Linux only. Used by
test_service_system.py inside the container, with the system's python3.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import signal
import sys
import time

SEIZE, INTERRUPT, DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000
# x86_64 numbers: read poll select nanosleep ioctl recvfrom recvmsg wait4 futex
# clock_nanosleep epoll_wait pselect6 ppoll epoll_pwait epoll_pwait2 futex_waitv
BLOCKING = {0, 7, 23, 35, 16, 45, 47, 61, 202, 230, 232, 270, 271, 281, 441, 449}

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def ptrace(op: int, tid: int) -> None:
    if libc.ptrace(op, tid, None, None) != 0:
        sys.exit(f"ptrace({op:#x}, {tid}): {os.strerror(ctypes.get_errno())}")


def threads(pid: int, name: str) -> list[int]:
    tids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    tids.append(int(tid))
        except OSError:
            pass
    return sorted(tids)


def freeze(pid: int, tids: list[int], attempts: int = 50) -> int:
    """Stop ``tids``; retry until the first is inside a blocking call; its syscall number."""
    for _ in range(attempts):
        for tid in tids:
            ptrace(SEIZE, tid)
            ptrace(INTERRUPT, tid)
            os.waitpid(tid, WALL)
        with open(f"/proc/{pid}/task/{tids[0]}/syscall") as f:
            nr = int(f.read().split()[0])
        if nr in BLOCKING or (nr >= 0 and platform.machine() != "x86_64"):
            return nr
        for tid in tids:
            ptrace(DETACH, tid)
        time.sleep(random.uniform(0.01, 0.1))
    sys.exit("could not catch the thread inside a blocking system call")


def main() -> None:
    pid, name = int(sys.argv[1]), sys.argv[2]
    tids = threads(pid, name)
    if not tids:
        sys.exit(f"no thread named {name} in process {pid}")
    nr = freeze(pid, tids)
    print(f"froze {len(tids)} thread(s) named {name} of pid {pid}; tid {tids[0]} in syscall {nr}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            os.waitpid(-1, WALL)
        except ChildProcessError:
            break
    print("the frozen threads are gone", flush=True)


if __name__ == "__main__":
    main()
