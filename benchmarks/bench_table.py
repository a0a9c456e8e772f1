#!/usr/bin/env python3
"""Render benchmarks/results.json (written by `make bench`) as markdown (`make figures` calls
this; nothing is measured here):

  --part readme   (default) the README's speed block: a summary of the targets with the load
                  the run had, the p99 next to the same figure from a loaded run
                  (results-loaded.json), the face-api ratios with their workload; the targets,
                  modes and streams tables, the plots, date, machine and versions
  --part targets  benchmarks/README.md: where the CPU time of a frame goes (with profile.json)
                  and what that leaves for each target that is not met
  --part loaded   benchmarks/README.md: this run next to the loaded one, ratio by ratio

    python benchmarks/bench_table.py [--part readme|targets|loaded] [--json results.json]
        [--loaded results-loaded.json] [--profile profile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _f(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def targets_md(r: dict) -> list[str]:
    out = ["| target | measured | required | met |", "|---|---|---|---|"]
    for t in r["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        note = f" ({t['note']})" if t.get("note") else ""
        out.append(f"| {t['name']}{note} | {t['measured']} | {t['op']} {t['target']} | {met} |")
    return out


def modes_md(b: dict) -> list[str]:
    out = [
        f"| mode ({b['device']} {b['precision']}, median of {b['rounds']}) | fps | faces/s | "
        "p50 ms | p99 ms | CPU ms/frame |",
        "|---|---|---|---|---|---|",
    ]
    for row in b["table"]:
        lat = row.get("latency_ms") or {}
        out.append(
            f"| {row['mode']} | {_f(row.get('fps'))} | {_f(row.get('faces_per_s'))} | "
            f"{_f(lat.get('p50'), '.0f')} | {_f(lat.get('p99'), '.0f')} | "
            f"{_f(row.get('cpu_ms_per_frame'), '.1f')} |"
        )
    return out


def streams_md(s: dict) -> list[str]:
    out = [
        "| cameras | setup | total fps | p99 ms | RSS MiB (sum of peaks) | PSS MiB | fps/core | fps/GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in s["table"]:
        for side in ("one", "separate"):
            v = row[side]
            name = "1 process" if side == "one" else f"{row['n']} pinned process(es)"
            out.append(
                f"| {row['n']} | {name} | {_f(v['total_fps'])} | {_f(v['p99_ms'], '.0f')} "
                f"| {_f(v['rss_mib'], '.0f')} | {_f(v['pss_mib'], '.0f')} | "
                f"{_f(v['fps_per_core'])} | {_f(v['fps_per_gib'])} |"
            )
    return out


def load_range(doc) -> tuple[float, float]:
    """The lowest and highest 1-minute load average recorded anywhere in a results file."""
    seen: list[float] = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list) and key.startswith("load_avg") and node and not isinstance(node[0], dict):
            seen.append(float(node[0]))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif key.startswith("load_avg") and isinstance(node, (int, float)):
            seen.append(float(node))

    walk(doc)
    return (min(seen), max(seen)) if seen else (float("nan"), float("nan"))


def _row(r: dict, prefix: str) -> dict:
    return next((x for x in r["benchmark"]["table"] if x["mode"].startswith(prefix)), {})


def _p99(r: dict, hint: str) -> float | None:
    return (_row(r, f"end-to-end run, 10 fps source, {hint}").get("latency_ms") or {}).get("p99")


def _target(r: dict, prefix: str) -> dict | None:
    return next((t for t in r["targets"] if t["name"].startswith(prefix)), None)


def _loads(r: dict) -> str:
    lo, hi = load_range(r)
    return f"load average {lo:.1f}-{hi:.1f}"


def latency_md(r: dict, loaded: dict | None) -> str:
    t = _target(r, "p99 latency ms at 10 fps (THROUGHPUT")
    limit = t["target"] if t else 150
    tp, lat = _p99(r, "THROUGHPUT"), _p99(r, "LATENCY")
    verdict = "met" if max(tp, lat) < limit else "not met"
    text = (
        f"p99 capture-to-event latency at 10 fps: {tp:.0f} ms (default THROUGHPUT hint) / "
        f"{lat:.0f} ms (LATENCY hint), target < {limit:g} ms {verdict}, as measured in this run "
        f"at {_loads(r)} only"
    )
    rows = (r.get("loaded") or {}).get("rows") or {}
    if rows.get("systemd"):
        hog = r["loaded"]
        text += (
            f". Under a CPU hog ({hog['hog_procs']} busy processes, load average "
            f"{hog['load_avg_before']}-{hog['load_avg_after']}), default config: p99 "
            + "; ".join(f"{v['p99_ms']:.0f} ms ({name})" for name, v in rows.items() if v.get("p99_ms"))
        )
    if loaded:
        ltp, llat = _p99(loaded, "THROUGHPUT"), _p99(loaded, "LATENCY")
        over = [name for name, v in (("THROUGHPUT", ltp), ("LATENCY", llat)) if v >= limit]
        text += (
            f". A run on a busy box, {_loads(loaded)} ({loaded['date'][:10]}, "
            f"benchmarks/results-loaded.json, code of that day), measured {ltp:.0f} / {llat:.0f} ms"
            + (f": the {' and '.join(over)} hint misses the target under load" if over else "")
        )
    return text


def golden_workload(n_inputs: int | None) -> dict:
    """For results written before vs_faceapi.py recorded its workload: the same sample photos
    with face-api's own detections as recorded for the golden tests (same code, same pixels)."""
    ref = HERE.parent / "tests" / "golden" / "faceapi_reference.json"
    if not ref.is_file():
        return {}
    doc = json.loads(ref.read_text())
    images = doc.get("images") or []
    if len(images) != n_inputs:
        return {}
    return {
        "photos": [
            {"name": i["name"], "width": i["width"], "height": i["height"], "faces": len(i["detections"])}
            for i in images
        ],
        "faceapi": "tfjs wasm backend in node, 1 thread, float32 (faces per photo: face-api's "
        "own detections on the same pixels, recorded with its tfjs cpu backend for the golden "
        "tests, tests/golden/faceapi_reference.json)",
        "expressiond": "OpenVINO CPU plugin, all cores, face-api's own SSD and expression net "
        "(no flip averaging) unless the row says defaults",
    }


