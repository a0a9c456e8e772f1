"""Reading typed values out of one TOML table, and collecting what is wrong with them.

``Section`` hands out each key's value as the type the schema asks for (never a bool where
a number is expected: TOML ``true`` is not 1), records a ``Problem`` with the key path when a
value is wrong, and at ``finish()`` reports every key nobody asked for as unknown. The
``Checker`` keeps the problems and turns them into one ConfigError.

Thread: none of its own; one Checker per load, used by the thread that loads.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from expressiond.config.lines import KeyPath, format_path, lookup_line
from expressiond.errors import ConfigError

MISSING: Any = object()
NAME_CHARS_RE = re.compile(r"[^a-z0-9_-]")
DEVICE_RE = re.compile(r"^[A-Z][A-Z0-9_]*([.:(]\S*)?$")
DEVICE_RULE = "an OpenVINO device name such as CPU, GPU, GPU.1, NPU, MYRIAD, AUTO or AUTO:GPU,CPU"


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    text: str

    def message(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        out = f"{where}: {self.path}: {self.text}" if self.path else f"{where}: {self.text}"
        return out.replace("\r", "\\r").replace("\n", "\\n")

    def record(self, source: str) -> dict[str, Any]:
        """The JSON form (``check-config --json``): where, which key, what is wrong."""
        return {
            "file": source,
            "line": self.line,
            "key": self.path or None,
            "message": self.text,
            "text": self.message(source),
        }


class Checker:
    """Collects problems, one per key path, and raises them as one ConfigError."""

    def __init__(
        self,
        source: str,
        lines: dict[KeyPath, int],
        default_line: int | None,
        context: Mapping[str, Any] | None = None,
    ):
        self.source = source
        self.context = dict(context or {})  # options of this load (require_cameras)
        self.lines = lines
        self.default_line = default_line  # for keys not written at all (None: no text)
        self.problems: list[Problem] = []
        self._seen: set[str] = set()

    def report(self, path: KeyPath, text: str) -> None:
        shown = format_path(path)
        if shown in self._seen:
            return
        self._seen.add(shown)
        line = lookup_line(self.lines, path)
        self.problems.append(Problem(line if line is not None else self.default_line, shown, text))

    def raise_if_any(self) -> None:
        """Raise the first problem in file order; all of them are on ``error.problems``."""
        if not self.problems:
            return
        ordered = sorted(self.problems, key=lambda p: p.line or 0)  # stable sort
        message = ordered[0].message(self.source)
        more = len(ordered) - 1
        if more:
            message += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
        error = ConfigError(message)
        error.problems = tuple(p.message(self.source) for p in ordered)  # type: ignore[attr-defined]
        error.details = tuple(p.record(self.source) for p in ordered)  # type: ignore[attr-defined]
        raise error


def show(value: Any) -> str:
    """A value as the operator wrote it in TOML, for "got ..." in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, (datetime, date, time)):
        return f"{value.isoformat()} (a date/time)"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sanitized_name(value: str, limit: int) -> str:
    return NAME_CHARS_RE.sub("-", value.strip().lower())[:limit]


class Section:
    """One TOML table at ``path``; typed getters record problems and return the default."""

    def __init__(self, checker: Checker, data: Mapping[str, Any], path: KeyPath):
        self.checker = checker
        self.data = data
        self.prefix = path
        self._used: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------------
    def raw(self, key: str) -> Any:
        """The value, or MISSING. None (only from dicts, TOML has no null) counts as missing."""
        self._used.add(key)
        value = self.data.get(key)
        return MISSING if value is None else value

    def present(self, key: str) -> bool:
        return self.data.get(key) is not None

    def bad(self, key: str | int, text: str) -> None:
        self.checker.report(self.prefix + (key,), text)

    def bad_value(self, key: str, rule: str, value: Any, hint: str = "") -> None:
        self.bad(key, f"must be {rule}, got {show(value)}{hint}")

    def require(self, key: str, text: str) -> None:
        self._used.add(key)
        self.bad(key, f"missing: {text}")

    def forbid(self, key: str, text: str) -> None:
        self._used.add(key)
        if key in self.data:
            self.bad(key, text)

    def finish(self) -> None:
        """Report every key that no getter asked for."""
        for key in self.data:
            if key in self._used:
                continue
            known = sorted(self._used)
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f'did you mean "{close[0]}"?' if close else "valid keys: " + ", ".join(known)
            self.bad(str(key), f"unknown key; remove it or fix its name ({hint})")

    # -- typed getters -----------------------------------------------------------------------
    def number(self, key: str, default: Any, rule: str, ok: Callable[[float], bool]) -> Any:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not is_number(value) or not math.isfinite(value) or not ok(value):
            self.bad_value(key, rule, value, _type_hint(value))
            return default
        return float(value)

    def integer(self, key: str, default: Any, rule: str, ok: Callable[[int], bool]) -> Any:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
            self.bad_value(key, rule, value, _type_hint(value))
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.bad_value(key, "true or false", value, _type_hint(value))
            return default
        return value

    def string(
        self,
        key: str,
        default: Any,
        rule: str = "a non-empty string",
        ok: Callable[[str], Any] | None = None,
        *,
        suggest: int = 0,
    ) -> Any:
        """A string; ``suggest`` = length limit of a name to offer as "try ..." on failure."""
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, str) or not value or (ok is not None and not ok(value)):
            hint = ""
            if suggest and isinstance(value, str) and value:
                fixed = sanitized_name(value, suggest)
                if fixed and (ok is None or ok(fixed)):
                    hint = f'; try "{fixed}"'
            self.bad_value(key, rule, value, hint)
            return default
        return value

    def path(self, key: str, default: Any = None) -> Any:
        return self.string(key, default, "a non-empty path", ok=lambda v: "\0" not in v)

    def choice(self, key: str, default: Any, choices: tuple[str, ...]) -> Any:
        value = self.raw(key)
        if value is MISSING:
            return default
        if value in choices and isinstance(value, str):
            return value
        rule = "one of " + ", ".join(f'"{c}"' for c in choices)
        hint = ""
        if isinstance(value, str):
            same = [c for c in choices if c.lower() == value.strip().lower()]
            hint = f' (write "{same[0]}")' if same else ""
        self.bad_value(key, rule, value, hint)
        return default

    def device(self, key: str, default: Any = None) -> Any:
        """An OpenVINO device string; only its shape is checked (no hardware is touched)."""
        value = self.raw(key)
        if value is MISSING:
            return default
        if isinstance(value, str) and DEVICE_RE.match(value):
            return value
        hint = ""
        if isinstance(value, str) and DEVICE_RE.match(value.strip().upper()):
            hint = f' (device names are upper case: write "{value.strip().upper()}")'
        self.bad_value(key, DEVICE_RULE, value, hint)
        return default

    def table(self, key: str) -> Section | None:
        value = self.raw(key)
        if value is MISSING:
            return None
        if not isinstance(value, Mapping):
            self.bad_value(key, f"a table (write [{format_path(self.prefix + (key,))}])", value)
            return None
        return Section(self.checker, value, self.prefix + (key,))


def _type_hint(value: Any) -> str:
    if isinstance(value, bool):
        return " (a boolean)"
    if isinstance(value, str):
        if value.strip().lower() in ("true", "false"):
            return " (a string: write true or false without quotes)"
        try:
            float(value)
        except ValueError:
            return " (a string)"
        return " (a string: write the number without quotes)"
    return ""
