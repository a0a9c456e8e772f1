"""What /readyz answers, from one Observation: ready when the models are compiled (the service
is running, not starting or stopping), every camera is connected, finished, or has been down
no longer than its budget (its ``reconnect_max_s``: by then the capture has retried at its
longest backoff and failed), and every sink with a link is connected or spooling (a broker
that is away costs nothing while the spool keeps the events; a broker away while the disk
refuses the spool's writes loses events on a crash).

Thread: none of its own; a pure function, called from the endpoint's "http" thread.
"""

from __future__ import annotations

from typing import Any

from expressiond.daemon.records import Observation

# An observation older than this means the service's main loop has stopped turning (a reload
# compiles for a few seconds at most; the watchdog restarts a loop that is stuck for good).
STALE_AFTER_S = 60.0


def camera_state(connected: bool, finished: bool, down_s: float | None, budget_s: float) -> str:
    if connected:
        return "connected"
    if finished:
        return "finished"
    return "reconnecting" if down_s is None or down_s <= budget_s else "down"


def readiness(obs: Observation | None, now: float) -> dict[str, Any]:
    """The /readyz body: ``ready`` and why, check by check."""
    if obs is None:
        return {"ready": False, "phase": "starting", "checks": {}}
    age = now - obs.at_mono
    models = {"ok": obs.phase == "running", "phase": obs.phase}
    cameras: dict[str, Any] = {}
    if obs.health is not None:
        for cam in obs.health.cameras:
            budget = obs.camera_budget_s.get(cam.name, 0.0)
            state = camera_state(cam.connected, cam.finished, cam.down_s, budget)
            cameras[cam.name] = {
                "ok": state != "down",
                "state": state,
                "down_s": None if cam.down_s is None else round(cam.down_s, 1),
                "budget_s": budget,
            }
    sinks = {
        s.name: {
            "ok": s.connected or s.spooling,
            "connected": s.connected,
            "spooling": s.spooling,
            "spool_depth": s.spool_depth,
        }
        for s in obs.sinks
    }
    checks = {
        "models": models,
        "cameras": {"ok": models["ok"] and all(c["ok"] for c in cameras.values()), "by_name": cameras},
        "sinks": {"ok": all(s["ok"] for s in sinks.values()), "by_name": sinks},
        "observation": {"ok": age <= STALE_AFTER_S, "age_s": round(age, 1)},
    }
    return {
        "ready": all(c["ok"] for c in checks.values()),
        "phase": obs.phase,
        "device_id": obs.device_id,
        "checks": checks,
    }