def faceapi_workloads(r: dict) -> list[tuple[str, dict]]:
    """[(label, vs_faceapi summary)]: issue 18's two workloads, or the one of older results."""
    f = r.get("faceapi") or {}
    if "samples" not in f and "closeups" not in f:
        return [("the six sample photos", f)]
    return [("the six sample photos", f.get("samples") or {}), ("close-up photos", f.get("closeups") or {})]


def faceapi_md(r: dict, f: dict, label: str = "the six sample photos") -> str:
    by_row = f.get("by_row") or {}
    if not by_row:
        return f"face-api comparison on {label} not in this run ({f.get('error', 'no data')})"
    same = ", ".join(
        f"{k.split()[0]} {v['vs_faceapi_wasm']:.1f}x"
        for k, v in by_row.items()
        if k.endswith(" async") and v.get("vs_faceapi_wasm")
    )
    defaults = (by_row.get("FP32 async-defaults") or {}).get("vs_faceapi_wasm")
    w = f.get("workload") or golden_workload(f.get("n_inputs"))
    own = "expression net on the whole photo" if w.get("whole_photo") else ""
    ratios = same + (
        f" with face-api's own {own or 'two networks'}; {defaults:.1f}x with the daemon's defaults "
        "(retail-0005 detector, mirror averaging)"
        if defaults
        else ""
    )
    photos = w.get("photos") or []
    if photos:
        sizes = sorted({f"{p['width']}x{p['height']}" for p in photos})
        faces = [p["faces"] for p in photos if p.get("faces") is not None]
        what = (
            (f"{w['task']}; " if own else "")
            + f"{len(photos)} photos ({', '.join(sizes)} px) with {sum(faces)} faces "
            f"({min(faces)}-{max(faces)} per photo); face-api: {w.get('faceapi')}; "
            f"expressiond: {w.get('expressiond')}, async pipeline"
        )
    else:
        what = f"{f.get('n_inputs')} sample photos (sizes and faces not recorded in this run)"
    agree = ", ".join(
        f"{k.split()[0]} {v['top1_agreement_wasm']:.2f}"
        for k, v in (f.get("expressiond") or {}).items()
        if k.endswith(" async") and v.get("top1_agreement_wasm") is not None
    )
    if not agree:
        agree = "none to compare (face-api found no face at minConfidence 0.5; neither did its SSD here)"
    prec = {k: (r.get("precisions") or {}).get(k, {}).get("inference_precision") for k in ("FP16", "INT8")}
    cpu = (by_row.get("FP32 async") or {}).get("vs_faceapi_cpu")
    cpu_text = (
        f"; FP32 {cpu:.1f}x face-api's tfjs cpu backend ({f.get('faceapi_cpu_ms_per_photo')} ms per photo)"
        if cpu
        else ""
    )
    return (
        f"{label}: photos per second vs face-api JS wasm ({f.get('faceapi_wasm_ms_per_photo')} ms "
        f"per photo there), same photos: {ratios}{cpu_text} (the FP16 IR runs in {prec['FP16'] or '?'} "
        f"on this CPU); share of face-api's faces found with the same top-1 expression: "
        f"{agree}. Workload: {what}"
    )


