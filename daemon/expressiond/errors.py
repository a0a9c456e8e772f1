"""One exception hierarchy for the whole daemon.

Every error an operator can cause (bad config, missing or broken model files, unreadable
input) is an ``ExpressiondError`` with a one-line message that says what to do, and maps to
a distinct process exit code. The CLI prints the message and exits with that code; no
traceback is shown for these.

Thread: none; exception classes and exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def combine(errors: Sequence[ExpressiondError]) -> ExpressiondError:
    """One error for several problems found at once (e.g. two model files missing): the first's
    class, message and exit code with "(N more problems after this one)", and every problem
    on ``.problems`` (one-line messages) and ``.details`` (records, see problem_records)."""
    first = errors[0]
    more = len(errors) - 1
    if not more:
        return first
    error = type(first)(f"{first.message} ({more} more problem{'s' if more > 1 else ''} after this one)")
    error.problems = tuple(e.message for e in errors)  # type: ignore[attr-defined]
    error.details = tuple(d for e in errors for d in getattr(e, "details", ()))  # type: ignore[attr-defined]
    return error


def problem_records(error: ExpressiondError, source: str) -> list[dict[str, Any]]:
    """Every problem an error carries, as JSON-able records ``{"file", "line", "key",
    "message", "text"}`` (``check-config --json``): the config's key problems come with their
    line and key path (``details``); any other error is one record with its whole message."""
    details = getattr(error, "details", ())
    if details:
        return [dict(d) for d in details]
    return [{"file": source, "line": None, "key": None, "message": error.message, "text": error.message}]
