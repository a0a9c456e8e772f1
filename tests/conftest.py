"""Shared fixtures: the built model directory and the third-party data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXPRESSIONS = SHARED / "data" / "expressions"
VIDEOS = SHARED / "data" / "video"
OMZ = SHARED / "models" / "omz"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The IR built by `make models` (the Makefile builds it before the tests run)."""
    d = Path(os.environ.get("EXPRESSIOND_MODELS", REPO / "models" / "ir"))
    if not (d / "face-api" / "expression" / "FP32" / "model.xml").is_file():
        pytest.fail(f"models not built in {d}: run `make models` (make test does it)")
    return d


@pytest.fixture(scope="session")
def sample_images(models_dir) -> list[Path]:
    images = sorted((models_dir / "samples").glob("sample*.jpg"))
    assert len(images) == 6, "models build copies the 6 sample photos of the pinned package"
    return images


@pytest.fixture(scope="session")
def expressions_dir() -> Path:
    if not (EXPRESSIONS / "labels.csv").is_file():
        pytest.skip(f"labelled dev photos not present at {EXPRESSIONS}")
    return EXPRESSIONS
