"""Rebuild the pinned upstream networks as OpenVINO IR (``expressiond models build``)."""
