"""Broken configs: each must raise ConfigError with one line naming file:line and key path.

Each case is a whole TOML file; the line the error must point at carries the marker ``#<``
(a TOML comment), so the expected line number is found from the text, not hard-coded.
"""

from __future__ import annotations

import pytest

from expressiond.config import from_dict, load_config, parse_config
from expressiond.errors import EXIT_CONFIG, ConfigError

CAM = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'
SYNTAX = "TOML syntax error"  # syntax errors have no key path

# fmt: off
CASES = [
    # (id, toml text, key path (or SYNTAX), fragment the message must contain)
    ("fps-negative", '[[cameras]]\nname = "a"\nsource = "0"\nfps = -3 #<\n',
     "cameras[0].fps", "must be a number > 0 and <= 120, got -3"),
    ("fps-too-high", '[[cameras]]\nname = "a"\nsource = "0"\nfps = 121 #<\n',
     "cameras[0].fps", "got 121"),
    ("fps-bool", '[[cameras]]\nname = "a"\nsource = "0"\nfps = true #<\n',
     "cameras[0].fps", "got true (a boolean)"),
    ("fps-quoted", '[[cameras]]\nname = "a"\nsource = "0"\nfps = "10" #<\n',
     "cameras[0].fps", "write the number without quotes"),
    ("fps-nan", '[[cameras]]\nname = "a"\nsource = "0"\nfps = nan #<\n',
     "cameras[0].fps", "got nan"),
    ("fps-date", '[[cameras]]\nname = "a"\nsource = "0"\nfps = 1979-05-27 #<\n',
     "cameras[0].fps", "(a date/time)"),
    ("second-camera-fps", CAM + '\n[[cameras]]\nname = "b"\nsource = "1"\nfps = 0 #<\n',
     "cameras[1].fps", "got 0"),
    ("unknown-top-key", 'devcie_id = "nuc" #<\n' + CAM,
     "devcie_id", 'unknown key; remove it or fix its name (did you mean "device_id"?)'),
    ("unknown-camera-key", '[[cameras]]\nname = "a"\nsource = "0"\nfsp = 10 #<\n',
     "cameras[0].fsp", 'did you mean "fps"?'),
    ("unknown-table", CAM + "[camera] #<\nfps = 3\n", "camera", 'did you mean "cameras"?'),
    ("unknown-mqtt-key", CAM + "[mqtt]\nhost = \"h\"\nretain = true #<\n",
     "mqtt.retain", "valid keys:"),
    ("missing-source", '[[cameras]] #<\nname = "a"\nfps = 5\n',
     "cameras[0].source", "missing: add source ="),
    ("missing-name-second", CAM + '[[cameras]] #<\nsource = "1"\n',
     "cameras[1].name", 'missing: add name = "door"'),
    ("no-cameras", "#<\n[inference]\ndevice = \"CPU\"\n",
     "cameras", "missing: add a [[cameras]] table"),
    ("cameras-empty", "cameras = [] #<\n", "cameras", "is empty"),
    ("cameras-single-table", '[cameras] #<\nname = "a"\nsource = "0"\n',
     "cameras", "write [[cameras]] (double brackets)"),
    ("duplicate-name", CAM + '[[cameras]]\nname = "door" #<\nsource = "1"\n',
     "cameras[1].name", 'duplicate camera name "door" (cameras[0] has it too)'),
    ("name-uppercase", '[[cameras]]\nname = "Door" #<\nsource = "0"\n',
     "cameras[0].name", 'got "Door"; try "door"'),
    ("name-slash", '[[cameras]]\nname = "a/b" #<\nsource = "0"\n', "cameras[0].name", "a/b"),
    ("name-hash", '[[cameras]]\nname = "a#" #<\nsource = "0"\n', "cameras[0].name", "MQTT"),
    ("name-plus", '[[cameras]]\nname = "+" #<\nsource = "0"\n', "cameras[0].name", 'got "+"'),
    ("name-empty", '[[cameras]]\nname = "" #<\nsource = "0"\n', "cameras[0].name", 'got ""'),
    ("name-too-long", f'[[cameras]]\nname = "{"x" * 33}" #<\nsource = "0"\n',
     "cameras[0].name", "1 to 32 characters"),
    ("name-literal-hash", "[[cameras]]\nname = 'a#b' #<\nsource = \"0\"\n",
     "cameras[0].name", 'got "a#b"'),
    ("device-id-upper", 'device_id = "NUC-Hall" #<\n' + CAM, "device_id", 'try "nuc-hall"'),
    ("device-id-plus", 'device_id = "a+b" #<\n' + CAM, "device_id", "MQTT topic level"),
    ("device-id-int", "device_id = 7 #<\n" + CAM, "device_id", "got 7"),
    ("prefix-wildcard", CAM + '[mqtt]\nprefix = "home/+/x" #<\n', "mqtt.prefix", "no +, #"),
    ("prefix-empty-level", CAM + '[mqtt]\nprefix = "/home" #<\n', "mqtt.prefix", "empty levels"),
    ("prefix-upper", CAM + '[mqtt]\nprefix = "Home" #<\n', "mqtt.prefix", 'got "Home"'),
    ("prefix-hash", CAM + '[mqtt]\nprefix = "a#" #<\n', "mqtt.prefix", 'got "a#"'),
    ("ha-prefix-empty", CAM + '[mqtt]\nha_prefix = "" #<\n', "mqtt.ha_prefix", 'got ""'),
    ("mqtt-password", CAM + '[mqtt]\nusername = "u"\npassword = "s3cret" #<\n',
     "mqtt.password", "set password_file ="),
    ("mqtt-tls-password", CAM + '[mqtt]\n[mqtt.tls]\npassword = "s3cret" #<\n',
     "mqtt.tls.password", "never write the password in the config file"),
    ("password-file-no-user", CAM + '[mqtt]\npassword_file = "/etc/pw" #<\n',
     "mqtt.password_file", "set username too"),
    ("tls-key-no-cert", CAM + '[mqtt]\n[mqtt.tls]\nkey_file = "k.pem" #<\n',
     "mqtt.tls.key_file", "set cert_file too"),
    ("mqtt-port-range", CAM + "[mqtt]\nport = 70000 #<\n", "mqtt.port", "1 to 65535, got 70000"),
    ("mqtt-port-quoted", CAM + '[mqtt]\nport = "1883" #<\n', "mqtt.port", "without quotes"),
    ("mqtt-qos", CAM + "[mqtt]\nqos = 3 #<\n", "mqtt.qos", "must be 1 or 2 (QoS 0 would let events be lost"),
    ("mqtt-qos-0", CAM + "[mqtt]\nqos = 0 #<\n", "mqtt.qos", "lost on a disconnect), got 0"),
    ("mqtt-qos-bool", CAM + "[mqtt]\nqos = true #<\n", "mqtt.qos", "got true (a boolean)"),
    ("mqtt-keepalive", CAM + "[mqtt]\nkeepalive = 0 #<\n", "mqtt.keepalive", "got 0"),
    ("mqtt-host-url", CAM + '[mqtt]\nhost = "mqtt://b" #<\n', "mqtt.host", "no scheme"),
    ("mqtt-ha-discovery", CAM + '[mqtt]\nha_discovery = "true" #<\n',
     "mqtt.ha_discovery", "write true or false without quotes"),
    ("mqtt-dotted-key", "mqtt.port = 0 #<\n" + CAM, "mqtt.port", "got 0"),
    ("width-no-height", '[[cameras]]\nname = "a"\nsource = "0"\nwidth = 640 #<\n',
     "cameras[0].width", "set height too"),
    ("height-no-width", '[[cameras]]\nname = "a"\nsource = "0"\nheight = 480 #<\n',
     "cameras[0].height", "set width too"),
    ("width-float", '[[cameras]]\nname = "a"\nsource = "0"\nwidth = 640.0 #<\nheight = 480\n',
     "cameras[0].width", "an integer from 16 to 8192"),
    ("loop-string", '[[cameras]]\nname = "a"\nsource = "x.mp4"\nloop = "yes" #<\n',
     "cameras[0].loop", "must be true or false"),
    ("source-scheme", '[[cameras]]\nname = "a"\nsource = "ftp://h/x" #<\n',
     "cameras[0].source", 'URL scheme "ftp://" is not supported'),
    ("source-no-host", '[[cameras]]\nname = "a"\nsource = "rtsp:///x" #<\n',
     "cameras[0].source", "has no host"),
    ("source-bool", '[[cameras]]\nname = "a"\nsource = true #<\n', "cameras[0].source", "got true"),
    ("source-negative-index", '[[cameras]]\nname = "a"\nsource = -1 #<\n',
     "cameras[0].source", "got -1"),
    ("reconnect-zero", '[[cameras]]\nname = "a"\nsource = "0"\nreconnect_max_s = 0 #<\n',
     "cameras[0].reconnect_max_s", "got 0"),
    ("realtime-false-live", '[[cameras]]\nname = "a"\nsource = "rtsp://h/s"\nrealtime = false #<\n',
     "cameras[0].realtime", "only applies to video files, image folders and samples"),
    ("realtime-false-v4l2", '[[cameras]]\nname = "a"\nsource = "/dev/video0"\nrealtime = false #<\n',
     "cameras[0].realtime", "a live camera or stream sets its own pace"),
    ("realtime-string", '[[cameras]]\nname = "a"\nsource = "x.mp4"\nrealtime = "no" #<\n',
     "cameras[0].realtime", "must be true or false"),
    ("inline-camera",
     'cameras = [\n  {name = "a", source = "0"},\n  {name = "b", source = "1", fps = 0}, #<\n]\n',
     "cameras[1].fps", "got 0"),
    ("quoted-key", '[[cameras]]\nname = "a"\nsource = "0"\n"fps" = -1 #<\n',
     "cameras[0].fps", "got -1"),
    ("precision-case", '[inference]\nprecision = "fp16" #<\n' + CAM,
     "inference.precision", 'one of "FP32", "FP16", "INT8", got "fp16" (write "FP16")'),
    ("precision-int8-case", '[detector]\nprecision = "int8" #<\n' + CAM,
     "detector.precision", 'got "int8" (write "INT8")'),
    ("device-case", '[inference]\ndevice = "gpu" #<\n' + CAM,
     "inference.device", 'write "GPU"'),
    ("device-empty", '[inference]\ndevice = "" #<\n' + CAM, "inference.device", 'got ""'),
    ("num-requests-zero", "[inference]\nnum_requests = 0 #<\n" + CAM,
     "inference.num_requests", 'an integer from 1 to 64 or "auto", got 0'),
    ("num-requests-bool", "[inference]\nnum_requests = true #<\n" + CAM,
     "inference.num_requests", "got true"),
    ("num-requests-string", '[inference]\nnum_requests = "4" #<\n' + CAM,
     "inference.num_requests", 'got "4"'),
    ("hint", '[inference]\nperformance_hint = "fast" #<\n' + CAM,
     "inference.performance_hint", '"LATENCY", "THROUGHPUT", "none"'),
    ("inference-not-table", 'inference = "GPU" #<\n' + CAM, "inference", "a table"),
    ("detector-threshold", "[detector]\nthreshold = 1.5 #<\n" + CAM,
     "detector.threshold", "> 0 and < 1, got 1.5"),
    ("detector-max-faces", "[detector]\nmax_faces = 0 #<\n" + CAM, "detector.max_faces", "got 0"),
    ("detector-wrong-builtin", '[detector]\nmodel = "face-api/expression" #<\n' + CAM,
     "detector.model", '"face-api/ssd_mobilenetv1" or a path'),
    ("detector-onnx", '[detector]\nmodel = "/m/face.onnx" #<\n' + CAM,
     "detector.model", "OpenVINO IR .xml"),
    ("classifier-threshold", "[classifier]\nthreshold = 0.7 #<\n" + CAM,
     "classifier.threshold", "only the detector uses threshold; move it to [detector]"),
    ("classifier-precision", '[classifier]\nprecision = "INT4" #<\n' + CAM,
     "classifier.precision", 'got "INT4"'),
    ("tracking-hysteresis", "[tracking]\nenter_threshold = 0.5\nexit_threshold = 0.5 #<\n" + CAM,
     "tracking.exit_threshold", "must be lower than enter_threshold"),
    ("tracking-alpha", "[tracking]\nema_alpha = 0 #<\n" + CAM, "tracking.ema_alpha", "got 0"),
    ("logging-level-case", '[logging]\nlevel = "info" #<\n' + CAM,
     "logging.level", '(write "INFO")'),
    ("logging-journal-bool", "[logging]\njournal = true #<\n" + CAM,
     "logging.journal", '"auto", "yes", "no", got true'),
    ("models-dir-int", "models_dir = 5 #<\n" + CAM, "models_dir", "a non-empty path, got 5"),
    ("after-tricky-strings",
     'device_id = "x" # fps = -3 in a comment\nmodels_dir = """\nfps = 1\n"""\n'
     "[[cameras]]\nname = 'a'\nsource = \"0\"\nfps = -2 #<\n", "cameras[0].fps", "got -2"),
    # [classifier]: one model or an ensemble (issue 17)
    ("ensemble-unknown-model",
     '[classifier]\nensemble = [\n  { model = "face-api/expression" },\n'
     '  { model = "human/emotions" }, #<\n]\n' + CAM,
     "classifier.ensemble[1].model", 'got "human/emotions"'),
    ("ensemble-bad-weight",
     '[classifier]\nensemble = [\n  { model = "face-api/expression", weight = -1 }, #<\n]\n' + CAM,
     "classifier.ensemble[0].weight", "must be a number > 0 and <= 100, got -1"),
    ("ensemble-weight-string",
     '[classifier]\nensemble = [{ model = "human/emotion", weight = "2" }] #<\n' + CAM,
     "classifier.ensemble[0].weight", "write the number without quotes"),
    ("ensemble-member-without-model",
     '[classifier]\nensemble = [\n  { weight = 2.0 }, #<\n]\n' + CAM,
     "classifier.ensemble[0].model", 'missing: add model = "face-api/expression"'),
    ("ensemble-member-unknown-key",
     '[classifier]\nensemble = [\n  { model = "human/emotion", wieght = 2 }, #<\n]\n' + CAM,
     "classifier.ensemble[0].wieght", 'did you mean "weight"?'),
    ("ensemble-member-not-a-table", '[classifier]\nensemble = ["human/emotion"] #<\n' + CAM,
     "classifier.ensemble", '[0] must be a table such as { model = ... }, got "human/emotion"'),
    ("ensemble-empty", "[classifier]\nensemble = [] #<\n" + CAM,
     "classifier.ensemble", "must be an array of 1 to 8 tables"),
    ("ensemble-twice-the-same",
     '[classifier]\nensemble = [\n  { model = "human/emotion" },\n  { model = "human/emotion" }, #<\n]\n'
     + CAM, "classifier.ensemble[1].model", "ensemble[0] is the same network run the same way"),
    ("ensemble-and-model",
     '[classifier]\nmodel = "face-api/expression"\nensemble = [{ model = "human/emotion" }] #<\n' + CAM,
     "classifier.ensemble", "write either model = ... (one network) or ensemble = [...], not both"),
    ("combine-with-one-model", '[classifier]\nmodel = "human/emotion"\ncombine = "mean" #<\n' + CAM,
     "classifier.combine", "combine applies to an ensemble"),
    ("combine-unknown", '[classifier]\ncombine = "median" #<\n' + CAM,
     "classifier.combine", 'must be one of "mean", got "median"'),
    ("calibration-case", '[classifier]\ncalibration = "None" #<\n' + CAM,
     "classifier.calibration", 'write "none" (lower case)'),
    ("calibration-number", "[classifier]\ncalibration = 1 #<\n" + CAM,
     "classifier.calibration", '"auto" (the shipped calibration when it was fitted for these members'),
    ("ensemble-in-detector", '[detector]\nensemble = [{ model = "human/emotion" }] #<\n' + CAM,
     "detector.ensemble", "only the classifier uses ensemble; move it to [classifier]"),
    ("decode-unknown", '[[cameras]]\nname = "a"\nsource = "rtsp://cam/s"\ndecode = "gpu" #<\n',
     "cameras[0].decode", 'must be one of "auto", "software", "vaapi", got "gpu"'),
    ("rtsp-transport-unknown", '[[cameras]]\nname = "a"\nsource = "rtsp://c/s"\nrtsp_transport = "x" #<\n',
     "cameras[0].rtsp_transport", 'must be one of "tcp", "udp", got "x"'),
    ("decode-on-a-file", '[[cameras]]\nname = "a"\nsource = "/srv/a.mp4"\ndecode = "vaapi" #<\n',
     "cameras[0].decode", "applies only to network streams, not to this file source; remove it"),
    ("rtsp-transport-on-http", '[[cameras]]\nname = "a"\nsource = "http://c/x"\nrtsp_transport = "udp" #<\n',
     "cameras[0].rtsp_transport", "applies only to rtsp:// and rtsps:// streams"),
    ("fourcc-lower-case", '[[cameras]]\nname = "a"\nsource = "0"\nfourcc = "mjpg" #<\n',
     "cameras[0].fourcc", 'must be 4 characters A-Z or 0-9, such as MJPG or YUYV, got "mjpg"'),
    ("fourcc-on-a-stream", '[[cameras]]\nname = "a"\nsource = "rtsp://cam/s"\nfourcc = "MJPG" #<\n',
     "cameras[0].fourcc", "applies only to V4L2 cameras (/dev/videoN), not to this stream source"),
    ("stall-intervals-low", '[[cameras]]\nname = "a"\nsource = "0"\nstall_intervals = 2 #<\n',
     "cameras[0].stall_intervals", "must be an integer from 3 to 100000, got 2"),
    ("syntax-missing-value", '[[cameras]]\nname = "a"\nfps = #<\n', SYNTAX, "Invalid value"),
    ("syntax-duplicate-key", '[[cameras]]\nname = "a"\nname = "b" #<\n', SYNTAX, "overwrite"),
    ("syntax-unterminated", '[[cameras]]\nname = "a #<\n', SYNTAX, "fix that line"),
    ("syntax-bare-string", "[inference]\ndevice = GPU #<\n", SYNTAX, "column 10"),
    ("http-all-interfaces", CAM + '[http]\nlisten = "0.0.0.0:9108" #<\n',
     "http.listen", "0.0.0.0 is not a loopback address"),
    ("http-lan-address", CAM + '[http]\nallow_remote = false\nlisten = "192.168.1.5:9108" #<\n',
     "http.listen", "set allow_remote = true"),
    ("http-no-port", CAM + '[http]\nlisten = "127.0.0.1" #<\n', "http.listen", "HOST:PORT"),
    ("http-v6-brackets", CAM + '[http]\nlisten = "::1:9108" #<\n', "http.listen", "[::1]:9108"),
    ("http-host-name", CAM + '[http]\nlisten = "metrics.lan:9108" #<\n', "http.listen", "IP address"),
    ("http-remote-bool", CAM + '[http]\nallow_remote = "yes" #<\n', "http.allow_remote", "true or false"),
]
# fmt: on


