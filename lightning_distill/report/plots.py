"""The report's figures: learning curves per series (mean and 95% band over seeds), and the
aggregate intervals per group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightning_distill.report.collect import GEOMEAN, Run
from lightning_distill.report.stats import mean_band


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    groups: dict[str, list[Run]], series: list[str], thresholds: list[float], ylabel: str, xlabel: str, path: Path
) -> None:
    """One panel per series; per group the mean over seeds and its 95% bootstrap band, on the
    x positions every seed of the group evaluated at."""
    plt = _pyplot()
    columns = min(len(series), 3)
    rows = -(-len(series) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, series, strict=False):
        for label, runs in groups.items():
            curves = [r.curves[name] for r in runs if name in r.curves]
            if not curves:
                continue
            xs = sorted(set.intersection(*(set(c) for c in curves)))
            mean, low, high = mean_band(np.array([[c[x] for x in xs] for c in curves]))
            ax.plot(xs, mean, label=f"{label} ({len(curves)})")
            ax.fill_between(xs, low, high, alpha=0.2)
        for threshold in thresholds:
            ax.axhline(threshold, color="gray", lw=0.8, ls="--")
        ax.set_title("geometric mean over tasks" if name == GEOMEAN else name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[len(series) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, title="group (seeds)", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_intervals(rows: dict[str, dict[str, tuple[float, float, float]]], xlabel: str, path: Path) -> None:
    """One panel per aggregate (IQM, mean, ...): each group's point estimate and 95% interval,
    as Agarwal et al.'s interval plots."""
    plt = _pyplot()
    aggregates = list(next(iter(rows.values())))
    fig, axes = plt.subplots(1, len(aggregates), figsize=(3.6 * len(aggregates), 0.5 * len(rows) + 1.4), squeeze=False)
    labels = list(rows)
    for ax, aggregate in zip(axes.flat, aggregates, strict=True):
        for i, label in enumerate(labels):
            point, low, high = rows[label][aggregate]
            ax.plot([low, high], [i, i], lw=6, alpha=0.5, color=f"C{i}", solid_capstyle="butt")
            ax.plot([point], [i], "o", color="black", markersize=4)
        ax.set_yticks(range(len(labels)), labels if ax is axes.flat[0] else [""] * len(labels))
        ax.set_title(aggregate)
        ax.set_xlabel(xlabel)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
