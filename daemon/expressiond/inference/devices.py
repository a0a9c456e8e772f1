"""Inference devices: what a configured device string means on this machine, before anything
is compiled.

``plan_device`` turns "GPU", "AUTO:GPU,CPU", "MYRIAD", ... plus the devices OpenVINO reports
into what to compile for, or a DeviceError (exit 78) that names the devices that exist and
what to install. AUTO and MULTI lists fall back to the listed devices that are present (and
say so); a plain device or a HETERO list must be present as written. ``effective_precision``
applies the device's precision rules (MYRIAD runs FP16 only). The ``devices`` command's
report lives in device_report.py.

Thread: none of its own; pure functions, called at compile.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from expressiond.errors import DeviceError

log = logging.getLogger(__name__)

FALLBACK_PREFIXES = ("AUTO", "MULTI")  # a listed device may be absent if another is present
STRICT_PREFIXES = ("HETERO", "BATCH")  # every listed device must be present
STATIC_SHAPE_DEVICES = ("NPU", "MYRIAD")  # compile static shapes only
CACHED_DEVICES = ("GPU", "NPU")  # slow to compile: always use the model cache
KNOWN = ("CPU", "GPU", "NPU", "MYRIAD", "HDDL", "GNA")

INSTALL_HINTS = {
    "GPU": "an Intel iGPU needs its OpenCL runtime: apt install intel-opencl-icd (newer GPUs: "
    "Intel's compute-runtime packages), and the service user in group render with "
    "access to /dev/dri/renderD128",
    "NPU": "an Intel NPU (Core Ultra) needs the Linux NPU driver (intel-driver-compiler-npu and "
    "intel-level-zero-npu from github.com/intel/linux-npu-driver), access to "
    "/dev/accel/accel0 and OpenVINO 2024.0 or newer",
    "MYRIAD": "the Neural Compute Stick 2 needs OpenVINO 2022.3 LTS from Intel's archive "
    "distribution (the pip wheel has no MYRIAD plugin; source its setupvars.sh and run "
    "expressiond with its Python 3.10), the udev rule for USB vendor 03e7, and the "
    "stick plugged in",
    "MYRIAD-removed": "the Neural Compute Stick 2 plugin was removed in OpenVINO 2023.0: run "
    "expressiond on OpenVINO 2022.3 LTS from Intel's archive distribution "
    "(its pip wheel has no MYRIAD plugin; source setupvars.sh, Python 3.10)",
    "MYRIAD-noplugin": "this OpenVINO 2022.3 has no MYRIAD plugin (the pip wheel never had "
    "one): use the 2022.3 archive distribution and source its setupvars.sh",
    "MYRIAD-nostick": "no Neural Compute Stick 2 found: plug it in (lsusb shows 03e7:2485) and "
    "install the udev rule for USB vendor 03e7 (97-myriad-usbboot.rules)",
    "NPU-legacy": "NPU needs OpenVINO 2024.0 or newer; this is OpenVINO 2022.3",
    "HDDL": "HDDL (Vision Accelerator Design) needs OpenVINO 2022.3 or older with HDDL daemon",
    "GNA": "GNA is a low-power audio accelerator; it cannot run these image models",
}


@dataclass(frozen=True)
class DevicePlan:
    asked: str  # the configured string
    device: str  # what to compile for
    physical: tuple[str, ...]  # the concrete devices that may run it
    note: str | None = None  # e.g. why an AUTO list shrank
    legacy: bool = False  # OpenVINO 2022.3

    @property
    def static_shapes(self) -> bool:
        """NPU and MYRIAD compile static shapes only; so does the GPU of OpenVINO 2022.3."""
        static = STATIC_SHAPE_DEVICES + (("GPU",) if self.legacy else ())
        return any(base_name(d) in static for d in self.physical)

    @property
    def wants_cache(self) -> bool:
        return any(base_name(d) in CACHED_DEVICES for d in self.physical)

    @property
    def virtual(self) -> bool:
        return ":" in self.device or self.device in FALLBACK_PREFIXES


def base_name(device: str) -> str:
    """ "GPU.1" -> "GPU", "GPU(2)" -> "GPU"."""
    return re.split(r"[.(]", device, maxsplit=1)[0].strip().upper()


def parse_device(device: str) -> tuple[str | None, list[str]]:
    """("AUTO", ["GPU", "CPU"]) for "AUTO:GPU,CPU"; (None, ["GPU.1"]) for "GPU.1"."""
    text = device.strip()
    head, sep, rest = text.partition(":")
    if head.upper() in FALLBACK_PREFIXES + STRICT_PREFIXES:
        items = [x.strip() for x in rest.split(",") if x.strip()] if sep else []
        return head.upper(), items
    return None, [text]


def is_present(device: str, available: list[str]) -> bool:
    """Whether a concrete device ("GPU", "GPU.1", "CPU") is among OpenVINO's devices."""
    name = re.split(r"\(", device, maxsplit=1)[0].strip().upper()
    if name in available:
        return True
    if "." not in name:  # "GPU" matches "GPU.0", "GPU.1"
        return any(a.split(".")[0] == name for a in available)
    base, _, index = name.partition(".")
    return index == "0" and base in available  # a single GPU is listed as "GPU", not "GPU.0"


