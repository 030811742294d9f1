"""Summary statistics with percentile-bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (nan, nan) for fewer than two finite values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, values.size), replace=True).mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


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