def summary_md(r: dict, loaded: dict | None) -> list[str]:
    met = sum(bool(t["met"]) for t in r["targets"])
    return [
        f"In short (one `make bench` run of {r['duration_s'] / 60:.0f} minutes, {_loads(r)}):",
        "",
        f"- {latency_md(r, loaded)}.",
        *[f"- {faceapi_md(r, f, label)}." for label, f in faceapi_workloads(r)],
        f"- {met} of {len(r['targets'])} targets met (table below). Why the others are not "
        "reachable on this CPU, with the CPU time of a frame: "
        "[benchmarks/README.md](benchmarks/README.md#where-the-targets-stand).",
        "",
    ]


def targets_part(r: dict, profile: dict | None) -> str:
    """Where a frame's CPU time goes and the ceiling that leaves for each ratio target."""
    b = r["benchmark"]
    det = _row(r, "benchmark_app detector")["cpu_ms_per_frame"]
    cls = _row(r, "benchmark_app classifier")["cpu_ms_per_frame"]
    faces = b["faces_per_frame"]
    e2e, sync = _row(r, "end-to-end run, every frame"), _row(r, "sync loop")
    steps = (profile or {}).get("steps") or {}
    per_frame = steps.get("ms_per_processed_frame") or {}
    decode = _row(r, "decode, the file source").get("cpu_ms_per_frame")  # this run (issue 18)
    decode_src = "decode row, same run (cv2 read + normalise_image, looping)"
    if decode is None:
        decode = next((v for k, v in per_frame.items() if k.startswith("decode")), None)
        decode_src = "profile.py, step timed alone"
    python = steps.get("python_ms_per_frame")
    parts = det + faces * cls + (decode or 0) + (python or 0)
    ceiling_sync = sync["cpu_ms_per_frame"] / (det + faces * cls)
    ratios = r["ratios"]
    lines = [
        f"From `make bench` ({r['date'][:16].replace('T', ' ')}, {_loads(r)}, "
        f"{b['precision']}, detector {r['settings'].get('detector')}) and `make profile` "
        f"({'load average ' + str(profile['load_avg_start'][0]) if profile else 'no profile.json'}). "
        f"Per frame of the clip ({faces:.2f} faces per frame), CPU milliseconds:",
        "",
        "| work | CPU ms per frame | source |",
        "|---|---|---|",
        f"| detector ({r['settings'].get('detector')}, frame resized in the graph) | {det:.1f} "
        "| benchmark_app detector |",
        f"| classifier, {faces:.2f} faces x {cls:.1f} ms (every member of the default ensemble, "
        f"face-api's with its mirror image) | {faces * cls:.1f} | benchmark_app classifier (one "
        "run per member, summed) |",
        f"| decode of one frame | {_f(decode, '.1f')} | {decode_src} |",
        f"| Python (hand-off, NMS, crops, scores, tracker, events) | {_f(python, '.1f')} "
        "| profile.py, steps timed alone |",
        f"| **sum of the parts** | **{parts:.1f}** | |",
        f"| end-to-end `run`, every frame | {e2e['cpu_ms_per_frame']:.1f} | e2e row ({e2e['fps']:.1f} fps) |",
        f"| the write-up's sync loop (decode not counted) | {sync['cpu_ms_per_frame']:.1f} | "
        f"sync row ({sync['fps']:.1f} fps) |",
        "",
        "What follows from it:",
        "",
        f"- **e2e / benchmark_app's detector**: benchmark_app's figure leaves out the classifier "
        f"and the decode, {parts - det:.1f} of the {parts:.1f} ms; a pipeline with no overhead "
        f"at all would reach {det:.1f} / {parts:.1f} = {det / parts:.2f} (measured "
        f"{ratios['e2e_vs_benchmark_app']:.2f}). Against detector + classifier "
        f"(`e2e_vs_inference_ceiling`) it is {ratios['e2e_vs_inference_ceiling']:.2f}: the rest "
        "is decode, Python and OpenVINO request and thread overhead.",
        f"- **e2e / detector + classifier + decode, per CPU-second (issue 18)**: "
        f"{_f(ratios.get('e2e_vs_ceiling_with_decode_per_cpu'))} (ceiling "
        f"{_f(ratios.get('ceiling_with_decode_cpu_ms'), '.1f')} ms against the e2e row's "
        f"{e2e['cpu_ms_per_frame']:.1f} ms, medians of the rounds' ratios). The rest is the "
        "daemon's Python threads (capture, hand-off, coordinator), OpenVINO's request and thread "
        "overhead and three networks sharing two cores' caches: see the perf and py-spy "
        "figures in the issue-18 section.",
        f"- **async and e2e / the write-up's sync loop**: the loop's one LATENCY-hint request "
        f"runs on every core already ({sync['fps']:.1f} fps x {sync['cpu_ms_per_frame']:.1f} ms "
        f"= {sync['fps'] * sync['cpu_ms_per_frame'] / 1000:.2f} cores busy), so any scheme doing "
        f"the same work can only spend less CPU per frame; benchmark_app's own detector + "
        f"classifier time is {det + faces * cls:.1f} ms, so the ceiling is "
        f"{sync['cpu_ms_per_frame']:.1f} / {det + faces * cls:.1f} = {ceiling_sync:.2f}x "
        f"(benchmark_app / sync in the same round: {ratios['benchmark_app_vs_sync']:.2f}x). "
        f"Measured: async {ratios['async_vs_sync']:.2f}x, e2e {ratios['e2e_vs_sync']:.2f}x. "
        "Async wins where the sync loop leaves hardware idle: more cores than one stream uses, "
        "an accelerator, or contention (the loaded run below).",
    ]
    return "\n".join(lines) + "\n"


