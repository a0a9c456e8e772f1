"""The command line's common ground: every command's --help (a one-line summary, defaults,
exit codes), -v before or after the command, `expressiond models` alone, and check-config
--json listing every problem of a broken config (the human output still the first one)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from expressiond.cli import build_parser, main
from expressiond.errors import EXIT_CONFIG, EXIT_USAGE

from .test_config_errors import CASES


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(words, parser) of every command and sub-command, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_the_commands_are_all_there():
    names = {" ".join(words) for words, _p in COMMANDS}
    assert names == {
        "models",
        "models build",
        "classify",
        "evaluate",
        "evaluate-detector",
        "run",
        "benchmark",
        "check-config",
        "devices",
        "convert",
    }


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=[" ".join(w) for w, _p in COMMANDS])
def test_every_help_has_a_summary_its_defaults_and_the_exit_codes(words, parser, capsys):
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    blocks = text.split("\n\n")
    assert blocks[0].startswith(f"usage: expressiond {' '.join(words)} ")
    summary = blocks[1]
    assert "\n" not in summary and summary.endswith(".") and summary[0].isupper(), summary
    assert re.search(r"exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 config or model error", text)
    flat = re.sub(r"\s+", "", text)  # argparse wraps long lines, also after a hyphen
    for action in parser._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        shown = " ".join(parser.formatter_class("x")._get_help_string(action).split())
        assert "default" in shown.lower(), (words, action.dest)
        assert re.sub(r"\s+", "", shown % {"default": action.default}) in flat, (words, action.dest)


def test_top_level_help_says_the_exit_codes_too(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert (
        "exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 config or model error"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("words", [w for w, _p in COMMANDS], ids=[" ".join(w) for w, _p in COMMANDS])
def test_verbose_after_the_command_is_the_verbose_before_it(words):
    parser = build_parser()
    required = {
        "classify": ["x.jpg"],
        "evaluate": ["d"],
        "evaluate-detector": ["v.avi"],
        "convert": ["m.onnx"],
    }
    extra = required.get(words[-1], []) + (["--labels", "a,b"] if words[-1] == "convert" else [])
    for argv in (
        [*words, *extra],
        ["-v", *words, *extra],
        [*words, "-v", *extra],
        [*words, *extra, "--verbose"],
    ):
        args = parser.parse_args(argv)
        assert args.verbose is ("-v" in argv or "--verbose" in argv), argv


def test_verbose_after_check_config_logs_at_debug(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[cameras]]\nname = "door"\nsource = "/dev/video0"\n')
    code = (
        "import logging, sys; from expressiond.cli import main; rc = main(sys.argv[1:]); "
        "print(logging.getLevelName(logging.getLogger().level)); sys.exit(rc)"
    )
    for argv, level in ((["check-config", str(cfg)], "WARNING"), (["check-config", str(cfg), "-v"], "DEBUG")):
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[-1] == level, argv


def test_models_alone_shows_its_own_help(capsys):
    assert main(["models"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: expressiond models ") and "build" in err and "Build or inspect" in err
    assert main([]) == EXIT_USAGE  # the top level alone: its help, as before
    assert capsys.readouterr().err.startswith("usage: expressiond [-h]")


# --- check-config --json ----------------------------------------------------------------------
BROKEN = (
    '[inference]\nprecision = "fp32"\n'  # line 2
    '[[cameras]]\nname = "A"\nsource = "0"\nfps = 0\n'  # lines 4 and 6
    '[mqtt]\npassword = "x"\n'  # line 8
    '[http]\nlisten = "0.0.0.0:9108"\n'  # line 10
)


def test_check_config_json_lists_every_problem(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    assert main(["check-config", "--json", str(path)]) == EXIT_CONFIG
    out = capsys.readouterr()
    body = json.loads(out.out)
    assert body["ok"] is False and body["file"] == str(path)
    got = [(p["line"], p["key"]) for p in body["problems"]]
    assert got == [
        (2, "inference.precision"),
        (4, "cameras[0].name"),
        (6, "cameras[0].fps"),
        (8, "mqtt.password"),
        (10, "http.listen"),
    ]
    for p in body["problems"]:
        assert p["file"] == str(path) and p["text"] == f"{path}:{p['line']}: {p['key']}: {p['message']}"
    # the human output: the first problem, how many more, on one line; exit 78
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    human = capsys.readouterr()
    assert human.out == ""
    assert human.err.splitlines() == [
        f"expressiond: error: {body['problems'][0]['text']} (4 more problems after this one)"
    ]


@pytest.mark.parametrize(("case_id", "text"), [c[:2] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_json_for_each_broken_case(tmp_path, capsys, case_id, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert main(["check-config", "--json", str(path)]) == EXIT_CONFIG
    body = json.loads(capsys.readouterr().out)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "#<" in ln)
    assert body["ok"] is False and body["problems"][0]["line"] == line


def test_check_config_json_lists_every_missing_file(tmp_path, capsys):
    path = tmp_path / "files.toml"
    path.write_text(
        f'[detector]\nmodel = "{tmp_path}/d.xml"\n[classifier]\nmodel = "{tmp_path}/c.xml"\n'
        f'[[cameras]]\nname = "a"\nsource = "{tmp_path}/a.avi"\n[[cameras]]\nname = "b"\n'
        f'source = "/dev/video0"\n[[cameras]]\nname = "c"\nsource = "{tmp_path}/c.avi"\n'
    )
    assert main(["check-config", "--json", str(path)]) == EXIT_CONFIG
    body = json.loads(capsys.readouterr().out)
    assert [(p["line"], p["key"]) for p in body["problems"]] == [
        (2, "detector.model"),
        (4, "classifier.model"),
        (7, "cameras[0].source"),
        (13, "cameras[2].source"),
    ]
    assert main(["check-config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"expressiond: error: {path}:2: detector.model: model file ")
    assert err.rstrip().endswith("(3 more problems after this one)") and len(err.splitlines()) == 1


def test_check_config_json_of_a_missing_file_is_one_problem(tmp_path, capsys):
    assert main(["check-config", "--json", str(tmp_path / "nope.toml")]) == EXIT_CONFIG
    body = json.loads(capsys.readouterr().out)
    assert len(body["problems"]) == 1 and "config file not found" in body["problems"][0]["message"]
    assert body["problems"][0]["line"] is None


# --- INT8 of a model without INT8 IR ---------------------------------------------------------
def test_check_config_notes_int8_of_a_detector_without_int8_ir():
    from expressiond.config import parse_config, precision_notes

    cam = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'
    notes = precision_notes(parse_config('[inference]\nprecision = "INT8"\n' + cam))
    assert notes == [
        "detector omz/face-detection-retail-0005 has no INT8 IR and runs its FP16 IR; set "
        'precision = "FP16" in [detector] to say so, or use a model that has INT8 IR'
    ]
    said = '[inference]\nprecision = "INT8"\n[detector]\nprecision = "FP16"\n' + cam
    assert precision_notes(parse_config(said)) == []
    assert precision_notes(parse_config('[inference]\nprecision = "FP16"\n' + cam)) == []
    builtin = '[inference]\nprecision = "INT8"\n[detector]\nmodel = "face-api/ssd_mobilenetv1"\n' + cam
    assert precision_notes(parse_config(builtin)) == []  # `models build` quantises it
