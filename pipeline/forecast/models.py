"""Forecast models on the log closes of daily bars, and the volatility model behind the price bands.

Guarantees:
- Every model is a kept library's estimator, not hand-written fitting: ETS is statsmodels' Holt
  (``ExponentialSmoothing``, additive damped trend), Theta is ``ThetaModel``, ARIMA is statsmodels'
  ``ARIMA`` with its order chosen by AIC over ``ARIMA_ORDERS`` (ARMA(p, q) with a constant on log
  returns, i.e. ARIMA(p, 1, q) with drift on log closes). The naive forecast ("next close = last
  close") and the random walk with drift are closed forms and always succeed.
- ``point_path(model, y, h)`` returns the log-close path for steps 1..h from the log closes ``y``
  (oldest first). It only ever sees ``y``: nothing after the origin can reach a model.
- The bands come from one volatility model for every point model: GARCH(1,1) with Student-t errors
  from ``arch`` on percent log returns; when it fails or is degenerate, the EWMA (RiskMetrics,
  lambda 0.94) variance with normal quantiles (its baseline). ``bands`` gives, per step, the
  (lo, hi) log offsets around the point path for each level in ``LEVELS``.
- Deterministic: the same ``y`` gives the same numbers (no random starts, no simulation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MODELS = ("naive", "drift", "ets", "theta", "arima")
LABELS = {
    "naive": "Naive",
    "drift": "Random walk with drift",
    "ets": "ETS",
    "theta": "Theta",
    "arima": "ARIMA",
}
HORIZONS = (1, 5, 20)
LEVELS = (50, 80, 95)
ARIMA_ORDERS = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2))
EWMA_LAMBDA = 0.94
SETTINGS = {
    "models": MODELS,
    "horizons": HORIZONS,
    "levels": LEVELS,
    "arima_orders": ARIMA_ORDERS,
    "ets": "holt additive damped",
    "theta": "period 1, no deseasonalising",
    "vol": "GARCH(1,1) Student-t, EWMA 0.94 fallback",
}


def load() -> None:
    """Import the model libraries (seconds, once). Call it before ``threadpool_limits``: scipy brings
    its own BLAS, and one loaded inside the limit is not limited; its threads then changed ARIMA's
    chosen order between two runs on the same closes (seen here)."""
    import arch  # noqa: F401
    import scipy.stats  # noqa: F401
    import statsmodels.tsa.arima.model
    import statsmodels.tsa.forecasting.theta
    import statsmodels.tsa.holtwinters  # noqa: F401


def point_path(model: str, y: np.ndarray, h: int) -> np.ndarray:
    """The forecast log closes for steps 1..``h`` (shape ``(h,)``) of ``model`` fitted on ``y`` (log
    closes, oldest first, at least 30 values). A library fit that fails falls back to the naive path
    (so a backtest row always exists; the fallback is honest: it scores as naive). Raises ValueError
    for an unknown model."""
    y = np.asarray(y, dtype=float)
    last = y[-1]
    steps = np.arange(1, h + 1, dtype=float)
    if model == "naive":
        return np.full(h, last)
    if model == "drift":
        drift = (y[-1] - y[0]) / (len(y) - 1)
        return last + drift * steps
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' convergence chatter; a bad fit is caught below
            out = _library_path(model, y, h)
    except Exception:  # a failed library fit: the naive path
        return np.full(h, last)
    if out.shape != (h,) or not np.all(np.isfinite(out)):
        return np.full(h, last)
    return out


def _library_path(model: str, y: np.ndarray, h: int) -> np.ndarray:
    if model == "ets":
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        fit = ExponentialSmoothing(y, trend="add", damped_trend=True).fit(use_brute=False)
        return np.asarray(fit.forecast(h), dtype=float)
    if model == "theta":
        from statsmodels.tsa.forecasting.theta import ThetaModel

        fit = ThetaModel(y, period=1, deseasonalize=False).fit(use_mle=False)
        return np.asarray(fit.forecast(h), dtype=float)
    return y[-1] + np.cumsum(_arima_returns(np.diff(y), h))


def _arima_returns(r: np.ndarray, h: int) -> np.ndarray:
    """ARMA(p, q) + constant on log returns, order by AIC over ``ARIMA_ORDERS`` (Hannan-Rissanen fits:
    regression-based, ~5-20 ms each, where the state-space MLE took up to 1 s here). No parameter
    covariance is computed (``cov_type="none"``): neither the AIC nor the forecast uses it, and it
    cost about a seventh of each fit."""
    from statsmodels.tsa.arima.model import ARIMA

    best = None
    for p, q in ARIMA_ORDERS:
        try:
            fit = ARIMA(r, order=(p, 0, q), trend="c").fit(method="hannan_rissanen", cov_type="none")
        except Exception:  # this order cannot be estimated on this window: the next one
            continue
        if np.isfinite(fit.aic) and (best is None or fit.aic < best.aic):
            best = fit
    if best is None:
        raise ValueError("no ARIMA order could be fitted")
    return np.asarray(best.forecast(h), dtype=float)


@dataclass(frozen=True)
class Vol:
    """Per-step variance of the log return (``var``, shape ``(h,)``, log units squared), the Student-t
    degrees of freedom (``nu``; inf for normal) and which model gave it (``garch`` or ``ewma``)."""

    var: np.ndarray
    nu: float
    model: str


def ewma_variance(r: np.ndarray, lam: float = EWMA_LAMBDA) -> float:
    """RiskMetrics EWMA variance of the returns ``r`` (log units squared) after the last one."""
    v = float(np.var(r[: min(len(r), 30)])) or 1e-8
    for x in r:
        v = lam * v + (1 - lam) * x * x
    return v


def volatility(y: np.ndarray, h: int) -> Vol:
    """GARCH(1,1) Student-t forecast of the next ``h`` return variances from log closes ``y``; EWMA
    (constant variance, normal) when the fit fails or is not stationary."""
    r = np.diff(np.asarray(y, dtype=float))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol = _garch(r, h)
        if vol is not None:
            return vol
    except Exception:  # fall through to the EWMA baseline
        pass
    return Vol(np.full(h, ewma_variance(r)), math.inf, "ewma")


def _garch(r: np.ndarray, h: int) -> Vol | None:
    from arch import arch_model

    res = arch_model(r * 100, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
        disp="off", show_warning=False
    )
    params = res.params
    persistence = float(params["alpha[1]"] + params["beta[1]"])
    nu = float(params["nu"])
    var = np.asarray(res.forecast(horizon=h, reindex=False).variance, dtype=float)[-1] / 1e4
    if persistence < 0.999 and nu > 2.05 and np.all(np.isfinite(var)) and np.all(var > 0):
        return Vol(var, nu, "garch")
    return None


def _quantile(level: float, nu: float) -> float:
    """Upper quantile of a unit-variance Student-t (normal for inf) for a central ``level`` %."""
    from scipy import stats

    p = 0.5 + level / 200.0
    if not math.isfinite(nu) or nu > 200:
        return float(stats.norm.ppf(p))
    return float(stats.t.ppf(p, nu) * math.sqrt((nu - 2) / nu))


def bands(vol: Vol, levels: Sequence[int] = LEVELS) -> dict[int, np.ndarray]:
    """Half-widths (log units) per step 1..h for each central level %, shape ``(h,)`` each.

    The h-step variance is the sum of the per-step variances; a sum of h Student-t steps has excess
    kurtosis 6/((nu-4) h), so its quantile uses nu_h = 4 + (nu - 4) h (normal in the limit)."""
    cum = np.cumsum(vol.var)
    out: dict[int, np.ndarray] = {}
    for level in levels:
        q = np.array(
            [
                _quantile(level, vol.nu if not math.isfinite(vol.nu) or vol.nu <= 4 else 4 + (vol.nu - 4) * k)
                for k in range(1, len(cum) + 1)
            ]
        )
        out[level] = q * np.sqrt(cum)
    return out
