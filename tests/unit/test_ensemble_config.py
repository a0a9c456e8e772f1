"""The on-disk half of [classifier] (config/ensemble.py, config/calibration.py): the members'
labels from their metadata and the calibration file, refused with file:line and the key before
anything is compiled. Stand-in IR files: only the metadata's labels are read here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expressiond import paths
from expressiond.config import check_model_files, parse_config
from expressiond.config.calibration import calibration_for, describe, member_spec, read_calibration
from expressiond.errors import EXIT_CONFIG, ConfigError, ModelError

CAM = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'
SEVEN = list(paths.EXPRESSION_LABELS)


def _ir(folder: Path, labels: list[str], stem: str = "model") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.xml").write_text("<net/>")
    (folder / f"{stem}.bin").write_bytes(b"\0")
    (folder / f"{stem}.json").write_text(json.dumps({"kind": "classifier", "labels": labels}))
    return folder / f"{stem}.xml"


@pytest.fixture
def models(tmp_path) -> Path:
    d = tmp_path / "models"
    _ir(d / paths.DEFAULT_DETECTOR / "FP16", ["face"])
    for name in paths.CLASSIFIER_MODELS:
        _ir(d / name / "FP16", SEVEN)
    return d


def _cfg(models: Path, classifier: str):
    return parse_config(f'models_dir = "{models}"\n[classifier]\n{classifier}\n{CAM}', "m.toml")


def _error(models: Path, classifier: str, kind=ConfigError) -> str:
    cfg = _cfg(models, classifier)
    with pytest.raises(kind) as info:
        check_model_files(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == EXIT_CONFIG  # config and model errors alike: 78
    return message


def test_the_default_set_checks_and_takes_the_shipped_calibration(models):
    cfg = _cfg(models, "")
    check_model_files(cfg)
    calibration = calibration_for(cfg.classifier)
    assert calibration is not None and calibration.source == str(paths.builtin_calibration())
    assert set(calibration.offsets) == set(SEVEN)
    assert describe(calibration.members) == "face-api/expression (flip) + human/emotion"
    assert calibration.fitted_on["photos"] == 70  # what it was fitted on is in the file


def test_a_member_with_labels_outside_the_seven_is_refused_at_its_line(models, tmp_path):
    xml = _ir(tmp_path / "pets", ["cat", "happy"], "pets")
    message = _error(models, f'ensemble = [\n  {{ model = "human/emotion" }},\n  {{ model = "{xml}" }},\n]')
    assert message.startswith("m.toml:5: classifier.ensemble[1].model: ")
    assert "has labels ['cat'] outside the 7 an ensemble's events carry" in message
    # alone it is fine: a single model keeps its own labels
    check_model_files(_cfg(models, f'model = "{xml}"'))


def test_members_that_share_no_label_are_refused(models, tmp_path):
    a = _ir(tmp_path / "a", ["neutral", "happy"], "a")
    b = _ir(tmp_path / "b", ["fearful"], "b")
    message = _error(models, f'ensemble = [\n  {{ model = "{a}" }},\n  {{ model = "{b}" }},\n]')
    assert message.startswith("m.toml:4: classifier.ensemble[0].model: ")
    assert "shares no label with the other members (['fearful'])" in message


def test_unreadable_member_metadata_names_the_file(models):
    (models / paths.HUMAN_EMOTION / "FP16" / "model.json").write_text("{labels: oops")
    message = _error(models, "", ModelError)
    assert message.startswith("m.toml:2: classifier.ensemble[1].model: ")  # [classifier]'s line
    assert "human/emotion/FP16/model.json: unreadable model metadata" in message


def test_calibration_files_are_checked(models, tmp_path):
    missing = _error(models, f'calibration = "{tmp_path}/nope.json"')
    assert missing.startswith("m.toml:3: classifier.calibration: calibration file ")
    assert "not found; fix the path" in missing
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "is not JSON" in _error(models, f'calibration = "{broken}"')
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": 1, "kind": "something"}))
    assert "is not a calibration file" in _error(models, f'calibration = "{other}"')


def test_a_calibration_applies_only_to_the_members_it_was_fitted_for(models, tmp_path):
    shipped = json.loads(paths.builtin_calibration().read_text())
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(shipped))
    check_model_files(_cfg(models, f'calibration = "{mine}"'))  # the same members: fine
    flip = 'ensemble = [{ model = "face-api/expression" }, { model = "human/emotion" }]'  # hm flipped
    for value in (f'"{mine}"', '"builtin"'):
        message = _error(models, f"{flip}\ncalibration = {value}")
        assert message.startswith("m.toml:4: classifier.calibration: ")
        assert "was fitted for face-api/expression (flip) + human/emotion (mean), not for " in message
        assert 'set calibration = "none" or fit one' in message
    # "auto" (the default) leaves other members uncalibrated instead
    cfg = _cfg(models, flip)
    check_model_files(cfg)
    assert calibration_for(cfg.classifier) is None


def test_a_calibration_must_name_the_labels_events_carry(models, tmp_path):
    xml = _ir(tmp_path / "five", SEVEN[:5], "five")
    cal = tmp_path / "five.json"
    members = [member_spec(m) for m in _cfg(models, f'model = "{xml}"').classifier.members]
    cal.write_text(
        json.dumps(
            {
                "schema": 1,
                "kind": "log_offsets",
                "combine": "mean",
                "members": members,
                "log_offsets": dict.fromkeys(SEVEN, 0.1),
            }
        )
    )
    message = _error(models, f'model = "{xml}"\ncalibration = "{cal}"')
    assert "but the classifier set's labels are ['neutral', 'happy', 'sad', 'angry', 'fearful']" in message
    assert read_calibration(cal).offsets["happy"] == 0.1
