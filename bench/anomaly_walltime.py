"""Wall time of the default `python -m toy_gan.anomaly` run, as a user starts it (a new process).

    python bench/anomaly_walltime.py [--repeats 3]

Writes bench/results/anomaly_walltime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from machine import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls, reports = [], []
    env = {**os.environ, "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "toy_gan.anomaly"],
                cwd=tmp,
                env=env,
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - start)
            out = subprocess.run(
                [sys.executable, "-m", "toy_gan.anomaly", "--json", "--plot", "none"],
                cwd=tmp,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            reports.append(json.loads(out.stdout))
            print(
                f"run {i + 1}: {walls[-1]:.1f} s wall "
                f"(training {reports[-1]['train_seconds']:.1f} s)",
                flush=True,
            )
    last = reports[-1]
    result = {
        "command": "python -m toy_gan.anomaly",
        "wall_seconds": [round(w, 2) for w in walls],
        "wall_seconds_median": round(statistics.median(walls), 2),
        "train_seconds": [r["train_seconds"] for r in reports],
        "false_alarm_rate": last["false_alarm_rate"],
        "power": last["power"],
        "rows": [
            {k: r[k] for k in ("source", "n", "ks_statistic", "p_value", "anomaly", "flag_rate")}
            for r in last["results"]
        ],
    }
    path = write_result("anomaly_walltime", result)
    print(f"median wall time {result['wall_seconds_median']} s -> {path}")


if __name__ == "__main__":
    main()
