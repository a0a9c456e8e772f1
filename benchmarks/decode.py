#!/usr/bin/env python3
"""Decode cost of a live camera: the old OpenCV path vs the daemon's stream decoder
(sources/decode), software.

The clip is what an IP camera sends: 1920x1080 H.264 at 30 fps, main profile, no B-frames, a
key frame every second, ~4 Mbit/s; made at run time with ffmpeg from the sample clip
(models/ir/samples/demo.avi, scaled, with sensor-like noise) into benchmarks/out/ (not
committed). The fps cap is the daemon's default, 10 fps.

- old: ``cv2.VideoCapture(url, CAP_FFMPEG).read()`` for every frame (decode + BGR conversion),
  ``normalise_image``, then the cap drops 2 of 3 frames: what capture.py does for a live source;
- new: ``AvDecoder(decode="software", max_fps=10)``: every frame decoded (a 1 s GOP: P-frames
  depend on each other), only the kept ones converted;
- ffmpeg_sw: the VAAPI pipeline of the ffmpeg program (sources/decode/ffmpeg.py) without
  -hwaccel: the cap in the filter graph, kept frames converted by swscale, read from a pipe
  (its CPU is the child's, counted when it is reaped);
- two more rows place them: PyAV converting every frame, and PyAV decoding only.

Part 1: CPU milliseconds per frame of the process and its children (user + system, all
threads; not wall time), every variant over the whole clip as fast as it goes, rounds alternating their order;
the best round counts (the least disturbed on a shared box). Part 2: the share of the box's
CPU (CPU seconds per wall second / cores) that N cameras take, N decoders in N threads of one
process (like the daemon), each paced at 30 fps real time; old, new, new, old, averaged.
VAAPI (the ffmpeg program with -hwaccel vaapi) is measured the same way when the box has a
render node and an ffmpeg with VAAPI, else reported as not measured (as here).

    .venv/bin/python benchmarks/decode.py [--rounds 3] [--cameras 1,2,4] [--json [OUT]]
    .venv/bin/python benchmarks/decode.py --render [benchmarks/decode.json]   (the README table)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parent.parent
try:
    import expressiond  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from expressiond.sources.decode import DecodeOptions, FpsCap, choose_backend  # noqa: E402
from expressiond.sources.decode.ffmpeg import FfmpegDecoder  # noqa: E402
from expressiond.sources.decode.pyav import AvDecoder  # noqa: E402
from expressiond.sources.frames import normalise_image  # noqa: E402
from expressiond.tools.benchmark.run import machine_description  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
WIDTH, HEIGHT, FPS, GOP, KBPS = 1920, 1080, 30, 30, 4000
CAP_FPS = 10.0
VARIANTS = {
    "old": "OpenCV read() every frame, cap after decode + convert (capture.py)",
    "new": f"PyAV (slice threads), every frame decoded, only the {CAP_FPS:g} fps kept converted",
    "new_1fps": "the same at a 1 fps cap: key frames only (1 s GOP), the rest never decoded",
    "ffmpeg_sw": f"the ffmpeg program (the VAAPI pipeline without -hwaccel), {CAP_FPS:g} fps kept converted",
    "pyav_all": "PyAV (slice threads), every frame decoded and converted",
    "pyav_decode": "PyAV (slice threads), decode only (no conversion): the floor",
}


def cpu_s() -> float:
    """This process and its reaped children (the ffmpeg decoders)."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def make_clip(seconds: int, source: Path) -> Path:
    clip = OUT / f"decode-{HEIGHT}p{FPS}-g{GOP}-{KBPS}k-{seconds}s.mp4"
    if clip.is_file() and clip.stat().st_size > 0:
        return clip
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("decode: ffmpeg not found: apt-get install ffmpeg (make deps does it)")
    if source.is_file():
        src = ["-stream_loop", "-1", "-i", str(source)]
        vf = f"scale={WIDTH}:{HEIGHT},fps={FPS},noise=alls=6:allf=t"
    else:  # no models built: a synthetic scene
        print(f"decode: {source} missing (make models): using testsrc2", file=sys.stderr)
        src = ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"]
        vf = "noise=alls=6:allf=t"
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = clip.with_suffix(".part.mp4")
    cmd = [ffmpeg, "-v", "error", "-y", *src, "-t", str(seconds), "-vf", vf, "-c:v", "libx264"]
    cmd += ["-preset", "veryfast", "-profile:v", "main", "-bf", "0", "-g", str(GOP)]
    cmd += ["-keyint_min", str(GOP), "-sc_threshold", "0", "-b:v", f"{KBPS}k", "-maxrate", f"{KBPS}k"]
    cmd += ["-bufsize", f"{2 * KBPS}k", "-pix_fmt", "yuv420p", str(tmp)]
    print(f"decode: making {clip.name} ({seconds} s of 1080p H.264) ...", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, timeout=600)
    tmp.rename(clip)
    return clip


