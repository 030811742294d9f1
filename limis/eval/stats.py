"""Summary statistics with percentile-bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); (nan, nan) for fewer than two finite values."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):  # every resample has the same mean
        return float(values[0]), float(values[0])
    found = bootstrap((values,), np.mean, confidence_level=level, n_resamples=resamples, method="percentile",
                      random_state=np.random.default_rng(seed))
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def describe(values: np.ndarray) -> dict[str, float]:
    """n, mean, median, sd and the 95 % bootstrap CI of the mean over finite values."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    low, high = bootstrap_ci(finite)
    return {
        "n": int(finite.size),
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "median": float(np.median(finite)) if finite.size else float("nan"),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        "ci_low": low,
        "ci_high": high,
    }
