"""Wall time of the whole test suite (unit tests and every lesson under nbval), as CI runs it.

    python bench/suite_walltime.py          # pytest in this environment
    python bench/suite_walltime.py --ci     # bash .ci/run: fresh venv, install, then pytest

Writes bench/results/suite_walltime.json with the pass/fail counts pytest printed and the time
pytest itself reported next to the wall time of the whole command.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from machine import write_result

ROOT = Path(__file__).resolve().parents[1]


def parse_summary(text: str) -> dict[str, float | int]:
    """pytest's last line, e.g. '745 passed, 1 skipped in 405.83s' -> counts and seconds."""
    found: dict[str, float | int] = {}
    for line in reversed(text.splitlines()):
        if re.search(r"\b(passed|failed|error)s?\b.* in [\d.]+s", line):
            for count, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", line):
                found[what.rstrip("s") if what.startswith("error") else what] = int(count)
            found["pytest_seconds"] = float(re.search(r" in ([\d.]+)s", line).group(1))
            break
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="time bash .ci/run (fresh venv) instead")
    p.add_argument("--out", type=Path, default=None, help="result file (default bench/results/)")
    args = p.parse_args(argv)
    cmd = ["bash", ".ci/run"] if args.ci else [sys.executable, "-m", "pytest", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = parse_summary(proc.stdout + proc.stderr)
    result = {
        "command": " ".join(cmd[-3:] if not args.ci else cmd),
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        **summary,
    }
    print(result)
    print(f"wrote {write_result('suite_walltime' + ('_ci' if args.ci else ''), result, args.out)}")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
