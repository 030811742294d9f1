"""Figures for evaluation reports (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def box_plot(values: dict[str, list[float]], metric: str, out: Path) -> Path:
    """One box per structure."""
    plt = _pyplot()
    names = sorted(values)
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names) + 2), 4))
    ax.boxplot([values[n] for n in names], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per structure")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def dice_vs_size(sizes_ml: list[float], dices: list[float], names: list[str], out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(sizes_ml, dices)
    for x, y, name in zip(sizes_ml, dices, names):
        ax.annotate(name, (x, y), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("reference volume (ml)")
    ax.set_ylabel("Dice")
    ax.set_title("Dice vs structure size")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def dice_per_turn(curves: dict[str, np.ndarray], out: Path, title: str = "all organs") -> Path:
    """Mean Dice after each turn with its 95% CI band, one line per simulated user; `curves[user]` is (K+1, 3):
    mean, CI low, CI high per turn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in curves.items():
        turns = np.arange(len(curve))
        ax.plot(turns, curve[:, 0], marker="o", label=name)
        if np.isfinite(curve[:, 1:]).all():
            ax.fill_between(turns, curve[:, 1], curve[:, 2], alpha=0.2)
    ax.set_xlabel("interaction (0 = the text query's answer)")
    ax.set_ylabel("3D Dice")
    ax.set_title(title)
    ax.axhline(0.85, color="grey", linestyle=":")
    ax.axhline(0.90, color="grey", linestyle="--")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
