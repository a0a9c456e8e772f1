"""One exception hierarchy for the whole daemon.

Every error an operator can cause (bad config, missing or broken model files, unreadable
input) is an ``ExpressiondError`` with a one-line message that says what to do, and maps to
a distinct process exit code. The CLI prints the message and exits with that code; no
traceback is shown for these.

Thread: none; exception classes and exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1  # something failed while running (device lost, I/O error)
EXIT_USAGE = 2  # wrong command-line usage
EXIT_CONFIG = 78  # EX_CONFIG: config or model error; systemd must not restart-loop on it


class ExpressiondError(Exception):
    """Base class: an error with an operator-facing message and an exit code."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ExpressiondError):
    exit_code = EXIT_USAGE


class ConfigError(ExpressiondError):
    """The TOML config is wrong. Message names file:line and key path."""

    exit_code = EXIT_CONFIG


class ModelError(ExpressiondError):
    """A model file is missing, corrupt or contradicts its metadata."""

    exit_code = EXIT_CONFIG


class DeviceError(ExpressiondError):
    """The configured inference device is absent or cannot run the model."""

    exit_code = EXIT_CONFIG


class ModelBuildError(ExpressiondError):
    """Building the IR from the pinned upstream package failed."""

    exit_code = EXIT_RUNTIME


class InputError(ExpressiondError):
    """An input image or stream cannot be read."""

    exit_code = EXIT_RUNTIME
