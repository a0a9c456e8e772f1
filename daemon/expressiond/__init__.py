"""expressiond: facial-expression events from cameras, inferred with OpenVINO, published over MQTT."""

__version__ = "0.1.0"
