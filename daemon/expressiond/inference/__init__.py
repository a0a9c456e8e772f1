"""Everything that knows OpenVINO: runtime compatibility, compile options, model adapters and
the asynchronous pipeline. Nothing outside this package imports openvino.

Thread: see each module; models are compiled in the main thread, requests complete on
OpenVINO's threads, results are handled in "inference-coordinator".
"""
