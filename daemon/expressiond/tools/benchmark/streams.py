"""``expressiond benchmark --streams 1,2,4``: one daemon with N cameras against N daemons
with one camera each, pinned one per core (the write-up's 16 numactl-pinned processes, scaled
to this machine).

Both sides are the real ``expressiond run`` on the same clip, N copies of it as cameras at the
same source rate, measured over the same window (bench_daemon). The one process shares its
compiled models and infer requests among its cameras; each pinned process compiles its own
(OpenVINO sees one core and picks one stream). Reported per side: total processed fps, p50
and worst-camera p99 capture-to-result latency, total RSS (sum of each process's peak, VmHWM)
and PSS, fps per allotted core and per GiB, frames per CPU-second actually consumed.

Thread: the command's main thread; the measured daemons are child processes.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from expressiond.config.model import Config
from expressiond.tools.benchmark.daemon import DaemonResult, DaemonSpec, clip_camera, run_group
from expressiond.tools.benchmark.modes import load_avg

STREAM_SOURCE_FPS = 0.0  # every frame of each camera as fast as it goes: capacity (bench_daemon)
GIB = 1024.0


def summarise(results: list[DaemonResult], cores: int, load: float) -> dict:
    fps = sum(r.fps for r in results)
    rss = sum(r.peak_rss_mib for r in results)
    pss = [r.pss_mib for r in results]
    cpu = sum(r.cpu_s for r in results)
    frames = sum(r.frames for r in results)
    p99 = [v for r in results for v in r.latency_p99_ms if v is not None]
    p50 = [v for r in results for v in r.latency_p50_ms if v is not None]
    return {
        "processes": len(results),
        "cores": cores,
        "total_fps": round(fps, 2),
        "p50_ms": round(statistics.median(p50), 1) if p50 else None,
        "p99_ms": max(p99) if p99 else None,
        "rss_mib": round(rss, 1),
        "pss_mib": round(sum(pss), 1) if all(v is not None for v in pss) else None,
        "fps_per_core": round(fps / cores, 3) if cores else None,
        "fps_per_gib": round(fps / (rss / GIB), 3) if rss else None,
        "frames_per_cpu_s": round(frames / cpu, 3) if cpu else None,
        "cpu_s": round(cpu, 2),
        "frames": frames,
        "num_requests": [r.num_requests for r in results],
        "startup_s": max((r.startup_s for r in results), default=None),
        "errors": [f"{r.name}: {r.error}" for r in results if r.error],
        "load_avg": load,
    }


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def run_streams(
    cfg: Config,
    clip: Path,
    counts: list[int],
    seconds: float,
    rounds: int,
    workdir: Path,
    progress=print,
    source_fps: float = STREAM_SOURCE_FPS,
) -> dict:
    ncpu = len(os.sched_getaffinity(0))
    cpus = sorted(os.sched_getaffinity(0))
    runs: list[dict] = []
    steps = rounds * len(counts) * 2
    step = 0
    for rnd in range(rounds):
        for n in counts:
            cams = tuple(clip_camera(f"cam{i}", clip, source_fps) for i in range(n))
            one = [DaemonSpec(f"one-{n}", cams)]
            sep = [
                DaemonSpec(f"sep-{n}-{i}", (clip_camera("cam0", clip, source_fps),), (cpus[i % ncpu],))
                for i in range(n)
            ]
            # alternate which side goes first, so a drifting load favours neither
            order = [("one", one), ("separate", sep)]
            if rnd % 2:
                order.reverse()
            entry: dict = {"round": rnd + 1, "n": n}
            for side, specs in order:
                step += 1
                progress(
                    f"[streams {step}/{steps}] round {rnd + 1}: {n} camera(s), "
                    + ("one process" if side == "one" else f"{n} pinned process(es)")
                    + f" (load {load_avg()})"
                )
                load = load_avg()
                results = run_group(cfg, specs, seconds, workdir)
                cores = ncpu if side == "one" else min(n, ncpu)
                entry[side] = summarise(results, cores, load)
                entry[side]["daemons"] = [r.to_dict() for r in results]
            runs.append(entry)
    return aggregate(runs, counts, seconds, source_fps, ncpu)


def aggregate(runs: list[dict], counts: list[int], seconds: float, source_fps: float, ncpu: int) -> dict:
    """Medians over rounds per N and side; ratios per round (same conditions), then medians."""
    keys = (
        "total_fps",
        "p50_ms",
        "p99_ms",
        "rss_mib",
        "pss_mib",
        "fps_per_core",
        "fps_per_gib",
        "frames_per_cpu_s",
        "load_avg",
    )
    table, by_n = [], {}
    for n in counts:
        mine = [r for r in runs if r["n"] == n]
        row = {"n": n}
        for side in ("one", "separate"):
            row[side] = {k: _median([r[side][k] for r in mine]) for k in keys}
            row[side]["processes"] = 1 if side == "one" else n
            row[side]["cores"] = mine[0][side]["cores"] if mine else None
            row[side]["errors"] = [e for r in mine for e in r[side]["errors"]]
        fps_r = [_ratio(r["one"]["total_fps"], r["separate"]["total_fps"]) for r in mine]
        rss_r = [_ratio(r["one"]["rss_mib"], r["separate"]["rss_mib"]) for r in mine]
        pss_r = [_ratio(r["one"]["pss_mib"], r["separate"]["pss_mib"]) for r in mine]
        row["ratios"] = {
            "fps": _median(fps_r),
            "rss": _median(rss_r),
            "pss": _median(pss_r),
            "fps_rounds": fps_r,
            "rss_rounds": rss_r,
        }
        table.append(row)
        by_n[str(n)] = row["ratios"]
    top = table[-1]["ratios"] if table else {}
    return {
        "counts": counts,
        "seconds_per_run": seconds,
        "source_fps": source_fps,
        "cpus": ncpu,
        "rounds": max((r["round"] for r in runs), default=0),
        "ratios": {
            "one_process_vs_n_processes_fps": top.get("fps"),
            "one_process_vs_n_processes_rss": top.get("rss"),
            "at_n": counts[-1] if counts else None,
        },
        "by_n": by_n,
        "table": table,
        "runs": runs,
        "notes": "one = one expressiond run with N cameras (all cores, shared compiled models "
        "and requests); separate = N expressiond run processes with one camera each, "
        "pinned round-robin to the cores (taskset). rss = sum of each process's "
        "VmHWM; pss = sum of Pss at the end of the window (shared pages counted "
        "once). Ratios are one / separate per round, then the median.",
    }


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None
