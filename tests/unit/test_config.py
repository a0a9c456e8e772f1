"""Config loading: defaults, the shipped annotated config, JSON form, immutability, the
hostname default, the key-line locator, and the on-disk checks (against tmp dirs)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import expressiond.config as config_pkg
from expressiond import paths
from expressiond.config import (
    CameraConfig,
    ClassifierConfig,
    Config,
    DetectorConfig,
    EnsembleMember,
    HttpConfig,
    InferenceConfig,
    LoggingConfig,
    MqttConfig,
    TlsConfig,
    TrackingConfig,
    check_camera_sources,
    check_model_files,
    from_dict,
    hostname_device_id,
    load_config,
    parse_config,
)
from expressiond.config import model as config_model
from expressiond.config.lines import key_lines
from expressiond.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "expressiond.toml"
MINIMAL = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'

FULL = """
device_id = "nuc-hall"
models_dir = "/opt/models"

[inference]
device = "AUTO:GPU,CPU"
precision = "FP16"
num_requests = 4
performance_hint = "LATENCY"
cache_dir = "/var/cache/expressiond"

[detector]
model = "/srv/models/retail-0004.xml"
device = "GPU.1"
precision = "FP32"
threshold = 0.65
nms_iou = 0.45
max_faces = 5
min_face_px = 0

[classifier]
device = "NPU"

[[cameras]]
name = "door"
source = "rtsp://viewer:hunter2@10.0.0.5:554/stream1"
fps = 12.5
width = 1280
height = 720
reconnect_max_s = 5

[[cameras]]
name = "hall_2"
source = 2

[tracking]
iou_threshold = 0.25
max_missed_frames = 0
ema_alpha = 1
enter_threshold = 0.7
exit_threshold = 0
min_duration_frames = 1

[mqtt]
host = "broker.lan"
prefix = "site-a/expressions"
client_id = "expressiond-nuc-hall"
username = "nuc-hall"
password_file = "/run/credentials/expressiond.service/mqtt"
keepalive = 15
qos = 2
spool_path = "/var/lib/expressiond/spool.db"
spool_max_events = 500
stats_interval = 2.5
ha_discovery = false
ha_prefix = "ha"
reconnect_max_s = 10

[mqtt.tls]
ca_file = "/etc/ssl/ca.pem"
insecure = true