LOADED_ROWS = (
    ("async_vs_sync", "async best / sync loop (wall)"),
    ("async_vs_sync_per_cpu", "the same per CPU-second"),
    ("e2e_vs_benchmark_app", "e2e / benchmark_app detector (wall)"),
    ("e2e_vs_benchmark_app_per_cpu", "the same per CPU-second"),
    ("e2e_vs_inference_ceiling_per_cpu", "e2e / detector + classifier, per CPU-second"),
    ("one_process_vs_n_processes_fps", "one process / N processes, fps (N = 4)"),
    ("one_process_vs_n_processes_rss", "one process / N processes, RSS"),
    ("vs_faceapi_js", "FP32 async / face-api wasm, 6 sample photos (workload: README, Speed)"),
)


def loaded_part(r: dict, loaded: dict) -> str:
    def p99s(doc: dict) -> str:
        prec = doc.get("precisions") or {}
        fp = " / ".join(
            f"{_f(((prec.get(k) or {}).get('latency_ms_10fps_latency_hint') or {}).get('p99'), '.0f')}"
            for k in ("FP32", "FP16", "INT8")
        )
        return f"{_p99(doc, 'THROUGHPUT'):.0f} ; {fp}"

    e2e = [_row(d, "end-to-end run, ")["mode"].removeprefix("end-to-end run, ") for d in (r, loaded)]
    lines = [
        f"| ratio | this run ({r['date'][:16].replace('T', ' ')}, {_loads(r)}) | loaded run "
        f"({loaded['date'][:16].replace('T', ' ')}, {_loads(loaded)}) |",
        "|---|---|---|",
    ]
    for key, name in LOADED_ROWS:
        lines.append(f"| {name} (`{key}`) | {_f(r['ratios'].get(key))} | {_f(loaded['ratios'].get(key))} |")
    lines.append(
        f"| p99 ms at 10 fps: THROUGHPUT ; LATENCY hint FP32 / FP16 / INT8 | {p99s(r)} | {p99s(loaded)} |"
    )
    lines += [
        "",
        f"The e2e row ran at: this run {e2e[0]}, loaded run {e2e[1]}. The loaded run is "
        "benchmarks/results-loaded.json, kept from that day's `make bench` (the code of that "
        "day: classifier with a dynamic input); the wall-clock ratios swing with the load, the "
        "per-CPU and memory ratios much less.",
    ]
    return "\n".join(lines) + "\n"


