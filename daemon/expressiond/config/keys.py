"""How a config key is declared: once, as a dataclass field of config/model.py that carries its
type (the annotation), its default, its rule and whether a SIGHUP reload may change it.

    fps: float = number(10.0, "a number > 0 and <= 120", lambda v: 0 < v <= 120)

The schema (schema.py) reads every table from these declarations, ``check-config --json`` and
the tests read the defaults from them, and the reload policy is derived from the ``reload``
flag (``restart_changes``) rather than from a list kept somewhere else.

Thread: none of its own; the declarations are immutable, read from any thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LIVE = "live"  # a reload applies the new value
RESTART = "restart"  # the value is fixed at start (MQTT connection, log setup): restart to change it
KEY = "expressiond.key"  # the field metadata entry holding the Key


@dataclass(frozen=True)
class Key:
    """How the schema reads one key: ``read`` names the getter (values.Section.<read>, or a
    reader of schema.READERS for ``custom``), ``rule`` says what a good value is."""

    read: str
    rule: str = ""
    ok: Callable[[Any], Any] | None = None
    choices: tuple[str, ...] = ()
    suggest: int = 0  # a name of at most this many characters to offer as "try ..."
    required: str = ""  # the fix to tell when the key is missing (a key without default)
    reload: str = LIVE
    table: type | None = None  # read == "table": the dataclass of the sub-table


def _field(default: Any, key: Key, factory: Callable[[], Any] | None = None) -> Any:
    metadata = {KEY: key}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if default is dataclasses.MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def number(default: Any, rule: str, ok: Callable[[float], bool], *, reload: str = LIVE) -> Any:
    """A float (an integer in the file is accepted and made float); never a boolean."""
    return _field(default, Key("number", rule, ok, reload=reload))


def integer(default: Any, rule: str, ok: Callable[[int], bool], *, reload: str = LIVE) -> Any:
    return _field(default, Key("integer", rule, ok, reload=reload))


def boolean(default: bool, *, reload: str = LIVE) -> Any:
    return _field(default, Key("boolean", "true or false", reload=reload))


def text(
    default: Any = dataclasses.MISSING,
    rule: str = "a non-empty string",
    ok: Callable[[str], Any] | None = None,
    *,
    suggest: int = 0,
    required: str = "",
    reload: str = LIVE,
) -> Any:
    """A string; without a default the key is required (``required`` tells how to add it)."""
    return _field(default, Key("string", rule, ok, suggest=suggest, required=required, reload=reload))


def path(*, reload: str = LIVE) -> Any:
    """A file or directory path; None when not set."""
    return _field(None, Key("path", "a non-empty path", reload=reload))


def choice(default: Any, choices: tuple[str, ...], *, reload: str = LIVE) -> Any:
    return _field(default, Key("choice", choices=tuple(choices), reload=reload))


def device(default: str | None = None, *, reload: str = LIVE) -> Any:
    """An OpenVINO device string (shape only; no hardware is touched)."""
    return _field(default, Key("device", reload=reload))


def custom(
    default: Any = dataclasses.MISSING,
    rule: str = "",
    *,
    reader: str,
    factory: Callable[[], Any] | None = None,
    required: str = "",
    reload: str = LIVE,
) -> Any:
    """A key with its own reader in schema.READERS (a value of two types, an array of tables);
    ``factory`` makes the default when the key is not written (device_id: the host name)."""
    return _field(default, Key("custom:" + reader, rule, required=required, reload=reload), factory)


def table(cls: type, *, optional: bool = False, reload: str = LIVE) -> Any:
    """A sub-table; ``optional``: None unless the table is written (e.g. [mqtt] turns MQTT on)."""
    key = Key("table", reload=reload, table=cls)
    if optional:
        return field(default=None, metadata={KEY: key})
    return field(default_factory=cls, metadata={KEY: key})


def keys(cls: type) -> list[tuple[dataclasses.Field, Key]]:
    """The declared keys of a config dataclass, in declaration order (= reading order)."""
    return [(f, f.metadata[KEY]) for f in dataclasses.fields(cls) if KEY in f.metadata]


def default_of(cls: type, name: str) -> Any:
    """The declared default of key ``name`` of ``cls`` (raises KeyError for a required key)."""
    for f, _key in keys(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default (it is required)")
    raise KeyError(f"{cls.__name__} has no key {name}")


def restart_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Key paths declared ``reload=RESTART`` whose value differs between two configs."""
    changed = []
    for f, key in keys(type(new)):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if key.reload == RESTART:
            if before != after:
                changed.append(prefix + f.name)
        elif key.table is not None and before is not None and after is not None:
            changed += restart_changes(before, after, f"{prefix}{f.name}.")
    return changed


def keep_restart_values(old: Any, new: Any) -> Any:
    """``new`` with every ``reload=RESTART`` key set back to its value in ``old``."""
    updates = {}
    for f, key in keys(type(new)):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if key.reload == RESTART:
            if before != after:
                updates[f.name] = before
        elif key.table is not None and before is not None and after is not None:
            kept = keep_restart_values(before, after)
            if kept is not after:
                updates[f.name] = kept
    return dataclasses.replace(new, **updates) if updates else new
