"""How training memory and time grow with the customer base: where a single pandas process stops being enough.

    python bench/scale.py [--sizes 5000,20000,50000] [--models linear]

For each size, simulates a fresh embedded store and runs `custscore train --task churn`
in a child process, reporting the child's peak RSS (getrusage) and wall time. The
ratios against the smallest size, printed at the end, are what the README's
"Running at scale" section extrapolates from.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "custscore"]


def child(home: Path, *args: str) -> tuple[float, float]:
    """(seconds, peak RSS of the child in MB) of one custscore command."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home)}
    env.pop("CUSTSCORE_MONGO_URI", None)
    code = ("import resource, sys, runpy; sys.argv = ['custscore'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('custscore', run_name='__main__')\n"
            "finally:\n    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"custscore {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    rss_kb = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS"))
    return seconds, rss_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--models", default="linear")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"baseline: the Python interpreter alone peaks at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"{'customers':>9} {'events':>10} {'simulate s':>10} {'train s':>8} {'train peak MB':>13}")
    rows = []
    for n in sizes:
        home = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-"))
        sim_s, _ = child(home, "simulate", "--customers", str(n), "--seed", "7")
        train_s, rss = child(home, "train", "--task", "churn", "--models", args.models, "--cv", "2")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from custscore.config import Settings
        from custscore.store import open_store

        store = open_store(Settings.build(home=home, environ={}))
        events = store["events"].count()
        store.close()
        rows.append((n, events, sim_s, train_s, rss))
        print(f"{n:>9,} {events:>10,} {sim_s:>10.1f} {train_s:>8.1f} {rss:>13,.0f}", flush=True)
    base = rows[0]
    for n, events, _, train_s, rss in rows[1:]:
        print(f"{n:,} vs {base[0]:,} customers ({n / base[0]:.0f}x): train time {train_s / base[3]:.1f}x, "
              f"peak memory {rss / base[4]:.1f}x ({(rss - base[4]) * 1024 / max(1, events - base[1]):.2f} KB per extra event)")


if __name__ == "__main__":
    main()
