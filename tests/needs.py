"""Missing inputs: a skip on a developer's box, a failure under CI (issue 13).

Every test that cannot run for want of something outside the repository (../shared data,
mosquitto, ffmpeg, root for a tmpfs, nncf, PyPI, Python 3.10...) says so through ``need`` /
``missing`` (or the ``needs`` marker): on a laptop it skips, with ``CI`` set to anything but
0/false/no/off it fails and names what is missing and how to get it. tests/conftest.py turns
the skips into one summary line at the end of the run.

``not_applicable`` is the other kind of skip, kept under CI on purpose: the thing under test
does not have the feature (e.g. OpenVINO 2022.3 has no ``convert_model``), nothing is missing.

Use from any test module (tests/ is on sys.path through tests/conftest.py)::

    from needs import need, missing, needs, not_applicable
"""

from __future__ import annotations

import os
import re
from typing import NoReturn

import pytest

MISSING = "missing input: "
NOT_APPLICABLE = "not applicable: "
SEP = " -- "
MARKER = "needs_input"
WHAT_RE = re.compile(re.escape(MISSING) + r"(.+?)" + re.escape(SEP))
NA_RE = re.compile(re.escape(NOT_APPLICABLE) + r"(.+)")


def under_ci() -> bool:
    """True when CI is set to something other than an empty/false value (CI=true, CI=1...)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def missing(what: str, fix: str) -> NoReturn:
    """``what`` (a path, a program, a permission) is not here: skip, or fail under CI.
    ``fix`` says how to provide it."""
    text = f"{MISSING}{what}{SEP}{fix}"
    if under_ci():
        pytest.fail(f"{text} (CI={os.environ['CI']}: a missing input fails the run)", pytrace=False)
    _skip(text)


def need(ok: object, what: str, fix: str) -> None:
    """``missing(what, fix)`` unless ``ok`` is true."""
    if not ok:
        missing(what, fix)


def needs(ok: object, what: str, fix: str) -> pytest.MarkDecorator:
    """Decorator form of ``need`` (checked in setup by tests/conftest.py)::

    @needs(shutil.which("ffmpeg"), "ffmpeg", "apt-get install ffmpeg")
    """
    return getattr(pytest.mark, MARKER)(ok=bool(ok), what=what, fix=fix)


def not_applicable(reason: str) -> NoReturn:
    """A skip that stays a skip under CI: the version or build under test lacks the feature."""
    _skip(f"{NOT_APPLICABLE}{reason}")


def _skip(text: str) -> NoReturn:
    exc = pytest.skip.Exception(text)
    # -ra then names the test, not this line (what skipif does; ignored by a pytest without it)
    exc._use_item_location = True
    raise exc
