"""Walk-forward backtests, the champion rule and the forecast at an as-of date.

Guarantees:
- ``backtest(closes, dates)`` refits every model at each origin on the closes up to and including
  that origin only (expanding window), and scores its 1, 5 and 20-session forecasts against the
  closes that followed. Origins are every ``step`` sessions back from the last-but-one close:
  ``origins`` of them for the longest horizon (24 by default), a few more for the shorter ones.
- Metrics per (model, horizon), errors on prices: MASE (each absolute error scaled by the mean
  absolute one-step naive change of the closes up to its origin), skill = 1 - MAE / MAE(naive) over
  the same origins, sMAPE (%), directional hit rate with its 95% Wilson interval (origins where the
  forecast and the outcome both moved; None for naive, which never moves), empirical coverage of the
  80% and 95% intervals and their mean width (% of the origin's close), number of origins, date span.
- ``champion(rows, horizon)`` applies the rule before anything is drawn: a model's point forecast is
  shown only if its skill is at least +2% and its 95% interval covered 90-99% of outcomes over at
  least 20 origins; otherwise naive, with a sentence saying which model came closest.
- Everything is a pure function of the closes given: the same as-of gives the same numbers whether
  or not later bars exist anywhere (the caller cuts the series at the as-of).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import date

import numpy as np
from threadpoolctl import threadpool_limits

from .models import HORIZONS, LABELS, LEVELS, MODELS, SETTINGS, bands, load, point_path, volatility

ORIGINS = 24
STEP = 5
MIN_TRAIN = 60
MIN_SESSIONS = 250
SKILL_MIN = 0.02
COVER_LO, COVER_HI = 0.90, 0.99
MIN_ORIGINS = 20


def settings_hash(origins: int = ORIGINS, step: int = STEP) -> str:
    """A short hash of every model setting that changes a number (models, horizons, levels, orders,
    origins, step): results computed with other settings never mix with these."""
    blob = json.dumps({**SETTINGS, "origins": origins, "step": step}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def origin_indexes(
    n: int, origins: int = ORIGINS, step: int = STEP, horizon: int = max(HORIZONS)
) -> list[int]:
    """Indexes (oldest first) of the origins in a series of ``n`` closes: ``origins`` of them have
    ``horizon`` closes after them. Raises ValueError when the series is too short."""
    extra = math.ceil((horizon - 1) / step)
    out = [n - 2 - step * k for k in range(origins + extra)]
    if out[-1] < MIN_TRAIN - 1:
        need = MIN_TRAIN + 1 + step * (origins + extra - 1)
        raise ValueError(f"{n} closes are too few for {origins} origins {step} sessions apart (need {need})")
    return sorted(out)


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    """95% Wilson score interval of a binomial proportion ``hits``/``n`` (None, None for n = 0)."""
    if n == 0:
        return None, None
    p = hits / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - r), min(1.0, c + r)


def backtest(
    closes: Sequence[float],
    dates: Sequence[date],
    origins: int = ORIGINS,
    step: int = STEP,
    models: Sequence[str] = MODELS,
    horizons: Sequence[int] = HORIZONS,
) -> list[dict]:
    """Walk-forward rows, one per (model, horizon): see the module for the metrics. ``closes`` are
    prices (> 0), ``dates`` their session dates, oldest first. Raises ValueError when too short."""
    load()
    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only fight (4x slower measured here)
        return _backtest(closes, dates, origins, step, models, horizons)


def _backtest(
    closes: Sequence[float],
    dates: Sequence[date],
    origins: int,
    step: int,
    models: Sequence[str],
    horizons: Sequence[int],
) -> list[dict]:
    c = np.asarray(closes, dtype=float)
    if len(c) != len(dates):
        raise ValueError("closes and dates differ in length")
    n, hmax = len(c), max(horizons)
    y = np.log(c)
    idx = origin_indexes(n, origins, step, hmax)
    acc: dict[tuple[str, int], dict[str, list]] = {
        (m, h): {k: [] for k in ("err", "scaled", "smape", "hit", "in80", "in95", "w80", "w95", "t")}
        for m in models
        for h in horizons
    }
    for t in idx:
        train = y[: t + 1]
        scale = float(np.mean(np.abs(np.diff(c[: t + 1])))) or 1e-12
        half = bands(volatility(train, hmax), (80, 95))
        for m in models:
            path = point_path(m, train, hmax)
            for h in horizons:
                if t + h >= n:
                    continue
                a, last = c[t + h], c[t]
                f = math.exp(path[h - 1])
                row = acc[(m, h)]
                row["t"].append(t)
                row["err"].append(abs(f - a))
                row["scaled"].append(abs(f - a) / scale)
                row["smape"].append(200 * abs(f - a) / (abs(f) + abs(a)))
                moved = abs(path[h - 1] - train[-1]) > 1e-12  # naive never moves (exp(log x) may not be x)
                if moved and a != last:
                    row["hit"].append((path[h - 1] > train[-1]) == (a > last))
                for level in (80, 95):
                    lo, hi = (
                        math.exp(path[h - 1] - half[level][h - 1]),
                        math.exp(path[h - 1] + half[level][h - 1]),
                    )
                    row[f"in{level}"].append(lo <= a <= hi)
                    row[f"w{level}"].append(100 * (hi - lo) / last)
    rows = []
    for (m, h), row in acc.items():
        naive_mae = float(np.mean(acc[("naive", h)]["err"])) if ("naive", h) in acc else float("nan")
        mae = float(np.mean(row["err"]))
        hits = int(sum(row["hit"]))
        hit_lo, hit_hi = wilson(hits, len(row["hit"]))
        rows.append(
            {
                "model": m,
                "label": LABELS[m],
                "horizon": h,
                "origins": len(row["t"]),
                "first_origin": dates[row["t"][0]].isoformat(),
                "last_origin": dates[row["t"][-1]].isoformat(),
                "mae": mae,
                "mase": float(np.mean(row["scaled"])),
                "skill": 1 - mae / naive_mae if naive_mae > 0 else 0.0,
                "smape": float(np.mean(row["smape"])),
                "hit_rate": hits / len(row["hit"]) if row["hit"] else None,
                "hit_lo": hit_lo,
                "hit_hi": hit_hi,
                "hit_n": len(row["hit"]),
                "cover80": float(np.mean(row["in80"])),
                "cover95": float(np.mean(row["in95"])),
                "width80": float(np.mean(row["w80"])),
                "width95": float(np.mean(row["w95"])),
            }
        )
    return rows


def qualifies(row: dict) -> bool:
    """The champion rule for one backtest row (see the module)."""
    return (
        row["model"] != "naive"
        and row["origins"] >= MIN_ORIGINS
        and row["skill"] >= SKILL_MIN
        and COVER_LO <= row["cover95"] <= COVER_HI
    )


def champion(rows: Sequence[dict], horizon: int, symbol: str) -> dict:
    """Which forecast is drawn at ``horizon``: ``{"model", "sentence"}``. The best-MASE model that
    ``qualifies``; else ``naive`` with a sentence saying what "beat" means (by 2% with honest 95%
    bands) and naming the closest *other* model with its signed skill, both MASEs and the test it
    failed ("the closest was Theta: skill +4.0% (MASE 2.40 against naive's 2.50), but its 95% band
    covered 85% of outcomes, outside 90-99%"), so a lower MASE than naive's does not read as a
    contradiction and it agrees with the backtest table, where naive itself may rank first."""
    at = [r for r in rows if r["horizon"] == horizon]
    winners = sorted((r for r in at if qualifies(r)), key=lambda r: r["mase"])
    if winners:
        w = winners[0]
        return {
            "model": w["model"],
            "sentence": (
                f"{w['label']} beat 'next close = last close' for {symbol} at {horizon} "
                f"{'session' if horizon == 1 else 'sessions'} over the last {w['origins']} origins "
                f"(skill {w['skill'] * 100:+.1f}%, MASE {w['mase']:.2f}, 95% interval covered "
                f"{w['cover95'] * 100:.0f}%)."
            ),
        }
    others = sorted((r for r in at if r["model"] != "naive"), key=lambda r: r["mase"])
    origins = max((r["origins"] for r in at), default=0)
    naive = next((r for r in at if r["model"] == "naive"), None)
    against = f" against naive's {naive['mase']:.2f}" if naive is not None else ""
    best = ""
    if others:
        c = others[0]
        best = (
            f"; the closest was {c['label']}: skill {c['skill'] * 100:+.1f}% (MASE {c['mase']:.2f}{against}), "
            f"{failed(c)}"
        )
    return {
        "model": "naive",
        "sentence": (
            f"No model beat 'next close = last close' for {symbol} at {horizon} "
            f"{'session' if horizon == 1 else 'sessions'} by {SKILL_MIN * 100:.0f}% with honest 95% bands "
            f"over the last {origins} origins{best}."
        ),
    }


def failed(row: dict) -> str:
    """Which test of ``qualifies`` a non-naive row failed, in words (the first that fails)."""
    if row["skill"] < SKILL_MIN:
        return f"short of {SKILL_MIN * 100:+.0f}%"
    if not COVER_LO <= row["cover95"] <= COVER_HI:
        return (
            f"but its 95% band covered {row['cover95'] * 100:.0f}% of outcomes, outside "
            f"{COVER_LO * 100:.0f}-{COVER_HI * 100:.0f}%"
        )
    return f"but over only {row['origins']} origins (at least {MIN_ORIGINS})"


def forecast(closes: Sequence[float], models: Sequence[str] = MODELS, hmax: int = max(HORIZONS)) -> dict:
    """Every model's price path for steps 1..``hmax`` from the last close, and the band half-widths
    (log units) per level: ``{"paths": {model: [prices]}, "half": {"50": [...], ...}, "vol": str,
    "nu": float | None}``."""
    y = np.log(np.asarray(closes, dtype=float))
    load()
    with threadpool_limits(limits=1):
        vol = volatility(y, hmax)
        half = bands(vol, LEVELS)
        paths = {m: [float(math.exp(v)) for v in point_path(m, y, hmax)] for m in models}
    return {
        "paths": paths,
        "half": {str(k): [float(v) for v in half[k]] for k in LEVELS},
        "vol": vol.model,
        "nu": vol.nu if math.isfinite(vol.nu) else None,
    }
