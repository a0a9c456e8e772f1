#!/usr/bin/env python3
"""Render benchmarks/faults.json (written by the fault suite, tests/faults) as the README's
markdown table: fault, how it was made, result, events produced / received / lost, duplicates.

    python benchmarks/fault_table.py [--json benchmarks/faults.json] [--strict]

``--strict`` exits 1 when a row lost events or records a failed test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = ("Fault", "How it was made", "Result", "Events produced", "Received", "Lost", "Duplicates")


def cell(value) -> str:
    if value is None:
        return "n/a"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(doc: dict) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * 4) + "|",
    ]
    for r in doc.get("faults", []):
        lines.append(
            "| "
            + " | ".join(
                cell(r.get(k))
                for k in (
                    "fault",
                    "how",
                    "result",
                    "events_produced",
                    "events_received",
                    "events_lost",
                    "duplicates",
                )
            )
            + " |"
        )
    lost = sum(r.get("events_lost") or 0 for r in doc.get("faults", []))
    lines.append("")
    lines.append(
        f"Events lost in total: {lost}. Measured by `tests/faults` on {doc.get('machine')}, "
        f"last updated {doc.get('updated')}; regenerate with "
        "`make faults` (the fault suite, then this table; `make soak` adds the long runs)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(HERE / "faults.json"), help="the suite's results")
    ap.add_argument("--strict", action="store_true", help="exit 1 on lost events or failures")
    args = ap.parse_args(argv)
    try:
        doc = json.loads(Path(args.json).read_text())
    except FileNotFoundError:
        print(f"{args.json} not found: run the fault suite first (pytest tests/faults)", file=sys.stderr)
        return 1
    sys.stdout.write(render(doc))
    bad = [
        r["key"]
        for r in doc.get("faults", [])
        if (r.get("events_lost") or 0) > 0 or str(r.get("result", "")).startswith("FAILED")
    ]
    if args.strict and bad:
        print(f"lost events or failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
