"""The one-shot commands beside the daemon: model build (modelbuild/), benchmark (benchmark/),
evaluate, classify, convert, and their helpers (imageio, options). They build inference with
the public factories (inference/factory.py, inference/analyzer.py); the daemon never imports
this package.

Thread: the command's main thread (the benchmark also starts child processes).
"""
