"""Figures, drawn only from the results CSVs (or, for qualitative figures, from arrays passed in).

PDFs are written without a creation date so that rebuilding a figure from the same CSV gives the same
bytes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .compare import grid_columns  # noqa: E402
from .paper import above_ceiling  # noqa: E402

CLASS_COLOURS = ListedColormap(["black", "tab:red", "white"])


def save_pdf(fig: plt.Figure, out: str | Path) -> None:
    """Save a figure reproducibly (no timestamp, no software stamp), atomically, and close it: a PDF, or a
    150 dpi PNG when ``out`` ends in ``.png`` (the images the README shows)."""
    png = str(out).endswith(".png")
    metadata = {"Software": None} if png else {"CreationDate": None}
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png" if png else "pdf", bbox_inches="tight", metadata=metadata,
                    **({"dpi": 150} if png else {}))
    plt.close(fig)


def line_iou_heatmaps(csv: str | Path, out: str | Path, title: str, ylabel: str) -> None:
    """Paper, receptive-field ceiling (where the table has it) and ours side by side: line-class IoU per k
    (rows) and model (columns); a paper value above the ceiling even when rounded down (:func:`.paper.above_ceiling`)
    is marked with ^."""
    frame = pd.read_csv(csv)
    frame["column"] = grid_columns(frame)
    features = sorted(frame.loc[frame["model"] != "U-Net", "F"].dropna().astype(int).unique())
    columns = [f"F={f}" for f in features] + (["U-Net"] if (frame["model"] == "U-Net").any() else [])
    panels = {"paper (^: above the ceiling)": "iou_line_paper"}
    if "iou_line_ceiling" in frame and frame["iou_line_ceiling"].notna().any():
        panels["receptive-field ceiling"] = "iou_line_ceiling"
    panels["ours (mean ± std over seeds)"] = "iou_line_ours"
    sns.set_theme(style="white", font_scale=0.8)
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + 1.1 * len(columns) * len(panels),
                                                      0.75 * frame["k_train"].nunique() + 1.6),
                             sharey=True, constrained_layout=True)

    def pivot(column: str) -> pd.DataFrame:
        table = frame.pivot_table(index="k_train", columns="column", values=column, aggfunc="first", dropna=False)
        return table.reindex(columns=columns).astype(float)

    spread = pivot("iou_line_ours_std")
    for ax, (name, column) in zip(axes, panels.items()):
        grid = pivot(column)
        text = grid.map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        if column == "iou_line_ours":
            text = text + spread.map(lambda v: "" if pd.isna(v) else f"\n±{v:.2f}")
        if column == "iou_line_paper" and "receptive-field ceiling" in panels:
            above = above_ceiling(grid, pivot("iou_line_ceiling"))
            text = text + above.map(lambda flag: "^" if flag else "")
        sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=text.to_numpy(), fmt="",
                    annot_kws={"fontsize": 6.5}, cbar=ax is axes[-1], linewidths=0.5, linecolor="white",
                    mask=grid.isna())
        ax.set_title(name)
        ax.set_xlabel("DDU-Net(D, F, Y) communicated maps F / U-Net")
        ax.set_ylabel(ylabel if ax is axes[0] else "")
    fig.suptitle(title)
    save_pdf(fig, out)


def prediction_panels(
    images: np.ndarray, masks: np.ndarray, predictions: dict[str, np.ndarray], subimage_width: int, out: str | Path
) -> None:
    """Journal Figs. 8/10 style: rows are examples; columns input, ground truth, each model's prediction."""
    columns = {"input": images, "ground truth": masks, **predictions}
    n_rows, n_cols = images.shape[0], len(columns)
    height, width = images.shape[1:]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * width / 40 + 1, n_rows * height / 40 + 0.6),
                             squeeze=False, constrained_layout=True)
    for col, (name, arrays) in enumerate(columns.items()):
        for row in range(n_rows):
            ax = axes[row, col]
            if name == "input":
                ax.imshow(arrays[row], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(arrays[row], cmap=CLASS_COLOURS, vmin=0, vmax=2, interpolation="nearest")
            for x in range(subimage_width, width, subimage_width):
                ax.axvline(x - 0.5, color="tab:blue", linewidth=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=7)
    save_pdf(fig, out)