def install_hint(device: str, legacy: bool, plugin_registered: bool | None = None) -> str:
    base = base_name(device)
    if base == "MYRIAD":
        if not legacy:
            return INSTALL_HINTS["MYRIAD-removed"]
        return INSTALL_HINTS["MYRIAD-nostick" if plugin_registered else "MYRIAD-noplugin"]
    if base == "NPU" and legacy:
        return INSTALL_HINTS["NPU-legacy"]
    if base in INSTALL_HINTS:
        return INSTALL_HINTS[base]
    return (
        "not a device name OpenVINO knows here; use CPU, GPU, GPU.<n>, NPU, MYRIAD, AUTO, "
        "AUTO:<list> or HETERO:<list>"
    )


def absent_error(
    asked: str, missing: list[str], available: list[str], legacy: bool, plugins: dict[str, bool] | None = None
) -> DeviceError:
    plugins = plugins or {}
    hints = "; ".join(f"{m}: {install_hint(m, legacy, plugins.get(base_name(m)))}" for m in missing)
    present = ", ".join(available) or "none"
    verb = "is" if len(missing) == 1 else "are"
    known = all(base_name(m) in KNOWN for m in missing)
    fallback = (
        f' or device = "AUTO:{",".join(missing)},CPU" to fall back' if known and "CPU" in available else ""
    )
    return DeviceError(
        f"device {asked!r}: {', '.join(missing)} {verb} not present (devices present: "
        f'{present}); {hints}; or set device = "CPU"{fallback}'
    )


def plan_device(
    asked: str, available: list[str], legacy: bool = False, plugins: dict[str, bool] | None = None
) -> DevicePlan:
    """What to compile for, or DeviceError. ``available`` is Core.available_devices."""
    prefix, items = parse_device(asked)
    if prefix is None:
        name = items[0].upper()
        if not is_present(name, available):
            raise absent_error(asked, [name], available, legacy, plugins)
        return DevicePlan(asked, name, (name,), None, legacy)
    if prefix in STRICT_PREFIXES:
        if not items:
            raise DeviceError(f'device {asked!r}: {prefix} needs a device list, e.g. "{prefix}:GPU,CPU"')
        missing = [d for d in items if not is_present(d, available)]
        if missing:
            raise absent_error(asked, missing, available, legacy, plugins)
        return DevicePlan(asked, asked, tuple(items), None, legacy)
    candidates = items or [d for d in available if base_name(d) not in FALLBACK_PREFIXES]
    present = [d for d in candidates if is_present(d, available)]
    missing = [d for d in candidates if d not in present]
    if not present:
        raise absent_error(asked, missing or [asked], available, legacy, plugins)
    note = None
    if missing:
        note = (
            f"{asked}: {', '.join(missing)} not present, running on {', '.join(present)} "
            f"({'; '.join(install_hint(m, legacy, (plugins or {}).get(base_name(m))) for m in missing)})"
        )
    if len(present) == 1:
        # one candidate left: compile for it directly, so its own options (f32 on CPU) apply
        # and OpenVINO 2022.3's AUTO does not trip over a listed device that is absent
        note = note or f"{asked}: only {present[0]} is present; compiling for {present[0]}"
        return DevicePlan(asked, present[0], (present[0],), note, legacy)
    return DevicePlan(asked, f"{prefix}:{','.join(present)}", tuple(present), note, legacy)


def effective_precision(device: str, precision: str) -> str:
    """MYRIAD runs FP16 only: an FP32 request becomes FP16, with a warning."""
    _prefix, items = parse_device(device)
    if any(base_name(d) == "MYRIAD" for d in items) and precision == "FP32":
        log.warning(
            "device %s: MYRIAD (Neural Compute Stick 2) runs FP16 only; using the FP16 IR instead of FP32",
            device,
        )
        return "FP16"
    return precision