# the readers: each yields once per source frame; pace(t) is called with the frame's time ----
def read_old(path: Path, pace) -> int:
    """capture.py's live path: read() (decode + convert), normalise_image, then the cap."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps_cap, n, kept = FpsCap(CAP_FPS), 0, 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            t = n / FPS
            image, _ = normalise_image(image)
            kept += image is not None and fps_cap.keep(t)
            n += 1
            pace(t)
    finally:
        cap.release()
    return n


def read_av(path: Path, pace, max_fps: float | None = CAP_FPS, decode: str = "software") -> int:
    # as for a network stream: slice threads (frame threads are for files)
    dec = AvDecoder(DecodeOptions(decode=decode, max_fps=max_fps, frame_threads=False))
    dec.open(str(path))
    n = 0
    try:
        while True:
            ok, _, t = dec.read()
            if not ok:
                break
            n += 1
            pace(t)
    finally:
        dec.close()
    return n


def read_ffmpeg(path: Path, pace, hwaccel: bool = False) -> int:
    dec = FfmpegDecoder(
        DecodeOptions(decode="vaapi" if hwaccel else "software", max_fps=CAP_FPS), hwaccel=hwaccel
    )
    dec.open(str(path))
    n = 0
    try:
        while True:
            ok, _, _ = dec.read()
            if not ok:
                break
            n += 1
            pace(n / FPS)  # the pipe gives no timestamps: the source frame's own
    finally:
        dec.close()
    return n


def read_decode_only(path: Path, pace) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "SLICE"
        n = 0
        for frame in container.decode(stream):
            n += 1
            pace(frame.time)
    return n


READERS = {
    "old": read_old,
    "new": read_av,
    "new_1fps": lambda p, pace: read_av(p, pace, 1.0),
    "ffmpeg_sw": read_ffmpeg,
    "pyav_all": lambda p, pace: read_av(p, pace, None),
    "pyav_decode": read_decode_only,
}


def per_frame(clip: Path, rounds: int) -> dict[str, dict[str, float]]:
    cpu: dict[str, list[float]] = {k: [] for k in READERS}
    wall: dict[str, list[float]] = {k: [] for k in READERS}
    for r in range(rounds):
        order = list(READERS) if r % 2 == 0 else list(READERS)[::-1]
        for name in order:
            c0, w0 = cpu_s(), time.perf_counter()
            n = READERS[name](clip, lambda t: None)
            cpu[name].append((cpu_s() - c0) * 1000 / n)
            wall[name].append((time.perf_counter() - w0) * 1000 / n)
        print(f"decode: round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return {
        k: {"cpu_ms_per_frame": round(min(cpu[k]), 3), "cpu_ms_rounds": [round(v, 3) for v in cpu[k]]}
        | {"wall_ms_per_frame": round(min(wall[k]), 3)}
        for k in READERS
    }


def live_share(clip: Path, name: str, cameras: int, seconds: float, cores: int) -> dict[str, float]:
    """N paced decoders in N threads; CPU seconds per wall second over the cores."""
    stop = threading.Event()
    counts = [0] * cameras

    class Stop(Exception):
        pass

    def camera(i: int) -> None:
        start = time.monotonic()

        def pace(t: float) -> None:
            counts[i] += 1
            if stop.is_set():
                raise Stop
            wait = start + t - time.monotonic()
            if wait > 0:
                time.sleep(wait)

        while not stop.is_set():
            try:
                READERS[name](clip, pace)
            except Stop:
                return
            start = time.monotonic()  # the clip looped

    threads = [threading.Thread(target=camera, args=(i,), name=f"cam{i}") for i in range(cameras)]
    c0, w0 = cpu_s(), time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    cpu, wall = cpu_s() - c0, time.monotonic() - w0
    return {
        "box_cpu_percent": round(100 * cpu / wall / cores, 1),
        "fps_per_camera": round(sum(counts) / cameras / wall, 1),
    }


def ffmpeg_version() -> str:
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ", 1)[0]


def render(res: dict) -> str:
    """The markdown of a results file: the README's decode block (``--render``)."""
    c = res["clip"]
    rounds = len(res["per_frame"]["old"]["cpu_ms_rounds"])
    lines = [
        f"A {c['width']}x{c['height']} H.264 stream at {c['fps']} fps (GOP {c['gop']}, {c['kbps']} kbit/s, "
        f"no B-frames: what an IP camera sends) with the daemon's default cap of {res['cap_fps']:g} fps, "
        f"decoded in software; CPU ms per source frame (process and children, best of {rounds} rounds):",
        "",
        "| path | CPU ms per frame | vs old |",
        "|---|---:|---:|",
    ]
    old = res["per_frame"]["old"]["cpu_ms_per_frame"]
    for key, label in res["variants"].items():
        ms = res["per_frame"][key]["cpu_ms_per_frame"]
        lines.append(f"| {key}: {label} | {ms:.2f} | {ms / old:.2f}x |")
    names = [n for n in next(iter(res["live"].values())) if n != "old"]
    head = " | ".join(f"{n}: box CPU | {n}/old" for n in names)
    lines += [
        "",
        f"Cameras at 30 fps in real time, one process (the share of all {res['cores_used']} cores):",
        "",
    ]
    lines += [
        f"| cameras | old: box CPU | {head} | fps per camera ({' / '.join(['old', *names])}) |",
        "|---:|" + "---:|" * (2 * len(names) + 2),
    ]
    for n, row in res["live"].items():
        o = row["old"]
        cells = []
        for name in names:
            w = row[name]
            ratio = w["box_cpu_percent"] / o["box_cpu_percent"] if o["box_cpu_percent"] else float("nan")
            cells.append(f"{w['box_cpu_percent']:.1f} % | {ratio:.2f}")
        fps = " / ".join(f"{row[k]['fps_per_camera']:.1f}" for k in ["old", *names])
        lines.append(f"| {n} | {o['box_cpu_percent']:.1f} % | {' | '.join(cells)} | {fps} |")
    load = res.get("load_avg") or [float("nan")] * 2
    versions = f"Python {res['python']}, OpenCV {res['opencv']}, PyAV {res['pyav']}"
    versions += f" (libavcodec {res['ffmpeg_pyav']})"
    if res.get("ffmpeg_program"):
        versions += f", ffmpeg {res['ffmpeg_program']}"
    lines += [
        "",
        f"`benchmarks/decode.py` (`make bench`), {res['date'][:10]}, {res['machine']}, load average "
        f"{load[0]:.1f} -> {load[1]:.1f}; {versions}. VAAPI: {res['vaapi']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=os.environ.get("EXPRESSIOND_MODELS", str(ROOT / "models" / "ir")))
    ap.add_argument("--seconds", type=int, default=20, help="clip length (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="part 1 rounds (default 3)")
    ap.add_argument("--cameras", default="1,2,4", help="part 2 camera counts (default 1,2,4)")
    ap.add_argument(
        "--live-seconds", type=float, default=20.0, help="part 2 seconds per path and count (default 20)"
    )
    ap.add_argument("--json", nargs="?", type=Path, const=ROOT / "benchmarks" / "decode.json", metavar="OUT")
    ap.add_argument(
        "--render",
        nargs="?",
        type=Path,
        const=ROOT / "benchmarks" / "decode.json",
        metavar="FILE",
        help="measure nothing: print the markdown of a results file (default benchmarks/decode.json)",
    )
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    clip = make_clip(args.seconds, Path(args.models) / "samples" / "demo.avi")
    backend, why = choose_backend("vaapi")
    if backend == "vaapi":  # an iGPU here: its row too, by the same rules
        VARIANTS["vaapi"] = (
            f"the ffmpeg program with VAAPI, only the {CAP_FPS:g} fps kept downloaded and converted"
        )
        READERS["vaapi"] = lambda p, pace: read_ffmpeg(p, pace, hwaccel=True)
    with av.open(str(clip)) as c:
        frames = c.streams.video[0].frames
    cores = len(os.sched_getaffinity(0))
    load_start = os.getloadavg()[0]
    result_per_frame = per_frame(clip, args.rounds)
    live: dict[str, dict] = {}
    names = ["old", "new"] + (["vaapi"] if "vaapi" in READERS else [])
    for n in (int(x) for x in args.cameras.split(",")):
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for name in names + names[::-1]:  # old new new old: drift hits both alike
            runs[name].append(live_share(clip, name, n, args.live_seconds / 2, cores))
            print(f"decode: {n} camera(s), {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        live[str(n)] = {
            name: {k: round(sum(r[k] for r in rs) / len(rs), 1) for k in rs[0]} for name, rs in runs.items()
        }
    res = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "cores_used": cores,
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "pyav": av.__version__,
        "ffmpeg_pyav": ".".join(map(str, av.library_versions["libavcodec"])),
        "ffmpeg_program": ffmpeg_version(),
        "load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "clip": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "gop": GOP, "kbps": KBPS, "frames": frames},
        "cap_fps": CAP_FPS,
        "variants": VARIANTS,
        "per_frame": result_per_frame,
        "live": live,
        "live_seconds": args.live_seconds,
        "vaapi": "measured (rows vaapi)" if backend == "vaapi" else f"not measured: {why}",
    }
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
