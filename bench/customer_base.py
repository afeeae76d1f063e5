"""Benchmark: BG/NBD and Gamma-Gamma fit time on simulated customers, against baselines run in the same process.

Usage::

    python bench/customer_base.py                 # 20,000 customers
    python bench/customer_base.py N               # N customers
    python bench/customer_base.py N --pymc PYTHON # also time PyMC-Marketing's BetaGeoModel in that interpreter

Prints our BG/NBD fit time (analytic gradient, L-BFGS-B), the same likelihood fitted with finite-difference
gradients in the same process and the ratio, the Gamma-Gamma fit time, and the predictions' time. With
``--pymc`` (an interpreter of a throwaway venv with ``pymc-marketing`` installed; custscore never depends on
it) it writes the same histories to a temporary CSV, fits PyMC-Marketing's BetaGeoModel by MAP and by a short
NUTS run in a subprocess and prints their times and the ratios to ours.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from custscore.models.bgnbd import BetaGeoModel, bgnbd_log_likelihood, simulate_bgnbd
from custscore.models.gamma_gamma import GammaGammaModel

SEED = 7
PYMC_TIMEOUT_S = 900
TRUE = dict(r=0.243, alpha=30.0, a=0.79, b=2.43)

PYMC_SCRIPT = r"""
import json, sys, time, warnings
import pandas as pd
warnings.filterwarnings("ignore")
t = time.perf_counter()
from pymc_marketing import clv
print(json.dumps({"import_s": time.perf_counter() - t}), flush=True)
data = pd.read_csv(sys.argv[1])
model = clv.BetaGeoModel()
t = time.perf_counter()
model.fit(data=data, method="map", progressbar=False)
post = model.fit_summary()
print(json.dumps({"map_s": time.perf_counter() - t,
                  "map_params": {k: round(float(post[k]), 3) for k in ("r", "alpha", "a", "b") if k in post.index}}),
      flush=True)
model = clv.BetaGeoModel()
t = time.perf_counter()
model.fit(data=data, method="mcmc", draws=200, tune=200, chains=2, cores=1, random_seed=7, progressbar=False)
summary = model.fit_summary()
print(json.dumps({"nuts_s": time.perf_counter() - t,
                  "nuts_params": {k: round(float(summary.loc[k, "mean"]), 3) for k in ("r", "alpha", "a", "b")
                                  if k in summary.index}}), flush=True)
"""


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _finite_difference_fit(hist) -> None:
    x, tx, T = (hist[c].to_numpy() for c in ("frequency", "recency", "T"))
    minimize(lambda th: -bgnbd_log_likelihood(np.exp(th), x, tx, T).mean(), np.zeros(4), method="L-BFGS-B",
             bounds=[(-12, 12)] * 4)


def main(argv: list[str]) -> None:
    args = [a for a in argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args and args[0].isdigit() else 20_000
    pymc = argv[argv.index("--pymc") + 1] if "--pymc" in argv else None
    rng = np.random.default_rng(SEED)
    hist = simulate_bgnbd(n, **TRUE, T=rng.uniform(60, 400, n), seed=SEED)
    hist["monetary_value"] = np.where(hist["frequency"] > 0, rng.gamma(4.0, 10.0, n), 0.0)
    bg = BetaGeoModel().fit(hist)
    ours = _timed(lambda: BetaGeoModel().fit(hist))
    fd = _timed(lambda: _finite_difference_fit(hist), repeat=1)
    gg = _timed(lambda: GammaGammaModel().fit(hist))
    pred = _timed(lambda: (bg.p_alive(hist), bg.expected_purchases(hist, 90), bg.p_no_purchase(hist, 90)))
    print(f"BG/NBD on {n:,} simulated customers (true r={TRUE['r']}, alpha={TRUE['alpha']}, a={TRUE['a']}, "
          f"b={TRUE['b']}): fitted r={bg.r_:.3f} alpha={bg.alpha_:.2f} a={bg.a_:.3f} b={bg.b_:.3f}")
    print(f"  fit {ours:.3f} s (best of 3); finite-difference gradients {fd:.3f} s = {fd / ours:.1f}x ours")
    print(f"  Gamma-Gamma fit {gg:.3f} s; p_alive + expected_purchases + p_no_purchase for all: {pred:.3f} s")
    if pymc:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hist.csv"
            frame = hist[["frequency", "recency", "T"]].copy()
            frame.insert(0, "customer_id", np.arange(n))
            frame.to_csv(path, index=False)
            try:
                done = subprocess.run([pymc, "-c", PYMC_SCRIPT, str(path)], capture_output=True, text=True,
                                      check=False, timeout=PYMC_TIMEOUT_S)
                lines, err = done.stdout, done.stderr if done.returncode else ""
            except subprocess.TimeoutExpired as exc:
                lines = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                err = f"stopped after {PYMC_TIMEOUT_S} s"
        res: dict = {}
        for line in lines.splitlines():
            if line.startswith("{"):
                res.update(json.loads(line))
        print(f"  PyMC-Marketing (another interpreter): import {res.get('import_s', float('nan')):.1f} s")
        if "map_s" in res:
            print(f"  PyMC-Marketing BetaGeoModel MAP fit {res['map_s']:.1f} s = {res['map_s'] / ours:.0f}x ours; "
                  f"parameters {res['map_params']}")
        if "nuts_s" in res:
            print(f"  PyMC-Marketing BetaGeoModel NUTS (2 chains x 200 tune + 200 draws, 1 core) {res['nuts_s']:.1f} s"
                  f" = {res['nuts_s'] / ours:.0f}x ours; posterior means {res['nuts_params']}")
        if err:
            print(f"  PyMC-Marketing: {err.strip().splitlines()[-1] if err.strip() else 'failed'}")


if __name__ == "__main__":
    main(sys.argv)
