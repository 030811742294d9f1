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


def dice_per_turn(curves: dict[str, np.ndarray], out: Path) -> Path:
    """Mean Dice after each turn, one line per simulated user."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in curves.items():
        ax.plot(range(len(curve)), curve, marker="o", label=name)
    ax.set_xlabel("interaction")
    ax.set_ylabel("mean Dice")
    ax.axhline(0.85, color="grey", linestyle=":")
    ax.axhline(0.90, color="grey", linestyle="--")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
