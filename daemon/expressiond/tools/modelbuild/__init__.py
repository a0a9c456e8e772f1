"""Rebuild the pinned upstream networks as OpenVINO IR (``expressiond models build``).

Thread: the command's main thread.
"""
