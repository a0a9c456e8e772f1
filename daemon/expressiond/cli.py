"""Command line: ``expressiond <command>``. Parses arguments and dispatches; the work lives in
the modules named by each command (the daemon in expressiond.daemon, the one-shot commands in
expressiond.tools), imported only when the command runs. Operator mistakes end with one line on
stderr and the exit code of their ExpressiondError (78 config/model, 2 usage, 1 runtime); no
traceback.

Thread: the main thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from expressiond import __version__
from expressiond.config import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG
from expressiond.errors import EXIT_USAGE, ExpressiondError
from expressiond.paths import PRECISIONS
from expressiond.tools import options


def cmd_models_build(args) -> int:
    from expressiond.tools.modelbuild.build import build_models

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    rows = build_models(options.models_dir(args), force=args.force, progress=progress)
    if args.json:
        print(json.dumps({"models_dir": str(options.models_dir(args)), "models": rows}, indent=2))
    return 0


def cmd_classify(args) -> int:
    from expressiond.tools.classify import run_classify

    annotate = Path(args.annotate) if args.annotate else None
    return run_classify(options.analyzer(args), args.images, args.json, annotate)


def cmd_evaluate(args) -> int:
    from expressiond.tools.evaluate import dump_json, evaluate, print_report

    image_dir = Path(args.dir)
    if not image_dir.is_dir():
        raise ExpressiondError(f"{image_dir}: not a directory of images")
    labels = Path(args.labels) if args.labels else image_dir / "labels.csv"

    def progress(k: int, n: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{k}/{n}", end="", file=sys.stderr, flush=True)

    result = evaluate(options.analyzer(args), image_dir, labels, args.crops, progress)
    if sys.stderr.isatty() and not args.json:
        print(file=sys.stderr)
    dump_json(result) if args.json else print_report(result)
    return 1 if result["errors"] else 0


def cmd_evaluate_detector(args) -> int:
    from expressiond.tools.evaluate import run_clips

    return run_clips(options.analyzer(args), args.clips, args.json)


def _config_path(args) -> str:
    return args.config or os.environ.get("EXPRESSIOND_CONFIG") or DEFAULT_CONFIG


def cmd_check_config(args) -> int:
    from expressiond.config import load_checked, precision_notes
    from expressiond.errors import problem_records

    path = args.file or _config_path(args)
    try:
        cfg = load_checked(path)
    except ExpressiondError as exc:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "file": path, "problems": problem_records(exc, path)}, indent=2))
        return exc.exit_code
    notes = precision_notes(cfg)
    if args.json:
        print(json.dumps({"ok": True, "config": cfg.to_dict(), "notes": notes}, indent=2))
    else:
        cams = ", ".join(f"{c.name} ({c.source})" for c in cfg.cameras)
        print(
            f"{path}: ok; device {cfg.inference.device} {cfg.inference.precision}, "
            f"num_requests {cfg.inference.num_requests}; cameras: {cams}; "
            f"mqtt: {f'{cfg.mqtt.host}:{cfg.mqtt.port}' if cfg.mqtt else 'off'}"
            + "".join(f"; note: {n}" for n in notes)
        )
    return 0


def cmd_run(args) -> int:
    from expressiond.daemon.main import run_daemon

    return run_daemon(
        _config_path(args),
        stdout=args.stdout,
        mqtt=not args.no_mqtt,
        max_seconds=args.max_seconds,
        ha_remove=args.ha_remove,
        stats_json=args.stats_json,
        verbose=args.verbose,
    )


def cmd_benchmark(args) -> int:
    from expressiond.tools.benchmark.run import command

    return command(args)


def cmd_devices(args) -> int:
    from expressiond.config import load_config
    from expressiond.config.model import Config
    from expressiond.errors import DeviceError
    from expressiond.inference.device_report import device_report, format_report

    path = args.config or os.environ.get("EXPRESSIOND_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    cfg = load_config(path, require_cameras=False) if path else Config()
    if args.models:
        from dataclasses import replace

        cfg = replace(cfg, models_dir=args.models)
    report = device_report(cfg)
    report["config"] = path
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not report["ok"]:
        failed = next(r for r in report["configured"].values() if not r["compiles"])
        raise (
            DeviceError(failed["error"])
            if failed.get("exit_code", 78) == 78
            else ExpressiondError(failed["error"])
        )
    return 0


def cmd_convert(args) -> int:
    from expressiond.tools.convert import ConvertOptions, convert, parse_labels, parse_numbers, print_summary

    opts = ConvertOptions(
        precision=args.precision,
        labels=parse_labels(args.labels),
        output=Path(args.output) if args.output else None,
        name=args.name,
        input_size=args.input_size,
        color=args.color,
        layout=args.layout,
        mean=parse_numbers(args.mean, "mean"),
        scale=parse_numbers(args.scale, "scale"),
        head=args.head,
    )
    result = convert(Path(args.src), opts)
    print(json.dumps(result, indent=2)) if args.json else print_summary(result)
    return 0


EXIT_CODES = "exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 config or model error"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows an option's default after its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.default in (None, False, argparse.SUPPRESS)
            or "default" in text.lower()
        ):
            return text
        return f"{text} (default: %(default)s)"


def _command(sub, name: str, summary: str, exits: str = "", **kw) -> argparse.ArgumentParser:
    """A subcommand whose --help starts with its one-line summary and ends with its exit codes;
    ``-v`` works after it too (SUPPRESS: not given there, the top-level value stays)."""
    p = sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=EXIT_CODES + (f"; {exits}" if exits else ""),
        formatter_class=HelpFormatter,
        **kw,
    )
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return p


def _help_of(parser: argparse.ArgumentParser):
    def show(args) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expressiond",
        description="Facial-expression events from cameras with OpenVINO, published over MQTT.",
        epilog=EXIT_CODES + ". `expressiond COMMAND --help` for each command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"expressiond {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = _command(sub, "models", "build or inspect the model IR", "2 also without an ACTION")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    models.set_defaults(func=_help_of(models))
    build = _command(
        msub,
        "build",
        "build the default models (FP32, FP16, INT8 with NNCF) from the pinned package",
        "1 also when the download or a build step fails",
    )
    build.add_argument(
        "--dir", dest="models", metavar="DIR", help="where to write the IR (default: models/ir)"
    )
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument(
        "--json", action="store_true", help="print a JSON summary on stdout (progress on stderr)"
    )
    build.set_defaults(func=cmd_models_build)

    classify = _command(
        sub, "classify", "faces and expressions in image files", "1 also when an image cannot be read"
    )
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.add_argument("--annotate", metavar="DIR", help="write copies with boxes and labels")
    options.add_model_options(classify)
    classify.set_defaults(func=cmd_classify)

    evaluate = _command(
        sub, "evaluate", "accuracy on a labelled image folder", "1 also when an image cannot be read"
    )
    evaluate.add_argument("dir", metavar="DIR")
    evaluate.add_argument("--labels", metavar="CSV", help="columns file,label (default DIR/labels.csv)")
    evaluate.add_argument("--crops", action="store_true", help="each image is already one face")
    options.add_model_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    clips = _command(
        sub, "evaluate-detector", "faces per frame on video clips", "1 also when a clip cannot be read"
    )
    clips.add_argument("clips", nargs="+", metavar="VIDEO")
    options.add_model_options(clips)
    clips.set_defaults(func=cmd_evaluate_detector)

    run = _command(
        sub,
        "run",
        "run the daemon: cameras -> expressions -> events",
        "0 also when every file source ended; 1 when inference cannot go on (systemd restarts "
        "the daemon); 78: systemd does not restart it (RestartPreventExitStatus=78)",
    )
    run.add_argument(
        "--config", metavar="FILE", help=f"TOML config (default $EXPRESSIOND_CONFIG or {DEFAULT_CONFIG})"
    )
    run.add_argument("--stdout", action="store_true", help="also print each event as a JSON line")
    run.add_argument("--no-mqtt", action="store_true", help="do not connect to the broker")
    run.add_argument("--max-seconds", type=float, default=None, help="stop after this long (default: never)")
    run.add_argument(
        "--ha-remove", action="store_true", help="remove the Home Assistant discovery entries and exit"
    )
    run.add_argument(
        "--stats-json", metavar="FILE", help="at exit, write the final stats (as on the stats topic) as JSON"
    )
    run.set_defaults(func=cmd_run)

    bench = _command(sub, "benchmark", "sync loop vs async pipeline vs end-to-end vs benchmark_app")
    bench.add_argument("--config", metavar="FILE", help="TOML config for device/precision/models")
    bench.add_argument("--clip", metavar="VIDEO", help="video to use (default: made from the samples)")
    bench.add_argument("--device", help="override the config's device")
    bench.add_argument("--precision", choices=PRECISIONS, help="override the config's precision")
    bench.add_argument("--models", metavar="DIR", help="built model directory")
    bench.add_argument("--seconds", type=float, default=8.0, help="time per mode")
    bench.add_argument("--max-requests", type=int, default=4, help="async modes 1..N")
    bench.add_argument(
        "--rounds", type=int, default=1, help="repeat every mode this often, interleaved; report medians"
    )
    bench.add_argument(
        "--streams",
        metavar="LIST",
        help="also compare one process with N cameras against N pinned single-"
        "camera processes, for each N in LIST (e.g. 1,2,4)",
    )
    bench.add_argument(
        "--json", action="store_true", help="print the full result as JSON on stdout (not the table)"
    )
    bench.add_argument("--out", metavar="FILE", help="also write the full result as JSON to FILE")
    bench.add_argument("--plot", metavar="OUT.png", help="draw a bar chart")
    bench.set_defaults(func=cmd_benchmark)

    check = _command(
        sub,
        "check-config",
        "validate a config without touching hardware",
        "78 when the config is invalid (the first problem on stderr; with --json every problem on stdout)",
    )
    check.add_argument(
        "file", nargs="?", metavar="FILE", help=f"default $EXPRESSIOND_CONFIG or {DEFAULT_CONFIG}"
    )
    check.add_argument("--config", help=argparse.SUPPRESS)
    check.add_argument(
        "--json", action="store_true", help="print the parsed config, or every problem, as JSON on stdout"
    )
    check.set_defaults(func=cmd_check_config)

    devices = _command(
        sub,
        "devices",
        "inference devices OpenVINO sees and whether the configured models compile there",
        "78 when a configured model does not compile on its device",
    )
    devices.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML config (default $EXPRESSIOND_CONFIG or {DEFAULT_CONFIG} if "
        "present, else the builtin models on CPU)",
    )
    devices.add_argument("--models", metavar="DIR", help="built model directory")
    devices.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    devices.set_defaults(func=cmd_devices)

    conv = _command(sub, "convert", "ONNX/TFLite/SavedModel classifier -> IR + metadata")
    conv.add_argument("src", metavar="SRC", help=".onnx, .tflite or a TF SavedModel directory")
    conv.add_argument("--precision", default="FP32", choices=PRECISIONS, help="IR precision")
    conv.add_argument("--labels", required=True, help="class names in output order, a,b,c")
    conv.add_argument("--output", metavar="DIR", help="where to write (default ./NAME/PRECISION)")
    conv.add_argument("--name", help="file and model name (default: the source's name)")
    conv.add_argument("--input-size", type=int, metavar="N", help="N x N input (dynamic models)")
    conv.add_argument(
        "--color",
        choices=("RGB", "BGR", "GRAY"),
        help="colour order the model expects (default: GRAY for 1 channel, else RGB)",
    )
    conv.add_argument("--layout", choices=("NCHW", "NHWC"), help="when the shape is ambiguous")
    conv.add_argument("--mean", help="subtracted per channel: 127.5 or 123.7,116.3,103.5")
    conv.add_argument("--scale", help="divided after the mean: 255 or 58.4,57.1,57.4")
    conv.add_argument(
        "--head",
        choices=("softmax", "sigmoid"),
        help="output kind (default: read from the model's last layer)",
    )
    conv.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    conv.set_defaults(func=cmd_convert)
    return parser


def _error_prefix() -> str:
    """<3> (err) when stderr is systemd's journal stream, so `journalctl -p err` finds the line."""
    from expressiond.systemd import stream_is_journal

    return "<3>" if stream_is_journal(sys.stderr, os.environ) else ""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except ExpressiondError as exc:
        print(f"{_error_prefix()}expressiond: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
