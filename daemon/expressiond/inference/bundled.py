"""Third-party IR committed to the checkout (models/<name>/<precision>/model.{xml,bin,json} with a
LICENSE and SOURCES.md beside the precision folders), e.g. Open Model Zoo's
face-detection-retail-0005 (Apache-2.0), the default face detector.

A daemon run from the checkout (editable install, tests) finds it there through
paths.builtin_model_dir. An installed daemon (non-editable, models in <prefix>/share/...) needs
it in its models directory: ``install_bundled`` copies it there, checking every file against
the sha256 its metadata records, and is meant to run as part of ``expressiond models build``.

Thread: the main thread (``models build``, model resolution at start).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from expressiond.errors import ModelBuildError
from expressiond.paths import BUNDLED_MODELS, FLOAT_PRECISIONS, bundled_model_dir

IR_FILES = ("model.xml", "model.bin", "model.json")
NOTICE_FILES = ("LICENSE", "SOURCES.md")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_hashes(folder: Path) -> dict[str, str]:
    """The sha256 of model.xml/model.bin as the folder's model.json records them."""
    try:
        meta = json.loads((folder / "model.json").read_text())
        return dict(meta["ir_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def is_intact(folder: Path) -> bool:
    hashes = recorded_hashes(folder)
    try:
        return bool(hashes) and all(sha256_file(folder / f) == h for f, h in hashes.items())
    except OSError:
        return False


def install_bundled(models_dir: Path, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Copy every bundled model into <models_dir>/<name>/<precision>/ unless it is already
    there intact; one status row per IR (like ``models build``)."""
    say = progress or (lambda _msg: None)
    rows = []
    for name in BUNDLED_MODELS:
        for precision in FLOAT_PRECISIONS:
            src = bundled_model_dir(name, precision)
            dest = Path(models_dir) / name / precision
            row = {"model": name, "precision": precision, "path": str(dest)}
            if is_intact(dest) and recorded_hashes(dest) == recorded_hashes(src):
                rows.append({**row, "status": "up to date"})
                continue
            if not is_intact(src):
                if is_intact(dest):
                    rows.append({**row, "status": "up to date"})  # installed tree: no checkout
                    continue
                raise ModelBuildError(
                    f"{src}: the bundled {name} {precision} IR is missing or damaged; restore "
                    "models/ from the repository (git checkout -- models)"
                )
            dest.mkdir(parents=True, exist_ok=True)
            for file in IR_FILES:
                shutil.copyfile(src / file, dest / file)
            for file in NOTICE_FILES:
                if (src.parent / file).is_file():
                    shutil.copyfile(src.parent / file, dest.parent / file)
            say(f"{name} {precision}: copied the bundled IR -> {dest}")
            rows.append({**row, "status": "copied"})
    return rows
