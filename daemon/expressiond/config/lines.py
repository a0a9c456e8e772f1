"""Where each key of a TOML document is written: key path -> 1-based line number.

tomllib returns plain dicts without positions, yet a config error has to name the line an
operator must edit. This scanner walks the text once (after tomllib has accepted it) and
records the line of every key, table header, array-of-tables element and array element.
It serves error messages only, so it is lenient: on anything unexpected it stops and
returns what it has found so far instead of raising.

Paths are tuples: ``("cameras", 1, "fps")`` is written ``cameras[1].fps`` (0-based index).

Thread: none of its own; pure functions, called by whoever loads a config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\r\n#")


def format_path(path: KeyPath) -> str:
    """``("cameras", 1, "fps")`` -> ``cameras[1].fps``; keys that are not bare get quotes."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        bare = part and all(c in _BARE_KEY_CHARS for c in part)
        shown = part if bare else json.dumps(part, ensure_ascii=False)
        text += f".{shown}" if text else shown
    return text


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path written in ``text`` to the line where it is written."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except Exception:  # positions are best effort: never let them hide the real error
        pass
    return scanner.lines


def lookup_line(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """Line of ``path``, else of its closest written parent (a missing key -> its table)."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def line_of(lines: Mapping[str, int], path: KeyPath) -> int | None:
    """The line of ``path`` in a loaded Config's ``key_lines`` (formatted paths), else of its
    closest written parent (a key left at its default), else None."""
    for end in range(len(path), 0, -1):
        line = lines.get(format_path(path[:end]))
        if line is not None:
            return line
    return None


def where(source: str, lines: Mapping[str, int], path: KeyPath) -> str:
    """ "file:line: key.path" (line_of), or "file: key.path" when nothing of it is written."""
    line = line_of(lines, path)
    return f"{source}:{line}: {format_path(path)}" if line else f"{source}: {format_path(path)}"


class _Stop(Exception):
    """Raised when the scanner meets something it does not expect."""


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.array_table_counts: dict[KeyPath, int] = {}

    # -- low level -------------------------------------------------------------------------
    def _peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def _advance(self, n: int = 1) -> str:
        chunk = self.text[self.pos : self.pos + n]
        if len(chunk) < n:
            raise _Stop
        self.line += chunk.count("\n")
        self.pos += n
        return chunk

    def _expect(self, token: str) -> None:
        if self._peek(len(token)) != token:
            raise _Stop
        self._advance(len(token))

    def _skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._advance()
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def _record(self, path: KeyPath, line: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    # -- document structure ----------------------------------------------------------------
    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.line
            if self._peek(2) == "[[":
                self._advance(2)
                keys = self._key()
                self._skip_blank(newlines=False)
                self._expect("]]")
                table = self._open_array_table(keys, start)
            elif self._peek() == "[":
                self._advance()
                keys = self._key()
                self._skip_blank(newlines=False)
                self._expect("]")
                table = self._resolve(keys)
                self._record(table, start)
            else:
                self._key_value(table)
            self._skip_blank(newlines=False)
            if self.pos < len(self.text) and self._peek() not in "\r\n":
                raise _Stop

    def _resolve(self, keys: tuple[str, ...]) -> KeyPath:
        """A header's path, stepping into the latest element of each array of tables."""
        path: list[str | int] = []
        for key in keys:
            path.append(key)
            count = self.array_table_counts.get(tuple(path))
            if count:
                path.append(count - 1)
        return tuple(path)

    def _open_array_table(self, keys: tuple[str, ...], line: int) -> KeyPath:
        base = self._resolve(keys[:-1]) + (keys[-1],)
        index = self.array_table_counts.get(base, 0)
        self.array_table_counts[base] = index + 1
        path = base + (index,)
        self._record(path, line)
        return path

    def _key_value(self, table: KeyPath) -> None:
        start = self.line
        keys = self._key()
        self._skip_blank(newlines=False)
        self._expect("=")
        self._skip_blank(newlines=False)
        path = table + keys
        self._record(path, start)
        self._value(path)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char == '"':
                parts.append(self._basic_string())
            elif char == "'":
                parts.append(self._literal_string())
            else:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY_CHARS:
                    self.pos += 1
                if self.pos == start:
                    raise _Stop
                parts.append(self.text[start : self.pos])
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    # -- values ----------------------------------------------------------------------------
    def _value(self, path: KeyPath) -> None:
        head = self._peek(3)
        if head in ('"""', "'''"):
            self._multiline_string(head)
        elif head[:1] == '"':
            self._basic_string()
        elif head[:1] == "'":
            self._literal_string()
        elif head[:1] == "[":
            self._array(path)
        elif head[:1] == "{":
            self._inline_table(path)
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _Stop

    def _basic_string(self) -> str:
        start = self.pos
        self._advance()
        while True:
            char = self._advance()
            if char == "\\":
                self._advance()
            elif char == '"':
                break
            elif char == "\n":
                raise _Stop
        raw = self.text[start : self.pos]
        try:
            return str(json.loads(raw))
        except ValueError:
            return raw[1:-1]

    def _literal_string(self) -> str:
        self._advance()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise _Stop
        content = self.text[self.pos : end]
        self._advance(end + 1 - self.pos)
        return content

    def _multiline_string(self, delimiter: str) -> None:
        self._advance(3)
        while True:
            if delimiter == '"""' and self._peek() == "\\":
                self._advance(2)
            elif self._peek(3) == delimiter:
                self._advance(3)
                for _ in range(2):  # up to two quotes may sit right before the delimiter
                    if self._peek() == delimiter[0]:
                        self._advance()
                return
            else:
                self._advance()

    def _array(self, path: KeyPath) -> None:
        self._advance()
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self._peek() == "]":
                self._advance()
                return
            self._record(path + (index,), self.line)
            self._value(path + (index,))
            index += 1
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self._advance()
            elif self._peek() != "]":
                raise _Stop

    def _inline_table(self, path: KeyPath) -> None:
        self._advance()
        while True:
            self._skip_blank(newlines=True)
            if self._peek() == "}":
                self._advance()
                return
            self._key_value(path)
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self._advance()
            elif self._peek() != "}":
                raise _Stop
