"""Boot a real systemd (PID 1) in a throw-away container made from this machine's own root.

Recipe A of /work/shared/notes/systemd-container.md: systemd-nspawn over a private overlay of
/ (upper layer on a tmpfs that lives only in a private mount namespace), an own machine-id
(own journal), a dedicated cgroup in every cgroup hierarchy the launcher joins first (nspawn
--keep-unit nests payload/ and supervisor/ in it), basic.target, loopback-only network by
default. Whatever is installed on the host's root file system exists inside (read-through:
/usr, /opt, /var/tmp); whatever the container writes stays in the overlay and is gone at
power-off. /tmp inside is nspawn's own fresh tmpfs and other file systems are not in the
overlay: host directories the container needs (the checkout and its .venv, wherever they
are, /tmp included) are passed as ``overlays``, each shown at its own path inside through an
overlay of its own, so they too are writable inside and unchanged on the host. Install host
packages before booting, never while a container runs (overlayfs does not support a lower
layer changing underneath it).

    with Container(overlays=[checkout]) as c:
        c.copy_in("systemd/expressiond.service", "/etc/systemd/system/expressiond.service")
        c.run(["systemctl", "daemon-reload"])
        print(c.run("systemctl is-active expressiond", check=False).stdout)

Every wait is bounded; leaving the ``with`` block (normally, by an exception or by
KeyboardInterrupt) powers the container off and removes its processes, mounts, cgroups and
temporary files. Needs root, systemd-nspawn (apt: systemd-container), nsenter and unshare.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CGROUP_ROOT = Path("/sys/fs/cgroup")
TOOLS = ("systemd-nspawn", "nsenter", "unshare", "systemd-id128", "bash")
# PATH and locale for commands run inside; the host shell's environment must not leak in.
INSIDE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "TERM": "dumb",
}

# $1 = scratch dir, $2 = cgroup name, $3 = space-separated hierarchies, $4 = number N of
# host directories to overlay, then those N directories, then the nspawn args (which bind
# $W/o0, $W/o1, ... into the container). bash -> unshare -> bash -> systemd-nspawn all exec,
# so the launcher PID is nspawn's PID. The source is bound to a plain name first: overlayfs
# options cannot carry a path with ',' or ':'.
_LAUNCHER = r"""
set -e
W=$1 CG=$2 HIER=$3; shift 3
for h in $HIER; do echo $$ > "$h/$CG/cgroup.procs"; done
exec unshare --mount --propagation private bash -c '
  set -e; W=$1 N=$2; shift 2
  mount -t tmpfs -o mode=0700 tmpfs "$W"
  mkdir "$W/upper" "$W/work" "$W/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$W/root"
  for ((i = 0; i < N; i++)); do
    o=$W/o$i; mkdir "$o" "$o.lower" "$o.upper" "$o.work"
    mount --bind "$1" "$o.lower"; shift
    mount -t overlay overlay -o "lowerdir=$o.lower,upperdir=$o.upper,workdir=$o.work" "$o"
  done
  mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd
  systemd-id128 new > "$W/root/etc/machine-id"
  exec systemd-nspawn -D "$W/root" "$@"
' _ "$W" "$@"
"""


class ContainerError(RuntimeError):
    pass


def missing_prerequisites() -> str | None:
    """Why a container cannot be booted here (for pytest.skip), or None."""
    if os.geteuid() != 0:
        return "booting systemd in a container needs root"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install systemd-container util-linux)"
    if not cgroup_hierarchies():
        return f"no cgroup hierarchy found under {CGROUP_ROOT}"
    return None


def cgroup_hierarchies() -> list[Path]:
    """The hierarchies systemd uses: cgroup2 alone, or name=systemd + unified (hybrid)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [h for h in (CGROUP_ROOT / "systemd", CGROUP_ROOT / "unified") if h.is_dir()]


