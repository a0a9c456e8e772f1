"""Read, adapt and compile models for the configured device; report what OpenVINO chose.

Every way a model or device can be wrong ends here as one ModelError (the files) or
DeviceError (the device) line, raised before the daemon says READY (exit 78).

Thread: the main thread (compile at start or reload); the shared Core is made and released
there (release_core, at exit).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from expressiond.errors import DeviceError, ModelError
from expressiond.inference.adapters import ClassifierAdapter, DetectorAdapter, make_adapter
from expressiond.inference.devices import DevicePlan, base_name, parse_device, plan_device
from expressiond.inference.metadata import ModelFiles, ModelMeta, load_meta
from expressiond.inference.ovcompat import LEGACY, Core, error_reason, property_value
from expressiond.paths import default_cache_dir

log = logging.getLogger(__name__)

REPORTED_PROPERTIES = (
    "EXECUTION_DEVICES",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "INFERENCE_PRECISION_HINT",
    "PERFORMANCE_HINT",
)
_SKIP_OPS = ("Parameter", "Result", "Constant")


def compile_config(
    device: str, precision: str, performance_hint: str | None, cache_dir: str | None, legacy: bool = LEGACY
) -> dict[str, str]:
    """OpenVINO compile properties for the device and precision (flat strings only).

    FP32 asks for f32 inference explicitly: the CPU plugin otherwise runs bf16 on CPUs that
    have it, which changes results by ~1e-2. FP16 leaves the device its native choice. AUTO
    and MULTI pass the hint on to their devices on current OpenVINO; 2022.3 refuses it there.
    """
    cfg: dict[str, str] = {}
    prefix, _items = parse_device(device)
    if precision == "FP32" and (
        base_name(device) in ("CPU", "GPU") or (prefix in ("AUTO", "MULTI") and not legacy)
    ):
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    if performance_hint and performance_hint.upper() != "NONE":
        cfg["PERFORMANCE_HINT"] = performance_hint.upper()
    if cache_dir:
        cfg["CACHE_DIR"] = str(cache_dir)
    return cfg


@dataclass
class CompiledNet:
    compiled: object
    meta: ModelMeta
    files: ModelFiles
    device: str
    config: dict
    info: dict = field(default_factory=dict)
    adapter: DetectorAdapter | ClassifierAdapter | None = None
    plan: DevicePlan | None = None

    @property
    def input_name(self) -> str:
        return self.compiled.inputs[0].get_any_name()


_core: Core | None = None


def shared_core() -> Core:
    global _core
    if _core is None:
        _core = Core()
    return _core


def read_model(core: Core, files: ModelFiles):
    try:
        return core.read_model(str(files.xml), str(files.bin))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
        reason = error_reason(exc)
        low = reason.lower()
        if "weights" in low or "bin file" in low:
            hint = (
                f"{files.bin.name} is truncated or does not belong to {files.xml.name}; "
                "copy both again (or rebuild / convert the model again)"
            )
        elif "opset" in low or "cannot create" in low or "unsupported" in low:
            hint = (
                "it uses a layer this OpenVINO cannot create (an extension or a newer "
                "opset); convert the model again with this OpenVINO's converter"
            )
        else:
            hint = "rebuild or replace it"
        raise ModelError(f"{files.xml}: cannot read the model ({reason}); {hint}") from exc


def present_devices(core: Core, device: str) -> list[str]:
    """The devices to check ``device`` against. Core.available_devices loads every plugin
    (GPU, NPU: about 29 MiB of RSS on a box that has neither), so a plain "CPU" asks the CPU
    plugin alone; anything else (or a CPU plugin that does not answer) lists them all."""
    if device.strip().upper() == "CPU":
        try:
            core.get_property("CPU", "FULL_DEVICE_NAME")
        except Exception:  # noqa: BLE001 - no CPU plugin: the full list says what there is
            pass
        else:
            return ["CPU"]
    return list(core.available_devices)


def plan_for(core: Core, device: str) -> DevicePlan:
    available = present_devices(core, device)
    plugins = {}
    if "MYRIAD" in device.upper():
        plugins["MYRIAD"] = plugin_registered(core, "MYRIAD")
    return plan_device(device, available, LEGACY, plugins)


def plugin_registered(core: Core, name: str) -> bool:
    try:
        core.get_versions(name)
    except Exception:  # noqa: BLE001 - "not registered"
        return False
    return True


def cache_dir_for(plan: DevicePlan, configured: str | None) -> str | None:
    """The configured cache, else the default one for devices that compile slowly (GPU, NPU)."""
    if configured:
        return str(configured)
    return str(default_cache_dir()) if plan.wants_cache else None


def compile_net(
    files: ModelFiles,
    kind: str,
    device: str,
    precision: str,
    performance_hint: str | None = None,
    cache_dir: str | None = None,
    core: Core | None = None,
    *,
    static_shapes: bool = False,
    flip: bool = False,
    crop: str = "model",
    margin: float | None = None,
    fit_crops: bool = False,
    batch: bool = False,
) -> CompiledNet:
    """Read the IR, check it against its metadata, add the frame input, compile it.

    ``static_shapes`` fixes the input size as NPU/MYRIAD need (they get it anyway); it exists
    so that path can be exercised on the CPU. Classifiers only: ``flip`` averages each face
    with its mirror image in one batch-2 request; ``crop``/``margin`` set the crop policy
    (adapters.crop_policy); ``fit_crops`` gives the classifier a static input at its own size
    and fits each crop to it with OpenCV (what the daemon does: a face crop has a new size in
    almost every frame, and each new input shape costs the CPU plugin shape inference and new
    kernels; measured 4.95 -> 3.67 ms per crop of 80-300 px, 16.1 -> 5.6 ms at 400-600 px).
    ``batch`` (with ``fit_crops``): the static input takes any number of crops, so a frame's
    faces go in one request (adapters.prepare_batch; the pipeline's batched classifier).
    The defaults keep the model exactly as its metadata describes it.
    """
    core = core or shared_core()
    meta = load_meta(files, kind)

    def build(batched: bool = False):
        adapter = make_adapter(read_model(core, files), meta, str(files.xml))
        if isinstance(adapter, ClassifierAdapter):
            adapter.set_crop(crop, margin)
            if flip:
                adapter.mirror_average(batched)
        return adapter

    plan = plan_for(core, device)
    if plan.note:
        log.warning("%s", plan.note)
    batch = batch and fit_crops and not (plan.static_shapes or static_shapes)

    def unbatched():
        adapter = build()
        if fit_crops and isinstance(adapter, ClassifierAdapter) and not plan.static_shapes:
            try:
                adapter.make_static()
            except Exception as exc:  # noqa: BLE001 - a model that will not reshape stays dynamic
                log.warning("%s: keeps a dynamic input (%s)", meta.name, error_reason(exc))
                adapter = build()
        return adapter

    adapter = None
    if batch:
        try:
            adapter = build(batched=True)
            if isinstance(adapter, ClassifierAdapter):
                adapter.make_static(batch=True)
        except Exception as exc:  # noqa: BLE001 - a graph that fixes its batch: one crop a request
            log.warning("%s: one face per request (%s)", meta.name, error_reason(exc))
            adapter = None
    if adapter is None:
        adapter = unbatched()
    if plan.static_shapes or static_shapes:
        try:
            adapter.make_static()
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                f"{files.xml}: cannot give {meta.name} the static input "
                f"{plan.device} needs ({error_reason(exc)})"
            ) from exc
        log.info("%s: static input %dx%d for %s", meta.name, *adapter.static_size, plan.device)
    cache = cache_dir_for(plan, cache_dir)
    config = compile_config(plan.device, precision, performance_hint, cache)
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True, mode=0o700)
    t0 = time.perf_counter()
    compiled = None
    if adapter.batched:
        try:
            compiled = core.compile_model(adapter.model, plan.device, config)
        except Exception as exc:  # noqa: BLE001 - the errors below are the unbatched graph's
            log.warning("%s: one face per request (%s)", meta.name, error_reason(exc))
            adapter = unbatched()
    if compiled is None:
        try:
            compiled = core.compile_model(adapter.model, plan.device, config)
        except Exception as exc:  # noqa: BLE001
            error = compile_error(core, adapter.model, plan, meta, files, exc)
            if flip:
                error = DeviceError(
                    f"{error}; or set flip = false in [classifier] (flip averaging "
                    "adds Slice, Concat and ReduceMean layers)"
                )
            raise error from exc
    info = {name: plain_value(property_value(compiled, name)) for name in REPORTED_PROPERTIES}
    info["compile_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    if isinstance(adapter, ClassifierAdapter):
        info["flip"] = adapter.flip
        info["batched"] = adapter.batched
        info["crop"] = {"square": adapter.crop_square, "enlarge": adapter.crop_enlarge}
    if cache:
        info["LOADED_FROM_CACHE"] = plain_value(property_value(compiled, "LOADED_FROM_CACHE"))
    if plan.device != device:
        info["device"] = plan.device
    log.info("compiled %s (%s) for %s: %s", meta.name, precision, plan.device, info)
    return CompiledNet(compiled, meta, files, plan.device, config, info, adapter, plan)


def compile_error(
    core: Core, model, plan: DevicePlan, meta: ModelMeta, files: ModelFiles, exc: Exception
) -> DeviceError:
    """Name the layers the device cannot run when OpenVINO can tell, else its reason."""
    unsupported: list[str] = []
    try:
        supported = core.query_model(model, plan.device)
        unsupported = [
            f"{op.get_friendly_name()} ({op.get_type_name()})"
            for op in model.get_ops()
            if op.get_type_name() not in _SKIP_OPS and op.get_friendly_name() not in supported
        ]
    except Exception:  # noqa: BLE001 - query_model is best effort
        log.debug("query_model failed", exc_info=True)
    if unsupported:
        more = f" and {len(unsupported) - 3} more" if len(unsupported) > 3 else ""
        elsewhere = (
            ""
            if plan.device == "CPU"
            else f'run this model on another device (e.g. device = "CPU" in [{meta.kind}]) or '
        )
        return DeviceError(
            f"{files.xml}: {plan.device} cannot run {meta.name}: unsupported layer(s) "
            f"{', '.join(unsupported[:3])}{more}; {elsewhere}convert it with supported layers"
        )
    elsewhere = (
        "" if plan.device == "CPU" else f'run it on another device (e.g. device = "CPU" in [{meta.kind}]) or '
    )
    return DeviceError(
        f"{files.xml}: cannot compile {meta.name} for {plan.device} ({error_reason(exc)}); "
        f"{plan.device} cannot run a layer of this model: {elsewhere}convert it again with "
        "layers it supports"
    )


def plain_value(value):
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if hasattr(value, "get_type_name"):  # ov.Type, e.g. f32
        return value.get_type_name()
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return str(value)


def release_core() -> None:
    """Drop the shared Core (see Service.release: OpenVINO objects must die on our thread)."""
    global _core
    _core = None