def _expected_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.endswith("#<")]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


@pytest.mark.parametrize(("text", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_names_file_line_and_key(tmp_path, text, path, fragment):
    config_file = tmp_path / "expressiond.toml"
    config_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    line = _expected_line(text)
    expected = f"{config_file}:{line}: {path}" + ("" if path == SYNTAX else ": ")
    assert message.startswith(expected), message
    assert fragment in message, message
    assert "\n" not in message and "\r" not in message
    assert info.value.exit_code == EXIT_CONFIG


def test_there_are_enough_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 25
    assert len({c[1] for c in CASES}) == len(CASES)


def test_first_problem_in_file_order_is_raised_and_the_rest_are_counted():
    text = (
        '[inference]\nprecision = "fp32"\n'  # line 2
        '[[cameras]]\nname = "A"\nsource = "0"\nfps = 0\n'  # lines 4 and 6
        '[mqtt]\npassword = "x"\n'  # line 8
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.toml")
    assert str(info.value).startswith("cfg.toml:2: inference.precision: ")
    assert str(info.value).endswith("(3 more problems after this one)")
    problems = info.value.problems
    assert [p.split(": ")[0:2] for p in problems] == [
        ["cfg.toml:2", "inference.precision"],
        ["cfg.toml:4", "cameras[0].name"],
        ["cfg.toml:6", "cameras[0].fps"],
        ["cfg.toml:8", "mqtt.password"],
    ]


def test_password_key_is_reported_once_not_also_as_unknown():
    with pytest.raises(ConfigError) as info:
        parse_config(CAM + '[mqtt]\npassword = "x"\n', "c.toml")
    assert info.value.problems == (
        "c.toml:5: mqtt.password: never write the password in the config file: put it in a "
        'file only the daemon can read and set password_file = "/etc/expressiond/mqtt-password"',
    )


def test_syntax_error_at_end_of_document_names_the_last_line():
    with pytest.raises(ConfigError) as info:
        parse_config('[[cameras]]\nname = "a"\nsource = [1, 2', "c.toml")
    assert str(info.value).startswith("c.toml:3: TOML syntax error")


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found; create it"):
        load_config(missing)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(CAM.encode() + b'[mqtt]\nusername = "J\xfcrgen"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:5: the file is not UTF-8 text; save it as UTF-8"


def test_from_dict_errors_have_no_line_but_name_the_key():
    data = {"source": "api", "cameras": [{"name": "a", "source": "0", "fps": True}]}
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert str(info.value) == ("api: cameras[0].fps: must be a number > 0 and <= 120, got true (a boolean)")


def test_cameras_can_be_optional_but_not_by_default():
    assert parse_config("", require_cameras=False).cameras == ()
    with pytest.raises(ConfigError, match=r"^<string>:1: cameras: missing"):
        parse_config("")
