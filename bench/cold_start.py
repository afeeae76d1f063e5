"""Benchmark: the cold start of `custscore predict` and `custscore explain` with a Keras (MLP) production model.

Each command runs in a fresh process, as a user runs it, twice over:

- as shipped: TensorFlow is imported only when a Keras model is trained, or loaded for its network
  (predict and explain run the stored Dense stack with NumPy);
- the baseline, in the same run: the same command in a process that imports TensorFlow first, which is
  what every load of a Keras model cost before.

Usage::

    python bench/cold_start.py            # simulate 1,500 customers, train churn with the MLP family only
    python bench/cold_start.py HOME       # use an existing CUSTSCORE_HOME and its production models

Prints the median wall seconds of each (REPEATS runs), whether TensorFlow ended up imported, and the
ratio baseline / as shipped.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 5
N_CUSTOMERS = 1500
SEED = 7
MARK = "TENSORFLOW-IMPORTED="
# The CLI as `custscore` runs it, telling at exit whether TensorFlow was imported.
RUN = ("import atexit, sys\n{pre}"
       f"atexit.register(lambda: sys.stderr.write('\\n{MARK}%s\\n' % ('tensorflow' in sys.modules)))\n"
       "from custscore.cli import app\napp(prog_name='custscore')\n")


def custscore(home: Path, *args: str, pre: str = "") -> tuple[float, bool, str]:
    """Run one CLI command in a fresh process: wall seconds, whether TensorFlow was imported, stdout."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home), "CUSTSCORE_MONGO_URI": "", "COLUMNS": "120"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN.format(pre=pre), *args], env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"custscore {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, f"{MARK}True" in done.stderr, done.stdout


def prepare(home: Path) -> None:
    """A small store whose production churn model is an MLP (a Keras model)."""
    for args in (("simulate", "-n", str(N_CUSTOMERS), "--seed", str(SEED), "--reset"),
                 ("train", "--task", "churn", "--models", "mlp", "--cv", "2", "--seed", "0")):
        started = time.perf_counter()
        custscore(home, *args)
        print(f"custscore {' '.join(args)}: {time.perf_counter() - started:.0f}s")


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(argv[1]) if len(argv) > 1 else Path(tmp)
        if len(argv) <= 1:
            prepare(home)
        _, _, models = custscore(home, "models")
        print("registry:", *[ln for ln in models.splitlines() if ln.startswith("│")], sep="\n")
        _, _, query = custscore(home, "query", "{}", "--limit", "1", "--json")
        customer = json.loads(query.splitlines()[0])["_id"] if query.strip() else "C0000001"
        commands = {
            "predict": ("predict", "--age", "34", "--income", "52000", "--region", "north", "--channel", "web"),
            "explain": ("explain", customer),
            "--version (floor)": ("--version",),
        }
        print(f"{'command':<20} {'as shipped':>11} {'TF first':>9} {'ratio':>6}  TensorFlow imported (shipped/TF first)")
        for label, args in commands.items():
            shipped, baseline = [], []
            imported = {"shipped": False, "baseline": False}
            for _ in range(REPEATS):  # interleaved, so load from other processes hits both alike
                seconds, tf, _ = custscore(home, *args)
                shipped.append(seconds)
                imported["shipped"] |= tf
                seconds, tf, _ = custscore(home, *args, pre="import tensorflow\n")
                baseline.append(seconds)
                imported["baseline"] |= tf
            a, b = statistics.median(shipped), statistics.median(baseline)
            print(f"{label:<20} {a:>10.2f}s {b:>8.2f}s {b / a:>5.1f}x  "
                  f"{'yes' if imported['shipped'] else 'no'}/{'yes' if imported['baseline'] else 'no'}")


if __name__ == "__main__":
    main(sys.argv)
