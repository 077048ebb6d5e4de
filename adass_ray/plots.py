"""Plots written as PNG files (matplotlib, headless): the sweep's Pareto front and the report's
figures. Every writer renders to a temp file in the target folder and renames it into place."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adass_ray.data.io import atomic_write_bytes


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node or in CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def pareto_png(path: str | Path, *, trials: Sequence[Mapping[str, Any]],
               front: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]],
               title: str, ylabel: str = "supernet validation AUC",
               point_label: str = "trial") -> Path:
    """Every trial as a point (coloured by λ), the front as a line, uniform baselines as crosses.

    Records carry ``cost`` (embedding params) and ``quality``; trials also ``lam``; baselines
    ``size``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    lams = sorted({float(t["lam"]) for t in trials})
    cmap = plt.get_cmap("viridis", max(2, len(lams)))
    for i, lam in enumerate(lams):
        pts = [t for t in trials if float(t["lam"]) == lam]
        # shrinking markers: trials of different λ that selected the same sizes stay visible
        ax.scatter([t["cost"] for t in pts], [t["quality"] for t in pts],
                   s=30 + 50 * (len(lams) - 1 - i), color=cmap(i), edgecolors="black",
                   linewidths=0.4, label=f"{point_label}, λ={lam:g}", zorder=3 + i)
    if front:
        ax.plot([p["cost"] for p in front], [p["quality"] for p in front], "-", color="black",
                lw=1.4, drawstyle="steps-post", label="Pareto front", zorder=2)
    if baselines:
        ax.scatter([b["cost"] for b in baselines], [b["quality"] for b in baselines], marker="x",
                   s=60, color="tab:red", label="uniform size", zorder=4)
        for b in baselines:
            ax.annotate(f"d={b['size']}", (b["cost"], b["quality"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=8, color="tab:red")
    ax.set_xscale("log")
    ax.set_xlabel("embedding parameters (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, Path(path))


def scatter_methods_png(path: str | Path, rows: Sequence[Mapping[str, Any]], *, title: str) -> Path:
    """Test AUC (mean ± std over seeds) against embedding params, one marker per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = "osD^v<>phX*P"
    colors = plt.get_cmap("tab20")
    for i, r in enumerate(rows):
        ax.errorbar([r["embedding_params_mean"]], [r["test_auc_mean"]], yerr=[r["test_auc_std"]],
                    fmt=markers[i % 12], color=colors(i % 20), capsize=3, label=r["method"])
    ax.set_xscale("log")
    ax.set_xlabel("embedding parameters (log scale)")
    ax.set_ylabel("test AUC (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    # outside: never over a point
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, Path(path))


def size_heatmap_png(path: str | Path, fields: Sequence[str], rows: Mapping[str, Sequence[int]],
                     *, title: str) -> Path:
    """Per-field sizes (log2 colour) for each labelled row, e.g. one row per (method, seed)."""
    import numpy as np

    plt = _pyplot()
    labels = list(rows)
    values = np.array([[float(s) for s in rows[k]] for k in labels])
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(fields), 0.9 + 0.32 * len(labels)))
    im = ax.imshow(np.log2(np.maximum(values, 0.5)), aspect="auto", cmap="magma")
    ax.set_xticks(range(len(fields)), labels=list(fields), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7,
                color="white" if v < values.max() / 2 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="log2 size")
    return _save(fig, Path(path))
