"""Property-based fuzzing of the TOML config (hypothesis), in-process through
``expressiond.cli.main(["check-config", FILE])``: mutations of the shipped
config/expressiond.toml (wrong types, unknown keys, out-of-range values, unicode, deleted
required keys, MQTT wildcards in topic levels) and of its bytes (garbage, truncation, lost or
doubled lines). Every case is either valid (exit 0, one "ok" line) or exactly one stderr
line and exit 78; never a traceback, never another exit code.

The fixed, named cases (e.g. camera names with ``#``, ``+`` or ``/``) are in
tests/unit/test_config_errors.py; the wildcard property here generalises them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
import re
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from fault_results import update_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from needs import not_applicable

from expressiond import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
BASE_TEXT = (REPO / "config" / "expressiond.toml").read_text()
BASE = tomllib.loads(BASE_TEXT)
N_CASES = int(os.environ.get("EXPRESSIOND_FUZZ_CASES", "600"))
FUZZ = settings(
    max_examples=N_CASES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("EXPRESSIOND_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COUNTS = {"cases": 0, "valid": 0, "rejected": 0}


# -- a small TOML writer (the standard library only reads TOML) -------------------------------
def _str(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _str(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(doc: dict) -> str:
    lines: list[str] = []

    def table(tbl: dict, prefix: list[str]) -> None:
        for k, v in tbl.items():
            if not isinstance(v, dict) and not _is_table_array(v):
                lines.append(f"{_key(k)} = {_value(v)}")
        for k, v in tbl.items():
            path = ".".join(_key(p) for p in [*prefix, k])
            if isinstance(v, dict):
                lines.append(f"\n[{path}]")
                table(v, [*prefix, k])
            elif _is_table_array(v):
                for item in v:
                    lines.append(f"\n[[{path}]]")
                    table(item, [*prefix, k])

    table(doc, [])
    return "\n".join(lines) + "\n"


# -- strategies ---------------------------------------------------------------------------------
def key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += key_paths(v, (*prefix, k))
    elif _is_table_array(node):
        for i, item in enumerate(node):
            out += key_paths(item, (*prefix, i))
    return out


PATHS = key_paths(BASE)
TRICKY = [
    "",
    " ",
    "#",
    "+",
    "/",
    "a/b",
    "door#",
    "+/+",
    "nuc hall",
    "\u0000",
    "\u202e",
    "é",
    "😀",
    "../../etc/passwd",
    "rtsp://",
    "http://[::1",
    "auto",
    "CPU",
    "FP16",
    "GPU.1",
    "AUTO:GPU,CPU",
    "/dev/video0",
    "-1",
    "0",
    "1e999",
    "none",
    "None",
    "\n",
    "\u2028",
    "x" * 300,
    "samples",
    "rtsp://user:pw@host/s",
    "ftp://host/x",
]
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-3, max_value=70000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=24),
    st.sampled_from(TRICKY),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.dates(),
    st.times(),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=8), scalars, max_size=3)
)


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _parent_and_key(doc: Any, path: tuple) -> tuple[Any, Any]:
    return _get(doc, path[:-1]), path[-1]


@st.composite
def structured_case(draw) -> tuple[dict, list[str]]:
    doc = copy.deepcopy(BASE)
    done = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "set", "delete", "unknown", "range"]))
        paths = key_paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent_and_key(doc, path)
        if op == "set":
            parent[key] = draw(values)
        elif op == "delete":
            del parent[key]
        elif op == "unknown":
            tables = [p for p in paths if isinstance(_get(doc, p), dict)] + [()]
            where = _get(doc, draw(st.sampled_from(tables)))
            where[draw(st.text(min_size=1, max_size=12))] = draw(values)
        else:  # numbers next to and far outside the documented ranges
            parent[key] = draw(
                st.one_of(
                    st.sampled_from(
                        [
                            0,
                            -1,
                            1,
                            120,
                            121,
                            65535,
                            65536,
                            2**31,
                            0.0,
                            -0.0,
                            1.0,
                            0.999999,
                            1.000001,
                            3600,
                            3601,
                            86401,
                            10**7 + 1,
                            4097,
                            8193,
                        ]
                    ),
                    st.floats(min_value=-1e6, max_value=1e6),
                )
            )
        done.append(f"{op} {'.'.join(map(str, path))}")
    return doc, done


@st.composite
def byte_case(draw) -> tuple[bytes, str]:
    doc, done = draw(structured_case()) if draw(st.booleans()) else (BASE, [])
    data = (to_toml(doc) if done else BASE_TEXT).encode()
    op = draw(st.sampled_from(["garbage", "truncate", "drop-line", "double-line", "nul"]))
    at = draw(st.integers(0, len(data)))
    if op == "garbage":
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    elif op == "truncate":
        data = data[:at]
    elif op == "nul":
        data = data[:at] + b"\0" + data[at:]
    else:
        lines = data.split(b"\n")
        i = draw(st.integers(0, len(lines) - 1))
        lines[i : i + 1] = [] if op == "drop-line" else [lines[i], lines[i]]
        data = b"\n".join(lines)
    return data, op


# -- the property -----------------------------------------------------------------------------
class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.with_traceback: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.with_traceback.append(record.getMessage())


@pytest.fixture(scope="module")
def case_file(tmp_path_factory, models_dir) -> Path:
    old = os.environ.get("EXPRESSIOND_MODELS")
    os.environ["EXPRESSIOND_MODELS"] = str(models_dir)  # where "samples" and the models are
    yield tmp_path_factory.mktemp("fuzz") / "expressiond.toml"
    if old is None:
        os.environ.pop("EXPRESSIOND_MODELS", None)
    else:
        os.environ["EXPRESSIOND_MODELS"] = old


def check(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["check-config", str(path)])
    finally:
        logging.getLogger().removeHandler(records)
    assert not records.with_traceback, records.with_traceback
    return rc, out.getvalue(), err.getvalue()


def assert_clean(rc: int, out: str, err: str) -> None:
    COUNTS["cases"] += 1
    assert "Traceback" not in out + err
    if rc == 0:
        COUNTS["valid"] += 1
        assert out.count("\n") == 1 and ": ok; " in out, out
        return
    COUNTS["rejected"] += 1
    assert rc == 78, (rc, err)
    assert err.startswith("expressiond: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err.strip()) > len("expressiond: error: ")


def test_shipped_config_is_valid(case_file):
    case_file.write_text(BASE_TEXT)
    assert check(case_file)[0] == 0


@FUZZ
@given(case=structured_case())
def test_mutated_configs_are_valid_or_one_line_exit_78(case_file, case):
    doc, _ops = case
    case_file.write_text(to_toml(doc))
    assert_clean(*check(case_file))


@FUZZ
@given(case=byte_case())
def test_mangled_bytes_are_valid_or_one_line_exit_78(case_file, case):
    data, _op = case
    case_file.write_bytes(data)
    assert_clean(*check(case_file))


TOPIC_KEYS = [("cameras", 0, "name"), ("device_id",), ("mqtt", "prefix"), ("mqtt", "ha_prefix")]


@settings(
    max_examples=150, deadline=None, database=None, derandomize=not os.environ.get("EXPRESSIOND_FUZZ_RANDOM")
)
@given(
    where=st.sampled_from(TOPIC_KEYS),
    head=st.text(max_size=8),
    tail=st.text(max_size=8),
    wildcard=st.sampled_from(["#", "+", "/"]),
)
def test_mqtt_wildcards_in_topic_levels_are_rejected(case_file, where, head, tail, wildcard):
    if where[0] == "mqtt" and wildcard == "/":
        wildcard = "+"  # a prefix may have several levels; "/" alone is only an empty level
    doc = copy.deepcopy(BASE)
    parent, key = _parent_and_key(doc, where) if len(where) > 1 else (doc, where[0])
    parent[key] = head + wildcard + tail
    case_file.write_text(to_toml(doc))
    rc, out, err = check(case_file)
    assert_clean(rc, out, err)
    assert rc == 78, f"{'.'.join(map(str, where))} = {head + wildcard + tail!r} was accepted"
    assert ".".join(str(p) for p in where).replace(".0.", "[0].") in err, err


def test_zz_record_fuzz_counts():
    """Runs after the fuzz tests of this module (file order): at least 500 configs tried."""
    if COUNTS["cases"] == 0:
        # not an input: this run deselected the fuzz tests (e.g. -k), so there is nothing to record
        not_applicable("the fuzz tests of this module did not run in this session")
    update_row(
        "config-fuzz",
        {
            "fault": "bad config (property-based fuzzing)",
            "how": f"hypothesis: {COUNTS['cases']} mutations of config/expressiond.toml (wrong types, "
            "unknown keys, out-of-range values, unicode, deleted keys, MQTT wildcards in "
            "topic levels, garbage bytes, truncation) through check-config",
            "result": f"{COUNTS['valid']} valid (exit 0), {COUNTS['rejected']} rejected with one line "
            "and exit 78; no traceback, no other exit code",
            "events_produced": None,
            "events_received": None,
            "events_lost": None,
            "duplicates": None,
            "details": dict(COUNTS),
            "test": "tests/faults/test_config_fuzz.py",
        },
    )
    assert COUNTS["cases"] >= 500, COUNTS