def render(r: dict, loaded: dict | None = None) -> str:
    b, s = r["benchmark"], r["streams"]
    ratios = ", ".join(f"`{k}` {v}" for k, v in r["ratios"].items() if v is not None)
    lines = summary_md(r, loaded)
    lines += ["Targets (issues 3, 9 and 18), measured side by side in one `make bench` run:", ""]
    lines += targets_md(r)
    lines += ["", f"Ratios: {ratios}.", ""]
    lines += modes_md(b) + [""]
    played = "every frame" if s["source_fps"] <= 0 else f"{s['source_fps']:g} fps"
    lines += [
        f"One process with N cameras vs N single-camera processes pinned to cores "
        f"(the clip per camera at {played}, {s['seconds_per_run']:g} s, median of "
        f"{s['rounds']}):",
        "",
    ]
    lines += streams_md(s) + [""]
    lines += ["![modes and streams](benchmarks/benchmark.png)", "![targets](benchmarks/targets.png)", ""]
    v = r["versions"]
    lines.append(
        f"Measured {r['date'][:10]} on {r['machine']}, OpenVINO {v['openvino'].split('-')[0]}, "
        f"Python {v['python']}; detector {r['settings'].get('detector')}; {_loads(r)} "
        f"(the box is shared: compare the "
        "ratios, measured seconds apart, not the absolute fps). How each figure is measured: "
        "benchmarks/README.md."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=HERE / "results.json")
    ap.add_argument("--loaded", type=Path, default=HERE / "results-loaded.json")
    ap.add_argument("--profile", type=Path, default=HERE / "profile.json")
    ap.add_argument("--part", choices=("readme", "targets", "loaded"), default="readme")
    args = ap.parse_args(argv)
    if not args.json.is_file():
        print(f"bench_table: no {args.json}: run `make bench`", file=sys.stderr)
        return 1
    r = json.loads(args.json.read_text())
    loaded = json.loads(args.loaded.read_text()) if args.loaded.is_file() else None
    if args.part == "targets":
        profile = json.loads(args.profile.read_text()) if args.profile.is_file() else None
        sys.stdout.write(targets_part(r, profile))
    elif args.part == "loaded":
        if loaded is None:
            print(f"bench_table: no {args.loaded}", file=sys.stderr)
            return 1
        sys.stdout.write(loaded_part(r, loaded))
    else:
        sys.stdout.write(render(r, loaded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
