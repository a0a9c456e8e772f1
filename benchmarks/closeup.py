#!/usr/bin/env python3
"""Close-up faces (issue 8), measured side by side in one run: detectors x recall x speed,
classifier variants x accuracy x cost, and the daemon on a close-up clip, old vs new default.

Data: the 70 labelled dev photos in ../shared/data/expressions (one face each; 10 per class)
and the clips in ../shared/data/video. 70 photos: one photo is 1.4 points, differences under
~3 points are noise; the paired bootstrap interval against the baseline is printed.

Speed: every detector runs on the same frame one after the other (interleaved), so machine
noise hits all of them alike; the tables give medians and ratios from this one run, with the
load average before and after. The analyzer's sync requests use the LATENCY hint on the CPU.

    .venv/bin/python benchmarks/closeup.py [--rounds 3] [--no-daemon] [--json OUT] [--render]

Writes benchmarks/closeup.json and prints markdown tables; `--render` only prints the tables
of an existing file (`make figures` puts them in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# the third-party data: $EXPRESSIOND_SHARED, ../shared, or shared/ beside a local clone's origin
sys.path.append(str(ROOT / "tests"))  # after the stdlib and site-packages: shadows nothing
from shared_data import EXPRESSIONS as DEV  # noqa: E402
from shared_data import OMZ, VIDEOS  # noqa: E402

try:
    import expressiond  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from expressiond import paths  # noqa: E402
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer  # noqa: E402
from expressiond.inference.ovcompat import VERSION as OV_VERSION  # noqa: E402
from expressiond.tools.evaluate import lost_faces, read_clip  # noqa: E402
from expressiond.tools.imageio import read_image  # noqa: E402

FACEAPI = paths.BUILTIN_DETECTOR
R5 = paths.BUNDLED_DETECTOR


def omz_xml(name: str, precision: str, tmp: Path) -> str | None:
    """An OMZ IR from shared/ with the committed metadata beside it (symlinks in tmp)."""
    src = OMZ / name / precision / f"{name}.xml"
    meta = ROOT / "models" / "omz" / f"{name}.json"
    if not src.is_file() or not meta.is_file():
        return None
    dest = tmp / name / precision
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in (".xml", ".bin"):
        if not (dest / f"{name}{suffix}").exists():
            (dest / f"{name}{suffix}").symlink_to(src.with_suffix(suffix))
    (dest / f"{name}.json").write_text(meta.read_text())
    return str(dest / f"{name}.xml")


def load_dev() -> tuple[list[np.ndarray], list[str], list[str]]:
    with open(DEV / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = [read_image(DEV / r["file"]) for r in rows]
    sources = ["FER2013" if "FaceExp" in r["source_repo"] else "muxspace" for r in rows]
    return images, [r["label"] for r in rows], sources


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --- detectors ----------------------------------------------------------------------------


def detector_specs(models: Path, tmp: Path) -> list[tuple[str, AnalyzerSettings]]:
    specs = []
    for p in ("FP32", "FP16"):
        specs.append((f"face-api SSD {p} (today)", AnalyzerSettings(models, precision=p)))
    specs.append(("face-api SSD FP32, padded 2x", AnalyzerSettings(models, detector_pads=(2.0,))))
    specs.append(("face-api SSD FP32, 1x + 2x pad", AnalyzerSettings(models, detector_pads=(1.0, 2.0))))
    for p in ("FP32", "FP16"):
        specs.append((f"OMZ retail-0005 {p} (bundled)", AnalyzerSettings(models, precision=p, detector=R5)))
    for name, p, short in (
        ("face-detection-retail-0004", "FP32", "retail-0004 FP32"),
        ("face-detection-retail-0004", "FP16", "retail-0004 FP16"),
        ("face-detection-adas-0001", "FP16", "adas-0001 FP16"),
    ):
        xml = omz_xml(name, p, tmp)
        if xml:
            specs.append((f"OMZ {short}", AnalyzerSettings(models, precision=p, detector=xml)))
    return specs


def run_detectors(models: Path, tmp: Path, images: list[np.ndarray], say) -> dict:
    specs = detector_specs(models, tmp)
    analyzers = {name: FaceAnalyzer(s) for name, s in specs}
    clips = {p.name: read_clip(p) for p in sorted(VIDEOS.glob("*")) if p.suffix in (".gif", ".avi")}
    out = {
        name: {
            "settings": {"detector": s.detector, "precision": s.precision, "pads": list(s.detector_pads)},
            "dev_found": 0,
            "clips": {},
            "frame_s": [],
        }
        for name, s in specs
    }
    say(f"detectors: {len(specs)} on {len(images)} photos")
    for image in images:
        for name, a in analyzers.items():
            out[name]["dev_found"] += bool(a.detect(image))
    for clip, frames in clips.items():
        say(f"detectors: {clip} ({len(frames)} frames)")
        boxes = {name: [] for name in analyzers}
        for frame in frames:
            for name, a in analyzers.items():
                t0 = time.perf_counter()
                faces = a.detect(frame)
                out[name]["frame_s"].append(time.perf_counter() - t0)
                boxes[name].append([rel for _s, rel, _px in faces])
        for name in analyzers:
            counts = [len(b) for b in boxes[name]]
            ref = "face-api SSD FP16 (today)" if "FP16" in name else "face-api SSD FP32 (today)"
            out[name]["clips"][clip] = {
                "frames": len(frames),
                "faces_per_frame": counts,
                "min": min(counts),
                "mean": round(float(np.mean(counts)), 3),
                "max": max(counts),
                "lost_vs_today": lost_faces(boxes[ref], boxes[name]),
                "today_faces": sum(len(b) for b in boxes[ref]),
                "faces": sum(counts),
            }
    for row in out.values():
        row["dev_recall"] = row["dev_found"] / len(images)
        row["ms_per_frame"] = round(float(np.median(row.pop("frame_s"))) * 1000, 2)
    for name, row in out.items():
        ref = "face-api SSD FP16 (today)" if "FP16" in name else "face-api SSD FP32 (today)"
        row["cost_vs_today"] = round(row["ms_per_frame"] / out[ref]["ms_per_frame"], 3)
        row["lost_vs_today"] = sum(c["lost_vs_today"] for c in row["clips"].values())
    return out


# --- classifier variants ----------------------------------------------------------------


def classifier_specs(models: Path, tmp: Path, precision: str) -> list[tuple[str, AnalyzerSettings]]:
    base = AnalyzerSettings(models, precision=precision, detector=R5)
    emo = omz_xml("emotions-recognition-retail-0003", "FP16-INT8", tmp)
    specs = [
        ("box (detector box as is)", base),
        ("square", replace(base, crop="square")),
        ("box, margin 1.2", replace(base, margin=1.2, crop="box")),
        ("box + flip", replace(base, flip=True)),
        ("square + flip (default)", replace(base, crop="square", flip=True)),
        ("margin 1.2 + flip", replace(base, margin=1.2, crop="box", flip=True)),
    ]
    if emo:
        specs.append(
            (
                "square + flip + ensemble OMZ emotions (w 0.5)",
                replace(base, crop="square", flip=True, ensemble=emo, ensemble_weight=0.5),
            )
        )
        specs.append(("OMZ emotions-0003 alone (5 labels)", replace(base, classifier=emo)))
    return specs


def run_classifiers(models: Path, tmp: Path, images, labels, sources, rounds: int, say) -> dict:
    out: dict = {}
    rng = np.random.default_rng(8)
    boot = rng.integers(0, len(images), (4000, len(images)))
    for precision in ("FP32", "FP16"):
        whole = FaceAnalyzer(AnalyzerSettings(models, precision=precision))
        specs = classifier_specs(models, tmp, precision)
        analyzers = {name: FaceAnalyzer(s) for name, s in specs}
        boxes = [next(iter(analyzers.values())).detect(im)[0][2] for im in images]
        say(f"classifiers {precision}: {len(specs)} variants x {len(images)} photos x {rounds}")
        square = analyzers["square"]
        two = "square + flip as two requests (mirrored before the resize)"
        preds = {name: [None] * len(images) for name in ["whole photo (baseline)", *analyzers, two]}
        times = {name: [] for name in preds}
        for _ in range(rounds):
            for i, (image, box) in enumerate(zip(images, boxes, strict=True)):
                t0 = time.perf_counter()
                scores = whole.classify(image)
                times["whole photo (baseline)"].append(time.perf_counter() - t0)
                preds["whole photo (baseline)"][i] = max(scores, key=scores.get)
                for name, a in analyzers.items():
                    t0 = time.perf_counter()
                    scores = a.classify_face(image, box)
                    times[name].append(time.perf_counter() - t0)
                    preds[name][i] = max(scores, key=scores.get)
                t0 = time.perf_counter()
                crop = square.classifier.adapter.crop(image, box)
                a = square.classify(crop)
                b = square.classify(np.ascontiguousarray(crop[:, ::-1]))
                times[two].append(time.perf_counter() - t0)
                mean = {k: (a[k] + b[k]) / 2 for k in a}
                preds[two][i] = max(mean, key=mean.get)
        base_ok = np.array([p == t for p, t in zip(preds["whole photo (baseline)"], labels, strict=True)])
        # today's classifier cost: the original net, one request on the detector's box
        today_ms = float(np.median(times["box (detector box as is)"])) * 1000
        rows = {}
        for name, ms_list in times.items():
            ms = round(float(np.median(ms_list)) * 1000, 3)
            row = {"ms_per_face": ms, "cost_vs_today": round(ms / today_ms, 3)}
            if name in preds:
                ok = np.array([p == t for p, t in zip(preds[name], labels, strict=True)])
                diff = ok[boot].mean(1) - base_ok[boot].mean(1)
                row.update(
                    {
                        "accuracy": round(float(ok.mean()), 4),
                        "right": int(ok.sum()),
                        "by_source": {
                            s: round(float(ok[np.array(sources) == s].mean()), 3)
                            for s in sorted(set(sources))
                        },
                        "vs_baseline_points": round(float(ok.mean() - base_ok.mean()) * 100, 1),
                        "vs_baseline_90ci_points": [
                            round(float(np.percentile(diff, q)) * 100, 1) for q in (5, 95)
                        ],
                    }
                )
            rows[name] = row
        out[precision] = rows
    return out


# --- the daemon on a close-up clip --------------------------------------------------------


def daemon_events(models: Path, tmp: Path, say) -> dict:
    """Three dev photos per class, each filling a 640x480 frame's height for 15 frames at 10 fps:
    tracks started and started with the labelled expression, for the old and the new default."""
    with open(DEV / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    chosen = [
        r
        for label in ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
        for r in [x for x in rows if x["label"] == label][:3]
    ]
    blank = np.full((480, 640, 3), 96, np.uint8)
    frames, spans = [], []
    for row in chosen:
        frame = blank.copy()
        frame[:, 80:560] = cv2.resize(
            cv2.imread(str(DEV / row["file"])), (480, 480), interpolation=cv2.INTER_AREA
        )
        spans.append((len(frames), len(frames) + 15, row["label"]))
        frames += [frame] * 15 + [blank] * 6
    clip = tmp / "closeup.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    variants = {
        "today (face-api SSD, original crop)": (
            f'[detector]\nmodel = "{FACEAPI}"\n[classifier]\nmodel = "face-api/expression"\nflip = false\n'
            'crop = "model"\n'
        ),
        "new default": "",
    }
    out = {}
    for name, extra in variants.items():
        say(f"daemon: {name}")
        cfg = tmp / "closeup.toml"
        cfg.write_text(
            textwrap.dedent(f"""
            device_id = "closeup"
            models_dir = "{models}"
            [inference]
            num_requests = 2
            [tracking]
            max_missed_frames = 3
            [[cameras]]
            name = "kiosk"
            source = "{clip}"
            fps = 10
            """)
            + extra
        )
        proc = subprocess.run(
            [sys.executable, "-m", "expressiond.cli", "run", "--config", str(cfg), "--stdout", "--no-mqtt"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        events = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
        starts = [e for e in events if e["type"] == "start"]
        here = [[e["expression"] for e in starts if a <= e["frame"] < b + 3] for a, b, _l in spans]
        out[name] = {
            "exit": proc.returncode,
            "photos": len(spans),
            "events": len(events),
            "photos_with_a_track": sum(bool(h) for h in here),
            "photos_started_with_label": sum(lab in h for h, (_a, _b, lab) in zip(here, spans, strict=True)),
        }
    return out


# --- report -------------------------------------------------------------------------------


def tables(result: dict) -> str:
    n = result["dev_photos"]
    lines = [
        f"Detectors on {n} labelled close-up photos and {result['clip_frames']} frames of "
        f"{len(result['clips'])} clips; one run, load average {result['load_before']} -> "
        f"{result['load_after']}.",
        "",
        "| detector | dev photos with a face | clips: faces/frame (mean per clip) | faces "
        "lost vs face-api | ms/frame (median, clips) | cost vs face-api |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["detectors"].items():
        means = " / ".join(f"{c['mean']:.2f}" for c in r["clips"].values())
        lines.append(
            f"| {name} | {r['dev_found']}/{n} ({r['dev_recall']:.2f}) | {means} | "
            f"{r['lost_vs_today']} | {r['ms_per_frame']:.1f} | {r['cost_vs_today']:.2f}x |"
        )
    lines += ["", f"Clips: {', '.join(result['clips'])}.", ""]
    for precision, rows in result["classifiers"].items():
        lines += [
            f"Classifier variants, {precision}, detector {R5} (all {n} faces found); "
            f"cost per face vs one request on the box (today). {n} photos: 1 photo = "
            f"{100 / n:.1f} points.",
            "",
            "| variant | top-1 | right | FER2013 / muxspace | vs whole photo (points, "
            "90% paired bootstrap) | ms/face | cost vs today |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            if "accuracy" not in r:
                lines.append(
                    f"| {name} | - | - | - | - | {r['ms_per_face']:.2f} | {r['cost_vs_today']:.2f}x |"
                )
                continue
            src = " / ".join(f"{v:.2f}" for v in r["by_source"].values())
            ci = r["vs_baseline_90ci_points"]
            lines.append(
                f"| {name} | {r['accuracy']:.3f} | {r['right']}/{n} | {src} | "
                f"{r['vs_baseline_points']:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}] | "
                f"{r['ms_per_face']:.2f} | {r['cost_vs_today']:.2f}x |"
            )
        lines.append("")
    if result.get("daemon"):
        lines += [
            "`expressiond run` on a close-up clip (21 dev photos, 15 frames each at 10 fps):",
            "",
            "| config | events | photos with a track | started with the label |",
            "|---|---|---|---|",
        ]
        for name, r in result["daemon"].items():
            lines.append(
                f"| {name} | {r['events']} | {r['photos_with_a_track']}/{r['photos']} "
                f"| {r['photos_started_with_label']}/{r['photos']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=str(ROOT / "models" / "ir"), help="built model IR")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds over the dev photos")
    ap.add_argument("--no-daemon", action="store_true", help="skip the daemon clip runs")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "closeup.json"))
    ap.add_argument(
        "--render", action="store_true", help="measure nothing: print the tables of the --json file"
    )
    args = ap.parse_args(argv)
    if args.render:
        print(tables(json.loads(Path(args.json).read_text())))
        return 0
    if not (DEV / "labels.csv").is_file():
        print(f"closeup: no dev photos at {DEV}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(f"closeup: {msg} (load {loadavg()})", file=sys.stderr, flush=True)

    models = Path(args.models)
    images, labels, sources = load_dev()
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "openvino": OV_VERSION,
        "python": platform.python_version(),
        "dev_photos": len(images),
        "load_before": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="closeup-") as tmp_name:
        tmp = Path(tmp_name)
        result["detectors"] = run_detectors(models, tmp, images, say)
        first = next(iter(result["detectors"].values()))
        result["clips"] = list(first["clips"])
        result["clip_frames"] = sum(c["frames"] for c in first["clips"].values())
        result["classifiers"] = run_classifiers(models, tmp, images, labels, sources, args.rounds, say)
        result["daemon"] = None if args.no_daemon else daemon_events(models, tmp, say)
    result["load_after"] = loadavg()
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(tables(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