[logging]
level = "DEBUG"
journal = "no"
"""


def test_defaults_match_the_interface_contract(monkeypatch):
    monkeypatch.setattr(config_model.socket, "gethostname", lambda: "Box.Example")
    cfg = parse_config(MINIMAL, "min.toml")
    assert cfg.source == "min.toml"
    assert cfg.device_id == "box-example"
    assert cfg.models_dir is None
    assert cfg.inference == InferenceConfig(
        device="CPU", precision="FP16", num_requests="auto", performance_hint="THROUGHPUT", cache_dir=None
    )
    assert cfg.detector == DetectorConfig(
        model="omz/face-detection-retail-0005",
        device=None,
        precision=None,
        threshold=0.5,
        nms_iou=0.5,
        max_faces=20,
        min_face_px=20,
    )
    # the classifier: the ensemble of issue 17, face-api's net with its mirror image and human's
    # mini-Xception without, averaged, with the shipped calibration when the members are these
    assert cfg.classifier.model is None and cfg.classifier.is_ensemble
    assert cfg.classifier.members == (
        EnsembleMember(model="face-api/expression", weight=1.0, flip=True, crop="auto", margin=None),
        EnsembleMember(model="human/emotion", weight=1.0, flip=False, crop="auto", margin=None),
    )
    assert (cfg.classifier.combine, cfg.classifier.calibration) == ("mean", "auto")
    assert (cfg.classifier.device, cfg.classifier.precision) == (None, None)
    assert cfg.cameras == (
        CameraConfig(
            name="door",
            source="/dev/video0",
            fps=10.0,
            loop=False,
            width=None,
            height=None,
            reconnect_max_s=30.0,
        ),
    )
    assert cfg.tracking == TrackingConfig(
        iou_threshold=0.3,
        max_missed_frames=10,
        ema_alpha=0.4,
        enter_threshold=0.45,  # on the default ensemble's calibrated scores (issue 17)
        exit_threshold=0.3,
        min_duration_frames=3,
    )
    assert cfg.mqtt is None
    assert cfg.logging == LoggingConfig(level="INFO", journal="auto")


def test_empty_mqtt_table_enables_mqtt_with_defaults():
    mqtt = parse_config(MINIMAL + "[mqtt]\n").mqtt
    assert mqtt == MqttConfig()
    assert (mqtt.host, mqtt.port, mqtt.prefix, mqtt.qos, mqtt.keepalive) == (
        "127.0.0.1", 1883, "expressiond", 1, 30,
    )  # fmt: skip
    assert (mqtt.spool_max_events, mqtt.stats_interval, mqtt.reconnect_max_s) == (100000, 30, 60)
    assert (mqtt.ha_discovery, mqtt.ha_prefix, mqtt.tls) == (True, "homeassistant", None)


def test_tls_table_turns_tls_on_and_moves_the_default_port():
    assert parse_config(MINIMAL + "[mqtt]\n[mqtt.tls]\n").mqtt == MqttConfig(port=8883, tls=TlsConfig())
    assert parse_config(MINIMAL + "[mqtt]\nport = 1884\n[mqtt.tls]\n").mqtt.port == 1884


def test_full_config_values_and_types():
    cfg = parse_config(FULL, "full.toml")
    assert cfg.inference.num_requests == 4
    assert cfg.detector.model == "/srv/models/retail-0004.xml" and not cfg.detector.is_builtin
    assert cfg.classifier.is_builtin
    assert cfg.model_device(cfg.detector) == "GPU.1"
    assert cfg.model_device(cfg.classifier) == "NPU"
    assert cfg.model_precision(cfg.detector) == "FP32"
    assert cfg.model_precision(cfg.classifier) == "FP16"
    door, hall = cfg.cameras
    assert (door.fps, door.width, door.height, door.reconnect_max_s) == (12.5, 1280, 720, 5.0)
    assert isinstance(door.reconnect_max_s, float) and isinstance(cfg.tracking.ema_alpha, float)
    assert hall.source == "2" and hall.source_kind == "v4l2"
    assert door.source_kind == "stream"
    assert cfg.camera("hall_2") is hall
    assert door.realtime and hall.realtime  # the default: played like a camera
    assert cfg.mqtt.tls == TlsConfig(ca_file="/etc/ssl/ca.pem", cert_file=None, key_file=None, insecure=True)
    assert cfg.mqtt.port == 8883 and cfg.mqtt.prefix == "site-a/expressions"
    assert cfg.mqtt.resolved_spool_path() == Path("/var/lib/expressiond/spool.db")
    assert cfg.logging == LoggingConfig(level="DEBUG", journal="no")


def test_shipped_config_loads_with_the_documented_defaults():
    cfg = load_config(SHIPPED)
    assert cfg.source == str(SHIPPED)
    assert cfg.cameras == (CameraConfig(name="demo", source="samples", fps=10.0, loop=True),)
    assert cfg.cameras[0].source_kind == "samples"
    assert (cfg.inference.device, cfg.inference.precision) == ("CPU", "FP16")
    assert cfg.mqtt == MqttConfig(host="127.0.0.1", port=1883)
    # every key written in the file holds its default, as the file says
    defaults = parse_config('[mqtt]\n[[cameras]]\nname = "demo"\nsource = "samples"\nloop = true')
    assert cfg == dataclasses.replace(defaults, source=str(SHIPPED))


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_shipped_config_documents_every_key():
    text = SHIPPED.read_text(encoding="utf-8")
    written = set(re.findall(r"(?m)^#?([a-z_]+) = ", text))
    expected = (
        {"device_id", "models_dir"}
        | _fields(InferenceConfig)
        | _fields(DetectorConfig)
        | _fields(ClassifierConfig)
        | _fields(CameraConfig)
        | _fields(TrackingConfig)
        | (_fields(MqttConfig) - {"tls"})
        | _fields(TlsConfig)
        | _fields(LoggingConfig)
        | _fields(HttpConfig)
    )
    assert expected - written == set()
    assert "#[mqtt.tls]" in text and "#[http]" in text
    # each key, set or commented out, sits under a comment block that states its default
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^#?[a-z_]+ = ", line):
            start = number
            while start > 0 and lines[start - 1].startswith("#"):
                start -= 1
            block = "\n".join(lines[start:number])
            assert "Default" in block or "Required" in block, line


def test_shipped_config_examples_are_valid_when_uncommented():
    text = SHIPPED.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^#(?=[a-z\[])", "", text)
    cfg = parse_config(uncommented, "uncommented")
    assert cfg.device_id == "nuc-hall"
    assert cfg.cameras[0].width == 1280 and cfg.cameras[0].height == 720
    assert cfg.mqtt.tls is not None and cfg.mqtt.username == "nuc-hall"
    assert cfg.detector.device == "GPU"


def test_to_dict_is_json_and_round_trips():
    cfg = parse_config(FULL, "full.toml")
    data = cfg.to_dict(redact_secrets=False)
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {f.name for f in dataclasses.fields(Config)} - {"key_lines"}
    assert set(data["classifier"]) == {
        "model",
        "device",
        "precision",
        "flip",
        "crop",
        "margin",
        "ensemble",
        "combine",
        "calibration",
    }
    back = from_dict(json.loads(json.dumps(data)))
    assert back == cfg and back.source == "full.toml"
    minimal = parse_config(MINIMAL)
    assert from_dict(minimal.to_dict()) == minimal


def test_to_dict_redacts_camera_url_passwords_by_default():
    data = parse_config(FULL).to_dict()
    assert data["cameras"][0]["source"] == "rtsp://viewer:***@10.0.0.5:554/stream1"
    assert "hunter2" not in json.dumps(data)


def test_config_is_frozen_and_hashable():
    cfg = parse_config(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.device_id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.cameras[0].fps = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mqtt.tls.insecure = False  # type: ignore[union-attr,misc]
    assert isinstance(cfg.cameras, tuple)
    with pytest.raises(TypeError):
        cfg.key_lines["device_id"] = 99  # type: ignore[index]
    assert hash(cfg) == hash(parse_config(FULL))


@pytest.mark.parametrize(
    ("hostname", "device_id"),
    [
        ("nuc-hall", "nuc-hall"),
        ("NUC-Hall", "nuc-hall"),
        ("nuc.local", "nuc-local"),
        ("box_1 (lab)", "box_1--lab-"),
        ("Küche+#/x", "k-che---x"),
        ("a" * 70, "a" * 64),
        ("", "expressiond"),
    ],
)
def test_hostname_device_id_sanitises(hostname, device_id):
    assert hostname_device_id(hostname) == device_id
    assert re.fullmatch(r"[a-z0-9_-]{1,64}", hostname_device_id(hostname))


def test_hostname_device_id_uses_the_real_hostname(monkeypatch):
    monkeypatch.setattr(config_model.socket, "gethostname", lambda: "Edge.Box.LAN")
    assert hostname_device_id() == "edge-box-lan"


def test_key_lines_follow_toml_structure():
    text = (
        "# a = 1\n"  # 1
        'top = """\nfake = 1\n"""\n'  # 2-4
        "[mqtt.tls]\n"  # 5
        "ca_file = 'c#a'  # comment\n"  # 6
        "[[cameras]]\n"  # 7
        'name = "a"\n'  # 8
        "[[cameras]]\n"  # 9
        '"quoted key" = 1\n'  # 10
        "[[cameras.zones]]\n"  # 11
        "box = [\n  1,\n  2,\n]\n"  # 12-15
        "inline = { x = 1, y = { z = 2 } }\n"  # 16
        "dotted.key = 3\n"  # 17
    )
    lines = key_lines(text)
    assert lines[("top",)] == 2
    assert ("fake",) not in lines
    assert lines[("mqtt",)] == 5 and lines[("mqtt", "tls", "ca_file")] == 6
    assert lines[("cameras",)] == 7 and lines[("cameras", 0)] == 7
    assert lines[("cameras", 0, "name")] == 8
    assert lines[("cameras", 1)] == 9 and lines[("cameras", 1, "quoted key")] == 10
    assert lines[("cameras", 1, "zones", 0)] == 11
    assert lines[("cameras", 1, "zones", 0, "box", 1)] == 14
    assert lines[("cameras", 1, "zones", 0, "inline", "y", "z")] == 16
    assert lines[("cameras", 1, "zones", 0, "dotted", "key")] == 17


IR_FILES = ("model.xml", "model.bin", "model.json")


def _build_ir(models_dir: Path, name: str, precision: str, files=IR_FILES) -> Path:
    """Stand-in IR files; a classifier's model.json has its labels (check_model_files reads
    them to check the ensemble)."""
    folder = paths.builtin_model_dir(models_dir, name, precision)
    folder.mkdir(parents=True)
    for file in files:
        text = "x"
        if file == "model.json" and name in paths.CLASSIFIER_MODELS:
            text = json.dumps({"labels": list(paths.EXPRESSION_LABELS)})
        (folder / file).write_text(text)
    return folder


def _with_models_dir(models_dir: Path, extra: str = "") -> Config:
    return parse_config(f'models_dir = "{models_dir}"\n{extra}{MINIMAL}', "m.toml")


def test_parsing_never_looks_at_model_files(tmp_path):
    cfg = parse_config(f'models_dir = "{tmp_path}/absent"\n[detector]\nmodel = "/absent/x.xml"\n' + MINIMAL)
    assert cfg.models_dir == f"{tmp_path}/absent"  # no error until check_model_files


def test_check_model_files_accepts_built_builtins(tmp_path):
    for name in paths.BUILTIN_MODELS:
        _build_ir(tmp_path, name, "FP16")
    check_model_files(_with_models_dir(tmp_path))


def test_check_model_files_names_the_missing_file_and_the_fix(tmp_path):
    _build_ir(tmp_path, paths.BUILTIN_DETECTOR, "FP16")
    _build_ir(tmp_path, paths.BUILTIN_CLASSIFIER, "FP16", files=("model.xml", "model.json"))
    with pytest.raises(ModelError) as info:
        check_model_files(_with_models_dir(tmp_path))
    message = str(info.value)
    folder = tmp_path / "face-api" / "expression" / "FP16"
    assert message.startswith("m.toml: classifier.ensemble[0].model: face-api/expression FP16 is not built")
    assert f"model.bin missing in {folder}" in message
    assert f"expressiond models build --dir {tmp_path}" in message
    assert "\n" not in message


def test_check_model_files_uses_the_precision_of_each_model(tmp_path):
    _build_ir(tmp_path, paths.BUILTIN_DETECTOR, "FP32")
    _build_ir(tmp_path, paths.BUILTIN_CLASSIFIER, "FP16")
    _build_ir(tmp_path, paths.HUMAN_EMOTION, "FP16")
    check_model_files(_with_models_dir(tmp_path, '[detector]\nprecision = "FP32"\n'))
    with pytest.raises(ModelError, match=r"^m\.toml:3: detector\.model: .* FP16 is not built"):
        check_model_files(_with_models_dir(tmp_path, '[detector]\nmodel = "face-api/ssd_mobilenetv1"\n'))
    with pytest.raises(ModelError, match=r"classifier\.ensemble\[0\]\.model: face-api/expression FP32"):
        check_model_files(
            _with_models_dir(tmp_path, '[inference]\nprecision = "FP32"\n[detector]\nprecision = "FP32"\n')
        )


def test_int8_precision_is_accepted_globally_and_per_model(tmp_path):
    assert paths.PRECISIONS == ("FP32", "FP16", "INT8")
    cfg = parse_config('[inference]\nprecision = "INT8"\n[detector]\nprecision = "FP16"\n' + MINIMAL)
    assert cfg.model_precision(cfg.detector) == "FP16"
    assert cfg.model_precision(cfg.classifier) == "INT8"
    cfg = parse_config('[classifier]\nprecision = "INT8"\n' + MINIMAL)
    assert (cfg.model_precision(cfg.detector), cfg.model_precision(cfg.classifier)) == ("FP16", "INT8")
    _build_ir(tmp_path, paths.BUILTIN_DETECTOR, "FP16")
    _build_ir(tmp_path, paths.BUILTIN_CLASSIFIER, "INT8")
    _build_ir(tmp_path, paths.HUMAN_EMOTION, "FP16")  # it has no INT8 IR: INT8 runs its FP16 IR
    assert paths.builtin_model_dir(tmp_path, paths.HUMAN_EMOTION, "INT8").name == "FP16"
    face_api = f'[detector]\nmodel = "{paths.BUILTIN_DETECTOR}"\n'
    check_model_files(_with_models_dir(tmp_path, face_api + '[classifier]\nprecision = "INT8"\n'))
    with pytest.raises(
        ModelError,
        match=r"detector\.model: face-api/ssd_mobilenetv1 INT8 is not "
        r"built: .*INT8; run: expressiond models build",
    ):
        check_model_files(_with_models_dir(tmp_path, '[inference]\nprecision = "INT8"\n' + face_api))


def test_check_model_files_default_models_dir_comes_from_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPRESSIOND_MODELS", str(tmp_path))
    cfg = parse_config(MINIMAL)
    assert cfg.models_path() == tmp_path
    with pytest.raises(ModelError, match=re.escape(str(tmp_path / "face-api"))):
        check_model_files(cfg)
    for name in paths.BUILTIN_MODELS:
        _build_ir(tmp_path, name, "FP16")
    check_model_files(cfg)


def test_check_model_files_configured_models_dir_must_exist(tmp_path):
    cfg = _with_models_dir(tmp_path / "nope")
    with pytest.raises(ConfigError) as info:
        check_model_files(cfg)
    assert str(info.value).startswith(f"m.toml:1: models_dir: directory {tmp_path / 'nope'}")
    assert not isinstance(info.value, ModelError)


def test_check_model_files_custom_ir_needs_bin_and_json_beside_it(tmp_path):
    for name in paths.BUILTIN_MODELS:
        _build_ir(tmp_path, name, "FP16")
    xml = tmp_path / "custom" / "faces.xml"
    extra = f'[detector]\nmodel = "{xml}"\n'
    with pytest.raises(ConfigError, match=r"^m\.toml:3: detector\.model: model file .* not found"):
        check_model_files(_with_models_dir(tmp_path, extra))
    xml.parent.mkdir()
    xml.write_text("<net/>")
    xml.with_suffix(".bin").write_bytes(b"\0")
    with pytest.raises(ModelError) as info:
        check_model_files(_with_models_dir(tmp_path, extra))
    assert f"faces.xml needs {xml.with_suffix('.json')} beside it" in str(info.value)
    assert str(xml.with_suffix(".bin")) not in str(info.value)
    xml.with_suffix(".json").write_text("{}")
    check_model_files(_with_models_dir(tmp_path, extra))


def test_samples_source_resolves_under_models_dir(tmp_path):
    cfg = parse_config(f'models_dir = "{tmp_path}"\n[[cameras]]\nname = "d"\nsource = "samples"\n')
    camera = cfg.cameras[0]
    assert camera.resolve_source(cfg.models_path()) == str(tmp_path / "samples" / "demo.avi")
    with pytest.raises(ConfigError, match=r"^<string>:4: cameras\[0\]\.source: sample clip"):
        check_camera_sources(cfg)
    (tmp_path / "samples").mkdir()
    with pytest.raises(ConfigError, match="models build"):
        check_camera_sources(cfg)  # the folder alone is not enough: the clip is what plays
    (tmp_path / "samples" / "demo.avi").write_bytes(b"clip")
    check_camera_sources(cfg)


def test_check_camera_sources_skips_devices_and_urls_but_checks_files(tmp_path):
    video = tmp_path / "clip.mp4"
    text = (
        '[[cameras]]\nname = "a"\nsource = "/dev/video9"\n'
        '[[cameras]]\nname = "b"\nsource = "rtsp://cam/x"\n'
        f'[[cameras]]\nname = "c"\nsource = "{video}"\n'
    )
    cfg = parse_config(text, "c.toml")
    with pytest.raises(ConfigError, match=r"^c\.toml:9: cameras\[2\]\.source: video file"):
        check_camera_sources(cfg)
    video.write_bytes(b"")
    check_camera_sources(cfg)


def test_realtime_false_for_files_folders_and_samples():
    for source in ("/srv/clips/hall.mp4", "/srv/frames", "samples"):
        cfg = parse_config(f'[[cameras]]\nname = "a"\nsource = "{source}"\nrealtime = false\n')
        assert cfg.cameras[0].realtime is False


def test_http_is_off_by_default_and_loopback_when_on():
    assert parse_config(MINIMAL).http is None
    cfg = parse_config("[http]\n" + MINIMAL)
    assert cfg.http == HttpConfig() and cfg.http.address == ("127.0.0.1", 9108)
    for listen, address in (("[::1]:9200", ("::1", 9200)), ("localhost:80", ("localhost", 80))):
        assert parse_config(f'[http]\nlisten = "{listen}"\n' + MINIMAL).http.address == address


def test_http_remote_listen_needs_allow_remote():
    text = '[http]\nlisten = "0.0.0.0:9108"\nallow_remote = true\n' + MINIMAL
    cfg = parse_config(text)
    assert cfg.http.address == ("0.0.0.0", 9108) and cfg.http.allow_remote
    with pytest.raises(ConfigError, match=r"^c\.toml:2: http\.listen: 0\.0\.0\.0 is not a loopback"):
        parse_config('[http]\nlisten = "0.0.0.0:9108"\n' + MINIMAL, "c.toml")


def test_http_is_fixed_until_a_restart():
    old = parse_config("[http]\n" + MINIMAL)
    new = parse_config('[http]\nlisten = "127.0.0.1:9200"\n' + MINIMAL)
    assert config_pkg.restart_changes(old, new) == ["http"]
