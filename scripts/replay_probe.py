"""Replay the mishandled cases of the hostile probe (issue 23) and count the handled ones.

Usage::

    python scripts/replay_probe.py [CASES_TSV]   # default ../shared/probe/cases.tsv

Each mishandled row of the table (column ``verdict`` = ``MISHANDLED``) is reproduced by
the tests of ``tests/test_hostile.py`` whose ids name the case (``..._A039_...``,
``[B305]``): they recreate the row's scratch configs, model files and stores. This
script runs that file once (pytest, junit XML) and reports, per case, how many of its
tests passed, failed or were skipped; a case counts as handled when it has at least
one test and all of its tests passed. Exit code 0 when every case is handled.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mishandled(tsv: Path) -> list[dict]:
    with open(tsv, newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["verdict"] == "MISHANDLED"]


def run_tests() -> dict[str, str]:
    """Test node name -> 'passed' / 'failed' / 'skipped'."""
    with tempfile.TemporaryDirectory() as d:
        xml = Path(d) / "r.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(ROOT / "tests" / "test_hostile.py"), f"--junitxml={xml}"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       stdout=subprocess.DEVNULL, check=False)
        out = {}
        for tc in ET.parse(xml).getroot().iter("testcase"):
            state = "passed"
            if tc.find("failure") is not None or tc.find("error") is not None:
                state = "failed"
            elif tc.find("skipped") is not None:
                state = "skipped"
            out[tc.get("name")] = state
    return out


def main(argv: list[str]) -> int:
    tsv = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "probe" / "cases.tsv"
    rows = mishandled(tsv)
    results = run_tests()
    handled = 0
    for r in rows:
        cid = r["id"]
        mine = {n: s for n, s in results.items() if re.search(rf"(?<![A-Z0-9]){cid}(?!\d)", n)}
        counts = {s: sum(v == s for v in mine.values()) for s in ("passed", "failed",
                                                                   "skipped")}
        ok = bool(mine) and counts["passed"] == len(mine)
        handled += ok
        print(f"{cid}\t{'handled' if ok else 'NOT HANDLED'}\t{len(mine)} test(s): "
              f"{counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped\t{r['case']}")
    print(f"\n{handled} of {len(rows)} mishandled cases handled")
    return 0 if handled == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
