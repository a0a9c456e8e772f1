"""Rows, winner and the printed tables of benchmarks/accuracy.py."""

from __future__ import annotations

import acc_stats as st
import acc_views as av
import numpy as np

MAX_COST = 2.0  # issue 17: at most 2x today's classifier cost per face
MAX_FP16_POINTS = 1.0  # FP16 within 1 point of FP32 (issue 17)
# On 70 photos one photo is 1.4 points, so "within 1 point" can only mean "no top-1 flip";
# the default itself flips one: a row may flip no more photos FP32 -> FP16 than the default.


def variant_row(v: st.Variant, ins, cv, loo, y, sources, labels, base, ms: dict) -> dict:
    k = len(labels)
    per_repeat = (cv == y).mean(1)
    per_photo = (cv == y).mean(0)
    recall = st.recall_per_class(cv, y, k).mean(0)
    src = np.array(sources)
    cost = sum(ms[name] for name in v.views)
    worst = int(np.argmin(recall))
    return {
        "kind": v.kind,
        "views": list(v.views),
        "fitted": v.fitted,
        "weight": v.weight if v.kind == "merge" else None,
        "l2": v.l2 if v.fitted else None,
        "note": v.note,
        "in_sample": round(float(np.mean(ins == y)), 4),
        "cv": {
            "accuracy": round(float(per_repeat.mean()), 4),
            "sd_over_repeats": round(float(per_repeat.std()), 4),
        },
        "loo": round(float(np.mean(loo == y)), 4),
        "per_class_recall": {lab: round(float(r), 3) for lab, r in zip(labels, recall, strict=True)},
        "worst_class": [labels[worst], round(float(recall[worst]), 3)],
        "by_source": {s: round(float(per_photo[src == s].mean()), 3) for s in sorted(set(sources))},
        "ms_per_face": round(cost, 3),
        "cost_vs_default": round(cost / ms[av.DEFAULT_VIEW], 3),
        "vs_default": st.paired(per_photo, base.astype(float)),
        "per_photo_cv": [round(float(p), 2) for p in per_photo],
    }


def choose_winner(result: dict) -> dict:
    """The best cross-validated row within the cost and FP16 limits; "beyond noise" when the
    paired bootstrap interval of its gain over the default excludes zero."""
    rows = result["variants"]
    default = next(iter(rows))
    flips = max(1, rows[default]["fp16"]["top1_flips_vs_fp32"])
    ok = {
        name: r
        for name, r in rows.items()
        if r["cost_vs_default"] <= MAX_COST and r["fp16"]["top1_flips_vs_fp32"] <= flips
    }
    if not ok:
        return {"name": None, "reason": "no row within the cost and FP16 limits"}
    best = max(ok, key=lambda n: (ok[n]["cv"]["accuracy"], -ok[n]["cost_vs_default"]))
    r = ok[best]
    low = r["vs_default"]["delta_90ci_points"][0]
    return {
        "name": best,
        "cv": r["cv"]["accuracy"],
        "cv_90ci": r["vs_default"]["accuracy_90ci"],
        "default_cv": rows[default]["cv"]["accuracy"],
        "beyond_noise": bool(best != default and low > 0),
        "worst_class": r["worst_class"],
        "meets_0.70": r["cv"]["accuracy"] >= 0.70,
        "every_class_0.40": r["worst_class"][1] >= 0.40,
        "excluded_by_limits": sorted(set(rows) - set(ok)),
    }


def _pct(x: float) -> str:
    return f"{x * 100:.1f}"


def render_table(result: dict) -> str:
    rows = result["variants"]
    labels = result["labels"]
    head = (
        f"# Expression accuracy variants: {result['photos']} dev photos, CV {result['cv']['folds']}-fold x "
        f"{result['cv']['repeats']} repeats (stratified); {result['date']}, {result['machine']}, "
        f"OpenVINO {result['openvino']}\n"
        "Accuracy in %. Fixed rows have nothing to fit: CV = in-sample. Delta and its 90 % interval: paired "
        "bootstrap over photos against the default; p: exact McNemar. 1 photo = 1.4 points.\n"
    )
    lines = [
        head,
        "| variant | in-sample | CV (sd) | LOO | FP16 CV (flips) | delta [90% CI] | p | worst class "
        "| FER2013 | muxspace | ms/face | x cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        d = r["vs_default"]
        lo, hi = d["delta_90ci_points"]
        mark = " *" if r["fitted"] else ""
        cv, f16, src = r["cv"], r["fp16"], r["by_source"]
        cells = [
            f"{name}{mark}",
            _pct(r["in_sample"]),
            f"{_pct(cv['accuracy'])} ({_pct(cv['sd_over_repeats'])})",
            _pct(r["loo"]),
            f"{_pct(f16['cv'])} ({f16['top1_flips_vs_fp32']})",
            f"{d['delta_points']:+.1f} [{lo:+.1f}, {hi:+.1f}]",
            f"{d['mcnemar']['p']:.2f}",
            f"{r['worst_class'][0]} {_pct(r['worst_class'][1])}",
            _pct(src.get("FER2013", float("nan"))),
            _pct(src.get("muxspace", float("nan"))),
            f"{r['ms_per_face']:.2f}",
            f"{r['cost_vs_default']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "* fitted inside the folds", "", "Per-class recall (CV, %):", ""]
    lines.append("| variant | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_pct(r["per_class_recall"][lab]) for lab in labels) + " |")
    n = result["nested_selection"]
    lo, hi = n["vs_default"]["delta_90ci_points"]
    picked = ", ".join(f"{k} x{v}" for k, v in list(n["picked"].items())[:4])
    lines += [
        "",
        f"Nested selection (take the best row on the training folds, score the test fold): "
        f"{_pct(n['accuracy'])} % (sd {_pct(n['sd_over_repeats'])}), delta vs default "
        f"{n['vs_default']['delta_points']:+.1f} [{lo:+.1f}, {hi:+.1f}]; picked: {picked}",
    ]
    w = result["winner"]
    if w.get("name"):
        lo, hi = w["cv_90ci"]
        verdict = "beyond noise" if w["beyond_noise"] else "NOT beyond noise: the default stays"
        lines.append(
            f"Best row within {MAX_COST:g}x cost and FP16 flips <= the default's: {w['name']}: CV "
            f"{_pct(w['cv'])} % [90% {_pct(lo)}-{_pct(hi)}] vs default {_pct(w['default_cv'])} % "
            f"({verdict}); "
            f"worst class {w['worst_class'][0]} {_pct(w['worst_class'][1])} %"
        )
    else:
        lines.append(f"No winner: {w['reason']}")
    if result["missing"]:
        lines.append("Left out (missing): " + "; ".join(result["missing"]))
    return "\n".join(lines)
