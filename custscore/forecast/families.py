"""Forecasting families behind one call: ``family.forecast(context) -> Forecast``.

A :class:`Context` holds only what is known at the forecast origin: the
history up to the origin (outliers already clipped), planned promotions over
the horizon and the calendar. Nothing after the origin reaches a family except
the oracle's truth, so a backtest window cannot leak its future.

Intervals: seasonal naive uses the spread of its in-sample seasonal
differences, growing with the number of seasons ahead; ETS and AutoARIMA
(statsforecast) and SARIMAX (statsmodels) give their own; TSB and the global
boosted model are calibrated on a holdout of the last horizon before the
origin: standardised errors ``z = (y - yhat) / sqrt(yhat + phi yhat^2)``
(``phi`` fitted by moments) pooled over series, interval
``yhat + q_z sqrt(yhat + phi yhat^2)``. Every bound is clipped at 0 units.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
Z80, Z95 = 1.2815515655446004, 1.959963984540054
LEVEL_Q = {"lo95": 0.025, "lo80": 0.10, "hi80": 0.90, "hi95": 0.975}
YEAR = {"D": 364, "W": 52, "M": 12}
WINDOWS = {"D": (7, 28, 91), "W": (4, 13, 26), "M": (3, 6, 12)}


@dataclass
class Context:
    """Everything a family may see at one forecast origin."""

    y: np.ndarray  # (n, T) history, clipped
    promo: np.ndarray  # (n, T) history promotions
    periods: pd.DatetimeIndex  # (T,)
    start: np.ndarray  # (n,) first period of each series
    freq: str
    season: int
    future_periods: pd.DatetimeIndex  # (h,)
    future_promo: np.ndarray  # (n, h) planned promotions
    expected: np.ndarray | None = None  # (n, h) simulated truth, oracle only

    @property
    def h(self) -> int:
        return len(self.future_periods)

    def cut(self, origin: int, h: int) -> Context:
        """The context at an earlier origin (history up to ``origin``), for holdout calibration."""
        return Context(self.y[:, :origin], self.promo[:, :origin], self.periods[:origin], np.minimum(self.start, origin - 1),
                       self.freq, self.season, self.periods[origin:origin + h], self.promo[:, origin:origin + h])


@dataclass
class Forecast:
    """Point forecasts and 80%/95% bounds, each (n, h)."""

    mean: np.ndarray
    lo80: np.ndarray
    hi80: np.ndarray
    lo95: np.ndarray
    hi95: np.ndarray
    used_fallback: int = 0

    @classmethod
    def from_sigma(cls, mean: np.ndarray, sigma: np.ndarray) -> Forecast:
        """Normal bounds ``mean +- z sigma`` clipped at 0."""
        mean = np.maximum(mean, 0.0)
        return cls(mean, np.maximum(mean - Z80 * sigma, 0), mean + Z80 * sigma, np.maximum(mean - Z95 * sigma, 0),
                   mean + Z95 * sigma)


def _calibrated(mean: np.ndarray, holdout_mean: np.ndarray, holdout_y: np.ndarray) -> Forecast:
    """Bounds from pooled standardised holdout errors (see the module docstring)."""
    m, y = np.maximum(holdout_mean, 0.0), holdout_y
    phi = max(0.0, float(np.sum((y - m) ** 2 - m) / max(np.sum(m ** 2), 1e-9)))
    z = ((y - m) / np.sqrt(m + phi * m ** 2 + 0.05)).ravel()
    q = {k: float(np.quantile(z, v)) for k, v in LEVEL_Q.items()} if z.size >= 20 else \
        {"lo95": -Z95, "lo80": -Z80, "hi80": Z80, "hi95": Z95}
    mean = np.maximum(mean, 0.0)
    sd = np.sqrt(mean + phi * mean ** 2 + 0.05)
    return Forecast(mean, *(np.maximum(mean + q[k] * sd, 0.0) for k in ("lo80", "hi80", "lo95", "hi95")))


class SeasonalNaive:
    """The baseline: the last season repeated."""

    name = "seasonal_naive"
    calibrated = True

    def forecast(self, ctx: Context) -> Forecast:
        n, T = ctx.y.shape
        m = ctx.season if 2 * ctx.season < T else 1
        steps = np.arange(ctx.h)
        mean = ctx.y[:, T - m + (steps % m)]
        diffs = ctx.y[:, m:] - ctx.y[:, :-m]
        sigma = np.array([np.std(d[max(int(s) - m, 0):]) if d.size else 0.0 for d, s in zip(diffs, ctx.start, strict=True)])
        return Forecast.from_sigma(mean, sigma[:, None] * np.sqrt(steps // m + 1)[None, :])


class StatsForecastLocal:
    """One statsforecast model fitted per series (ETS, AutoARIMA or TSB)."""

    calibrated = True

    def __init__(self, kind: str = "ets", alpha_d: float = 0.1, alpha_p: float = 0.1):
        self.kind = kind
        self.alpha_d = alpha_d
        self.alpha_p = alpha_p

    @property
    def name(self) -> str:
        return self.kind

    def _model(self, season: int):
        from statsforecast.models import TSB, AutoARIMA, AutoETS

        if self.kind == "ets":
            return AutoETS(season_length=season)
        if self.kind == "arima":
            return AutoARIMA(season_length=season)
        return TSB(alpha_d=self.alpha_d, alpha_p=self.alpha_p)

    def _means(self, ctx: Context, level: list[int] | None) -> tuple[dict[str, np.ndarray], int]:
        out = {k: np.zeros((ctx.y.shape[0], ctx.h)) for k in ("mean", "lo-80", "hi-80", "lo-95", "hi-95")}
        fallbacks = 0
        for i in range(ctx.y.shape[0]):
            y = ctx.y[i, int(ctx.start[i]):].astype(float)
            season = ctx.season if len(y) > 2 * ctx.season else 1
            try:
                if len(y) < 4 or not np.any(y):
                    raise ValueError("too short or all zero")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = self._model(season).forecast(y=y, h=ctx.h, level=level)
                for k in out:
                    if k in res:
                        out[k][i] = res[k]
            except Exception as exc:  # statsforecast raises plain errors on degenerate series
                log.debug("%s fallback on series %d: %s", self.kind, i, exc)
                fallbacks += 1
                tail = y[-max(ctx.season * 4, 4):] if len(y) else np.zeros(1)
                sd = float(np.std(tail))
                out["mean"][i] = tail.mean()
                for k, z in (("lo-80", -Z80), ("hi-80", Z80), ("lo-95", -Z95), ("hi-95", Z95)):
                    out[k][i] = tail.mean() + z * sd
        return out, fallbacks

    def forecast(self, ctx: Context) -> Forecast:
        if self.kind == "tsb":
            res, fb = self._means(ctx, None)
            hold = ctx.cut(ctx.y.shape[1] - ctx.h, ctx.h)
            res_h, _ = self._means(hold, None)
            fc = _calibrated(res["mean"], res_h["mean"], ctx.y[:, -ctx.h:])
        else:
            res, fb = self._means(ctx, [80, 95])
            fc = Forecast(np.maximum(res["mean"], 0), *(np.maximum(res[k], 0) for k in ("lo-80", "hi-80", "lo-95", "hi-95")))
        fc.used_fallback = fb
        return fc


class Sarimax:
    """The sources' model: SARIMAX(1,1,1)(1,1,1,m) per series with a moving-average fallback when a fit fails."""

    name = "sarimax"
    calibrated = True

    def __init__(self, order: tuple[int, int, int] = (1, 1, 1), seasonal: tuple[int, int, int] = (1, 1, 1),
                 maxiter: int = 50):
        self.order = order
        self.seasonal = seasonal
        self.maxiter = maxiter

    def forecast(self, ctx: Context) -> Forecast:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        n = ctx.y.shape[0]
        keys = ("mean", "lo80", "hi80", "lo95", "hi95")
        out = {k: np.zeros((n, ctx.h)) for k in keys}
        fallbacks = 0
        for i in range(n):
            y = ctx.y[i, int(ctx.start[i]):].astype(float)
            try:
                if len(y) < 3 * ctx.season + 4:
                    raise ValueError("history shorter than three seasons")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = SARIMAX(y, order=self.order, seasonal_order=(*self.seasonal, ctx.season),
                                  enforce_stationarity=False, enforce_invertibility=False).fit(disp=False, maxiter=self.maxiter)
                    pred = fit.get_forecast(ctx.h)
                    mean = np.asarray(pred.predicted_mean)
                    if not np.all(np.isfinite(mean)):
                        raise ValueError("non-finite forecast")
                    ci80, ci95 = np.asarray(pred.conf_int(alpha=0.2)), np.asarray(pred.conf_int(alpha=0.05))
                out["mean"][i], out["lo80"][i], out["hi80"][i] = mean, ci80[:, 0], ci80[:, 1]
                out["lo95"][i], out["hi95"][i] = ci95[:, 0], ci95[:, 1]
            except Exception as exc:  # the sources' fallback: a moving average when a fit fails
                log.debug("sarimax fallback on series %d: %s", i, exc)
                fallbacks += 1
                tail = y[-28:] if len(y) else np.zeros(1)
                sd = float(np.std(tail))
                out["mean"][i] = tail.mean()
                for k, z in (("lo80", -Z80), ("hi80", Z80), ("lo95", -Z95), ("hi95", Z95)):
                    out[k][i] = tail.mean() + z * sd
        fc = Forecast(*(np.maximum(out[k], 0.0) for k in keys))
        fc.used_fallback = fallbacks
        return fc


