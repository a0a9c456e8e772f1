"""Everything that knows OpenVINO: runtime compatibility, compile options, model adapters and
the asynchronous pipeline. Nothing outside this package imports openvino."""
