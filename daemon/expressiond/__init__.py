"""expressiond: facial-expression events from cameras, inferred with OpenVINO, published over MQTT.

Thread: none (the version only).
"""

__version__ = "0.1.0"