def _calendar(periods: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Calendar features per period: day of week, month, week of year, days to Christmas, Black Friday."""
    end = periods + pd.to_timedelta({"D": 0, "W": 6, "M": 27}[freq], unit="D")
    xmas = pd.to_datetime(pd.DataFrame({"year": periods.year, "month": 12, "day": 25}))
    to_xmas = (xmas - pd.Series(periods)).dt.days.to_numpy().astype(float)
    to_xmas[(to_xmas < 0) | (to_xmas > 45)] = 60.0
    nov = (periods.month == 11) | (end.month == 11)
    friday_in_window = np.zeros(len(periods), bool)
    for j, (a, b) in enumerate(zip(periods, end, strict=True)):
        if nov[j]:
            first = pd.Timestamp(a.year, 11, 1)
            bf = first + pd.Timedelta(days=(4 - first.day_of_week) % 7 + 21)
            friday_in_window[j] = (a <= bf + pd.Timedelta(days=2)) and (b >= bf)
    return np.column_stack([periods.day_of_week, periods.month, periods.isocalendar().week.to_numpy(),
                            periods.day, to_xmas, friday_in_window, (periods.month == 1) & (periods.day == 1)]).astype(float)


def _origin_rows(y: np.ndarray, promo: np.ndarray, cal: np.ndarray, o: int, h: int, freq: str, season: int):
    """Features (n*h, F) of forecasts made at origin ``o`` for ``o .. o+h-1``, using ``y[:, :o]`` only."""
    n = y.shape[0]
    w1, w2, w3 = WINDOWS[freq]
    Y = YEAR[freq]
    level = y[:, max(o - w2, 0):o].mean(axis=1) + 0.05
    r1 = y[:, max(o - w1, 0):o].mean(axis=1) / level
    r3 = y[:, max(o - w3, 0):o].mean(axis=1) / level
    share = promo[:, max(o - w2, 0):o].mean(axis=1)
    zeros = (y[:, max(o - w2, 0):o] == 0).mean(axis=1)
    k = np.arange(h)
    t = o + k
    # same position in the season over the last 8 seasons before the origin
    prof = np.full((n, h), np.nan)
    lags = [t - season * j for j in range(1, 40)]
    for kk in range(h):
        idx = [int(lag[kk]) for lag in lags if 0 <= lag[kk] < o][:8]
        if idx:
            prof[:, kk] = y[:, idx].mean(axis=1) / level
    ly = np.full((n, h), np.nan)
    base_ly = y[:, max(o - Y - w2, 0):max(o - Y, 0)].mean(axis=1) if o - Y - w2 >= 0 else None
    if base_ly is not None:
        half = 3 if freq == "D" else 0
        for kk in range(h):
            lo, hi = t[kk] - Y - half, t[kk] - Y + half + 1
            if lo >= 0 and hi <= o:
                ly[:, kk] = y[:, lo:hi].mean(axis=1) / (base_ly + 0.05)
    fp = promo[:, o:o + h] if promo.shape[1] >= o + h else None
    return level, np.column_stack([
        np.repeat(np.log(level), h), np.repeat(r1, h), np.repeat(r3, h), np.repeat(share, h), np.repeat(zeros, h),
        np.tile(k + 1, n), prof.ravel(), ly.ravel(), (fp.ravel() if fp is not None else np.zeros(n * h)),
        np.tile(cal[o:o + h], (n, 1))])


class GlobalBoosted:
    """One gradient-boosted model for all series: direct multi-step over level, lags, calendar and promo.

    Target: units over the series' recent level (mean of the last 28 days,
    13 weeks or 6 months before the origin), unweighted (sample weights make
    scikit-learn's histogram trees about 25x slower); rows come
    from up to ``max_origins`` past origins, every ``origin_step`` periods.
    """

    name = "global_gbm"
    calibrated = True

    def __init__(self, max_iter: int = 120, learning_rate: float = 0.08, max_rows: int = 200_000,
                 max_origins: int = 40, seed: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_rows = max_rows
        self.max_origins = max_origins
        self.seed = seed

    def _fit_predict(self, y: np.ndarray, promo_all: np.ndarray, periods_all: pd.DatetimeIndex, T: int, h: int,
                     freq: str, season: int) -> np.ndarray:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        n = y.shape[0]
        cal = _calendar(periods_all, freq)
        step = {"D": 5, "W": 2, "M": 1}[freq]
        first = WINDOWS[freq][1]
        origins = list(range(T - 1, first - 1, -step))  # latest first; targets beyond T are dropped
        budget = max(1, min(self.max_origins, self.max_rows // max(n * h, 1)))
        X, target = [], []
        for o in origins[:budget]:
            level, feats = _origin_rows(y, promo_all, cal, o, h, freq, season)
            kk = np.tile(np.arange(h), n)
            ii = np.repeat(np.arange(n), h)
            ok = (o + kk < T) & (o + kk >= 0)
            tt = np.minimum(o + kk, T - 1)
            X.append(feats[ok])
            target.append((y[ii, tt] / level[ii])[ok])
        X, target = np.vstack(X), np.concatenate(target)
        dead = np.isnan(X).all(axis=0)  # e.g. last year's lag on a history shorter than a year
        X[:, dead] = 0.0
        model = HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                              max_leaf_nodes=31, min_samples_leaf=40, l2_regularization=1.0,
                                              random_state=self.seed)
        log.debug("global_gbm: %d rows x %d features", *X.shape)
        with threadpool_limits(1):  # OpenMP threads on a busy machine cost far more than they save
            model.fit(X, target)
        level, feats = _origin_rows(y, promo_all, cal, T, h, freq, season)
        feats[:, dead] = 0.0
        with threadpool_limits(1):
            pred = model.predict(feats)
        return np.maximum(pred.reshape(n, h) * level[:, None], 0.0)

    def forecast(self, ctx: Context) -> Forecast:
        T, h = ctx.y.shape[1], ctx.h
        promo_all = np.concatenate([ctx.promo, ctx.future_promo], axis=1)
        periods_all = ctx.periods.append(ctx.future_periods)
        mean = self._fit_predict(ctx.y, promo_all, periods_all, T, h, ctx.freq, ctx.season)
        # holdout for the intervals: the same fit one horizon earlier, scored on the last horizon of history
        hold = self._fit_predict(ctx.y[:, :T - h], ctx.promo, ctx.periods, T - h, h, ctx.freq, ctx.season)
        return _calibrated(mean, hold, ctx.y[:, T - h:T])


class Oracle:
    """The simulated expected demand itself, with negative-binomial bounds (simulated data only)."""

    name = "oracle"
    calibrated = True

    def __init__(self, dispersion: float = 8.0):
        self.dispersion = dispersion

    def forecast(self, ctx: Context) -> Forecast:
        from scipy import stats

        if ctx.expected is None:
            raise ValueError("the oracle needs the simulated truth")
        lam = np.maximum(ctx.expected, 1e-9)
        k = self.dispersion * {"D": 1, "W": 7, "M": 30}[ctx.freq]  # sums of days: roughly NB with a larger k
        p = k / (k + lam)
        q = {name: stats.nbinom.ppf(v, k, p) for name, v in LEVEL_Q.items()}
        return Forecast(ctx.expected.copy(), q["lo80"], q["hi80"], q["lo95"], q["hi95"])


FAMILIES = {
    "seasonal_naive": SeasonalNaive,
    "ets": lambda: StatsForecastLocal("ets"),
    "arima": lambda: StatsForecastLocal("arima"),
    "tsb": lambda: StatsForecastLocal("tsb"),
    "sarimax": Sarimax,
    "global_gbm": GlobalBoosted,
}
STATSFORECAST = ("ets", "arima", "tsb")


def statsforecast_available() -> bool:
    """Whether the optional statsforecast package (``pip install custscore[forecast]``) is installed."""
    import importlib.util

    return importlib.util.find_spec("statsforecast") is not None


def default_families() -> tuple[str, ...]:
    """Seasonal naive, ETS and TSB (when statsforecast is installed) and the global boosted model."""
    local = ("ets", "tsb") if statsforecast_available() else ()
    return ("seasonal_naive", *local, "global_gbm")


DEFAULT_FAMILIES = ("seasonal_naive", "ets", "tsb", "global_gbm")


def make_family(name: str):
    """A fresh forecaster by family name."""
    if name in STATSFORECAST and not statsforecast_available():
        from custscore.errors import InputError

        raise InputError(f"family {name!r} needs statsforecast; install it with: pip install 'custscore[forecast]'")
    return FAMILIES[name]()
