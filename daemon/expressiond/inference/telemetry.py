"""OpenVINO's usage telemetry, declined before ``import openvino`` runs.

OpenVINO 2023.1+ imports its model converter (``openvino.tools.ovc``) from ``openvino``
itself, and the converter starts ``openvino_telemetry`` without a dialog: on a machine with no
consent file (~/intel/openvino_telemetry) that counts as consent. So a bare ``import openvino``
writes a client id to ~/intel, counts the use, and starts a thread that sends a Google
Analytics event; a daemon on a customer's network must not. Measured on OpenVINO 2026.4:
$HOME/intel/openvino_ga_cid + stats written, thread "ThreadPoolExecutor-0_0" started (and a
second one, now and then, later in a run).

``decline()`` makes the consent check answer "declined" for this process only: nothing is
written, nothing is sent, no thread starts, and the user's own consent file is left alone
(other OpenVINO tools on the box keep their answer). It runs before the first ``import
openvino`` of the daemon (ovcompat.py) and of the model build (tools/modelbuild). Without
``openvino_telemetry`` (OpenVINO 2022.3, whose import sends nothing) it does nothing.

Thread: the main thread, at import time.
"""

from __future__ import annotations

import sys


def decline() -> bool:
    """True when openvino_telemetry is present and now declines; False when it is absent."""
    if "openvino" in sys.modules and "openvino_telemetry" not in sys.modules:
        return False  # an OpenVINO without the telemetry package was imported already
    try:
        from openvino_telemetry.utils import opt_in_checker
    except Exception:  # noqa: BLE001 - absent, or an incompatible version: nothing to decline
        return False
    declined = opt_in_checker.ConsentCheckResult.DECLINED

    def check(self, enable_opt_in_dialog=True, disable_in_ci=False):  # noqa: ARG001 - the same signature
        return declined

    opt_in_checker.OptInChecker.check = check
    return True
