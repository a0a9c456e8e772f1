"""``expressiond devices``: what OpenVINO sees on this machine, and whether the configured
models compile on each device and on the configured one.

Thread: the command's main thread.
"""

from __future__ import annotations

import time

from expressiond.errors import ExpressiondError
from expressiond.inference.devices import effective_precision, install_hint, is_present
from expressiond.inference.engine import compile_net, plain_value, plugin_registered, shared_core
from expressiond.inference.metadata import resolve_model
from expressiond.inference.ovcompat import LEGACY, VERSION, property_value

DEVICE_PROPERTIES = (
    ("full_name", "FULL_DEVICE_NAME"),
    ("architecture", "DEVICE_ARCHITECTURE"),
    ("type", "DEVICE_TYPE"),
    ("capabilities", "OPTIMIZATION_CAPABILITIES"),
    ("async_requests_range", "RANGE_FOR_ASYNC_INFER_REQUESTS"),
    ("streams_range", "RANGE_FOR_STREAMS"),
    ("default_inference_precision", "INFERENCE_PRECISION_HINT"),
)
WELL_KNOWN = ("GPU", "NPU", "MYRIAD")


def _device_property(core, device: str, name: str):
    try:
        value = core.get_property(device, name)
    except Exception:  # noqa: BLE001 - not every plugin has every property
        return None
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return list(value)  # RANGE_FOR_*: (min, max[, step])
    value = plain_value(value)
    return value.removeprefix("Type.") if isinstance(value, str) else value


def _precisions(capabilities) -> list[str]:
    """The numeric precisions among OPTIMIZATION_CAPABILITIES (FP32, FP16, BF16, INT8, ...)."""
    return [c for c in capabilities or [] if c in ("FP32", "FP16", "BF16", "INT8", "BIN")]


def _range(value) -> str:
    if isinstance(value, list) and len(value) >= 2:
        return f"{value[0]}..{value[1]}"
    return "?"


def _roles(cfg) -> list[tuple[str, str, str, str]]:
    """(role, model, configured device, precision) of every configured network: the detector,
    then the classifier ("classifier" for the first member of an ensemble, "classifier[i]")."""
    out = [
        ("detector", cfg.detector.model, cfg.model_device(cfg.detector), cfg.model_precision(cfg.detector))
    ]
    device, precision = cfg.model_device(cfg.classifier), cfg.model_precision(cfg.classifier)
    for i, member in enumerate(cfg.classifier.members):
        out.append(("classifier" if i == 0 else f"classifier[{i}]", member.model, device, precision))
    return out


def _try_compile(cfg, role: str, model: str, device: str, precision: str, core) -> dict:
    kind = "detector" if role == "detector" else "classifier"
    precision = effective_precision(device, precision)
    row = {"model": model, "precision": precision, "device": device}
    t0 = time.perf_counter()
    try:
        files = resolve_model(model, cfg.models_path(), precision)
        net = compile_net(
            files, kind, device, precision, cfg.inference.performance_hint, cfg.inference.cache_dir, core
        )
    except ExpressiondError as exc:
        row.update(compiles=False, error=str(exc), exit_code=exc.exit_code)
        return row
    row.update(
        compiles=True,
        compile_ms=round((time.perf_counter() - t0) * 1000, 1),
        compiled_for=net.device,
        note=net.plan.note if net.plan else None,
        optimal_requests=plain_value(property_value(net.compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS")),
        execution_devices=net.info.get("EXECUTION_DEVICES") or [net.device],
        inference_precision=net.info.get("INFERENCE_PRECISION_HINT"),
        static_input=list(net.adapter.static_size) if net.adapter.static_size else None,
    )
    return row


def device_report(cfg, core=None) -> dict:
    """Every device OpenVINO lists (properties + the configured models compiled there), the
    configured devices' verdict, and the usual accelerators that are absent with what to
    install."""
    core = core or shared_core()
    available = list(core.available_devices)
    devices = []
    for name in available:
        row = {"name": name}
        for key, prop in DEVICE_PROPERTIES:
            row[key] = _device_property(core, name, prop)
        row["precisions"] = _precisions(row["capabilities"])
        row["models"] = {
            role: _try_compile(cfg, role, model, name, precision, core)
            for role, model, _device, precision in _roles(cfg)
        }
        devices.append(row)
    configured = {
        role: _try_compile(cfg, role, model, device, precision, core)
        for role, model, device, precision in _roles(cfg)
    }
    myriad = plugin_registered(core, "MYRIAD") if LEGACY else False
    absent = [
        {"name": n, "install": install_hint(n, LEGACY, myriad)}
        for n in WELL_KNOWN
        if not is_present(n, available)
    ]
    return {
        "openvino": VERSION,
        "api": "openvino.runtime, 2022.3 LTS" if LEGACY else "openvino",
        "devices": devices,
        "configured": configured,
        "not_present": absent,
        "ok": all(r["compiles"] for r in configured.values()),
    }


def format_report(report: dict) -> str:
    lines = [f"OpenVINO {report['openvino']} ({report['api']} API)", ""]
    for d in report["devices"]:
        lines.append(f"{d['name']}: {d['full_name'] or '?'}")
        caps = ", ".join(d["capabilities"] or []) or "?"
        lines.append(
            f"  type {d['type'] or '?'}, architecture {d['architecture'] or '?'}; capabilities {caps}"
        )
        lines.append(
            f"  precisions {', '.join(d['precisions']) or '?'}; default inference "
            f"precision {d['default_inference_precision'] or '?'}; async requests "
            f"{_range(d['async_requests_range'])}; streams {_range(d['streams_range'])}"
        )
        for role, m in d["models"].items():
            lines.append(f"  {role} {m['model']} {m['precision']}: {_verdict(m)}")
    for a in report["not_present"]:
        lines.append(f"not present: {a['name']} ({a['install']})")
    lines.append("")
    for role, m in report["configured"].items():
        lines.append(
            f"configured {role}: device {m['device']!r}, {m['model']} {m['precision']}: {_verdict(m)}"
        )
    return "\n".join(lines)


def _verdict(m: dict) -> str:
    if not m["compiles"]:
        return f"does NOT compile: {m['error']}"
    where = ", ".join(m["execution_devices"] or []) or m["compiled_for"]
    text = (
        f"compiles in {m['compile_ms']:.0f} ms, runs on {where}, optimal requests "
        f"{m['optimal_requests']}, inference precision {m['inference_precision']}"
    )
    if m.get("static_input"):
        text += f", static input {m['static_input'][0]}x{m['static_input'][1]}"
    if m.get("note"):
        text += f" ({m['note']})"
    return text