def wait_for(probe: Callable[[], T], timeout: float, interval: float = 0.2, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; ContainerError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ContainerError(f"timed out after {timeout:.0f} s waiting for {what or probe}")
        time.sleep(interval)


class Container:
    """A booted systemd container; use as a context manager (see the module docstring)."""

    def __init__(
        self,
        *,
        unit: str = "basic.target",
        overlays: Sequence[str | os.PathLike[str]] = (),
        private_network: bool = True,
        boot_timeout: float = 60,
        name: str = "exprtest",
    ):
        self.unit = unit
        self.overlays = [Path(p).resolve() for p in overlays]
        self.private_network = private_network
        self.boot_timeout = boot_timeout
        self.machine = f"{name}-{uuid.uuid4().hex[:8]}"
        self.boot_seconds: float | None = None
        self.pid1: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None
        self._log: Path | None = None
        self._cgroups: list[Path] = []

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Container:
        try:
            self.boot()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.poweroff()
        finally:
            leftovers = self.cleanup()
        if leftovers and exc_type is None:
            raise ContainerError("container left behind: " + "; ".join(leftovers))

    def boot(self) -> None:
        reason = missing_prerequisites()
        if reason:
            raise ContainerError(reason)
        started = time.monotonic()
        self._scratch = Path(tempfile.mkdtemp(prefix="expressiond-sdtest-"))
        self._log = self._scratch.with_name(self._scratch.name + ".console.log")
        for hierarchy in cgroup_hierarchies():
            cgroup = hierarchy / self._scratch.name
            cgroup.mkdir()
            self._cgroups.append(cgroup)
        args = [
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--link-journal=no",
            f"--machine={self.machine}",
            "--console=read-only",
        ]
        for i, path in enumerate(self.overlays):
            if not path.is_dir():
                raise ContainerError(f"cannot show {path} inside: not a directory")
            args.append(f"--bind={_escape(f'{self._scratch}/o{i}')}:{_escape(str(path))}")
        if self.private_network:
            args.append("--private-network")
        args.append(f"systemd.unit={self.unit}")
        hierarchies = " ".join(str(c.parent) for c in self._cgroups)
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    "bash",
                    "-c",
                    _LAUNCHER,
                    "launcher",
                    str(self._scratch),
                    self._scratch.name,
                    hierarchies,
                    str(len(self.overlays)),
                    *map(str, self.overlays),
                    *args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid1 = wait_for(self._find_pid1, 30, 0.05, "the container's systemd (PID 1)")
        self.wait_running(max(1.0, self.boot_timeout - (time.monotonic() - started)))
        self.boot_seconds = time.monotonic() - started

    def _find_pid1(self) -> int | None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise ContainerError(
                f"systemd-nspawn exited with {self._proc.returncode}: " + self.console_log()[-2000:]
            )
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid == self._proc.pid and comm == "systemd":
                return int(entry)
        return None

    def wait_running(self, timeout: float = 60) -> str:
        """Wait until `systemctl is-system-running` says running (or degraded); return it."""

        def probe() -> str | None:
            try:
                out = self.run(
                    ["systemctl", "is-system-running", "--wait"], check=False, timeout=max(1.0, timeout)
                ).stdout.strip()
            except subprocess.TimeoutExpired:
                return None
            return out if out in ("running", "degraded") else None

        return wait_for(probe, timeout, 0.2, "the container to finish booting")

    def poweroff(self, timeout: float = 30) -> None:
        """Shut the container down cleanly; SIGTERM, then SIGKILL nspawn if it hangs."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        if self.pid1 is not None:
            try:  # may answer "Connection reset by peer": PID 1 went away first; harmless
                self.run(["systemctl", "poweroff"], check=False, timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for sig, wait in ((None, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if sig is not None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def cleanup(self) -> list[str]:
        """Kill what is left, remove cgroups and temp files; return what could not be removed."""
        leftovers: list[str] = []
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                leftovers.append(f"systemd-nspawn pid {self._proc.pid}")
        deadline = time.monotonic() + 10
        for cgroup in reversed(self._cgroups):
            while cgroup.exists():
                for pid in _cgroup_pids(cgroup):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                for d in sorted(
                    (p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
                ) + [cgroup]:
                    try:
                        d.rmdir()
                    except OSError:
                        pass
                if time.monotonic() > deadline:
                    leftovers.append(f"cgroup {cgroup}")
                    break
                if cgroup.exists():
                    time.sleep(0.1)
        self._cgroups = [c for c in self._cgroups if c.exists()]
        for path in (self._scratch, self._log):
            if path is None or not path.exists():
                continue
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError as exc:
                leftovers.append(f"{path} ({exc})")
        return leftovers

    def console_log(self) -> str:
        try:
            return self._log.read_text(errors="replace") if self._log else ""
        except OSError:
            return ""

    # --- working inside ----------------------------------------------------------------

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60,
        input: str | bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside (all namespaces of PID 1); a string runs under `sh -c`.

        The process stays in the caller's cgroup, so journald does not attribute its output
        to a unit: use `systemd-run --wait --pipe` inside when that matters.
        """
        if self.pid1 is None:
            raise ContainerError("the container is not running")
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        data = input.encode() if isinstance(input, str) else input
        result = subprocess.run(
            ["nsenter", "--target", str(self.pid1), "--all", "--", *argv],
            input=data,
            capture_output=True,
            timeout=timeout,
            env=INSIDE_ENV,
            stdin=None if data is not None else subprocess.DEVNULL,
        )
        done = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and done.returncode != 0:
            raise ContainerError(
                f"inside {self.machine}: {shlex.join(argv)} -> rc "
                f"{done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done

    def write(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Create or replace a file inside (parent directories are created)."""
        self.run(
            [
                "sh",
                "-c",
                'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                "write",
                path,
                f"{mode:o}",
            ],
            input=data,
        )

    def copy_in(self, src: str | os.PathLike[str], dst: str, mode: int | None = None) -> None:
        """Copy a host file or directory to ``dst`` inside (a directory's contents go to dst)."""
        src = Path(src)
        if src.is_dir():
            self.run(["mkdir", "-p", dst])
            tar = subprocess.run(
                ["tar", "-C", str(src), "-cf", "-", "."], capture_output=True, check=True, timeout=60
            )
            self.run(["tar", "-C", dst, "-xf", "-"], input=tar.stdout, timeout=60)
        else:
            self.write(dst, src.read_bytes(), mode if mode is not None else src.stat().st_mode & 0o7777)

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def systemctl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def _escape(path: str) -> str:
    """A path for a colon-separated nspawn option (--bind=SRC:DST): backslash escapes."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.extend(int(line) for line in procs.read_text().split())
        except (OSError, ValueError):
            continue
    return pids
