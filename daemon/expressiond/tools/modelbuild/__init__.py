"""Rebuild the pinned upstream networks as OpenVINO IR (``expressiond models build``).

Thread: the command's main thread.
"""

from expressiond.inference import telemetry

telemetry.decline()  # before the builders import openvino: it would phone home
