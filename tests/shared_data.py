"""Where the third-party test data lives (``shared/``: data/expressions, data/video,
models/omz). Tests and benchmarks read it; the product never needs it. No pytest here: the
benchmarks import this module too (they put tests/ on sys.path).

Resolution, first match wins:

1. ``$EXPRESSIOND_SHARED``, when set: taken as given, even if empty or absent (so a run can be
   pointed away from the data on purpose);
2. ``shared/`` beside the checkout (``<checkout>/../shared``);
3. for a clone of a local repository (``git clone /srv/expressiond /tmp/x``): ``shared/``
   beside the repository ``origin`` points to, following local origins up to three hops;
4. otherwise ``<checkout>/../shared`` again, the conventional place, so messages name it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = "EXPRESSIOND_SHARED"
REPO = Path(__file__).resolve().parents[1]


def _local_origin(repo: Path) -> Path | None:
    """The path ``origin`` points to when it is a local repository, else None."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = proc.stdout.strip()
    if proc.returncode != 0 or not url:
        return None
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url or (":" in url.split("/", 1)[0]):
        return None  # https://, ssh://, git@host:path: not a folder on this machine
    path = Path(url)
    if not path.is_absolute():
        path = repo / path
    path = path.resolve()
    if path.name == ".git":  # file:///srv/x/.git; in a worktree .git is a file
        path = path.parent
    return path if path.is_dir() else None


def find_shared(repo: Path = REPO) -> tuple[Path, str]:
    """(the shared folder, how it was found). The folder may not exist (see the module doc)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().resolve(), f"${ENV}"
    beside = repo.parent / "shared"
    if beside.is_dir():
        return beside, "beside the checkout"
    seen = {repo.resolve()}
    current = repo
    for _ in range(3):
        origin = _local_origin(current)
        if origin is None or origin in seen:
            break
        seen.add(origin)
        if (origin.parent / "shared").is_dir():
            return origin.parent / "shared", f"beside {origin} (origin of the clone)"
        current = origin
    return beside, "beside the checkout (absent)"


SHARED, SHARED_FROM = find_shared()
EXPRESSIONS = SHARED / "data" / "expressions"
VIDEOS = SHARED / "data" / "video"
OMZ = SHARED / "models" / "omz"
HOW_TO_FIX = (
    f"put the third-party test data in {REPO.parent / 'shared'} (data/expressions, data/video, "
    f"models/omz) or set {ENV}=<that folder>"
)
