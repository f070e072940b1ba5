"""Journal Fig. 9 at several budgets and protocols side by side: one line-IoU grid per run (``fig9_heatmap.csv``
of e.g. the cpu budget, the paper's budget under Table 10, and the paper's budget on thesis-rule data), joined
cell by cell with the journal's value, and a figure of line IoU against the model for every k."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..errors import DdubenchError  # noqa: E402
from .compare import grid_columns  # noqa: E402
from .figures import save_pdf  # noqa: E402

GRID_COLUMNS = ("k_train", "model", "label", "F", "iou_line_paper", "iou_line_ceiling", "iou_line_ours",
                "iou_line_ours_std", "n_seeds", "note")


def _grid(run: str, csv: str | Path) -> pd.DataFrame:
    """One run's Fig. 9 grid, checked for the columns the comparison reads."""
    path = Path(csv)
    if not path.is_file():
        raise DdubenchError(f"{path}: no such Fig. 9 table; build it first (rule fig9_table of run {run})")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DdubenchError(f"{path}: not a CSV table ({error}); pass a fig9_heatmap.csv") from None
    missing = [column for column in GRID_COLUMNS if column not in frame]
    if missing:
        raise DdubenchError(f"{path}: not a Fig. 9 table (no column {', '.join(missing)}); pass a fig9_heatmap.csv")
    return frame.loc[:, list(GRID_COLUMNS)].assign(run=run)


def budget_table(grids: dict[str, str | Path]) -> pd.DataFrame:
    """Long table, run by run in the order given: one row per (run, k, model) with our line IoU, its seed std
    and count, the ceiling of that run's data, the journal's value and the difference; a cell a run has not
    trained has no row for that run."""
    if not grids:
        raise DdubenchError("no Fig. 9 tables given; pass run=path pairs, e.g. cpu=results/cpu/fig9_heatmap.csv")
    frame = pd.concat([_grid(run, csv) for run, csv in grids.items()], ignore_index=True)
    frame = frame.dropna(subset=["iou_line_ours"]).rename(columns={"k_train": "k"})
    frame["F"] = frame["F"].astype("Int64")  # U-Net rows have none
    frame["diff_to_paper"] = frame["iou_line_ours"] - frame["iou_line_paper"]
    frame["run"] = pd.Categorical(frame["run"], categories=list(grids), ordered=True)
    frame = frame.sort_values(["run", "k", "model", "F"])  # the runs in the order given
    columns = ["k", "model", "label", "F", "run", "iou_line_ours", "iou_line_ours_std", "n_seeds",
               "iou_line_paper", "diff_to_paper", "iou_line_ceiling", "note"]
    return frame.loc[:, columns].reset_index(drop=True)


def budget_figure(csv: str | Path, out: str | Path) -> None:
    """One panel per k: line IoU of every model (communicated maps F, then the U-Net) for each run, mean ± seed
    std, with the journal's values as black crosses; a cell a run has not trained breaks its line."""
    frame = pd.read_csv(csv)
    frame["column"] = grid_columns(frame)
    features = sorted(frame.loc[frame["model"] != "U-Net", "F"].dropna().astype(int).unique())
    order = [f"F={f}" for f in features] + (["U-Net"] if (frame["model"] == "U-Net").any() else [])
    position = {name: index for index, name in enumerate(order)}
    frame["x"] = frame["column"].map(position)
    runs = list(dict.fromkeys(frame["run"]))
    ks = sorted(frame["k"].unique())
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, axes = plt.subplots(1, len(ks), figsize=(1.2 + 2.6 * len(ks), 3.2), sharey=True, squeeze=False,
                             constrained_layout=True)
    colours = dict(zip(runs, sns.color_palette("deep", len(runs))))
    for ax, k in zip(axes[0], ks):
        cell = frame[frame["k"] == k]
        for offset, run in enumerate(runs):
            points = cell[cell["run"] == run].set_index("x").reindex(range(len(order)))  # a gap breaks the line
            shift = (offset - (len(runs) - 1) / 2) * 0.12
            ax.errorbar(points.index + shift, points["iou_line_ours"], yerr=points["iou_line_ours_std"].fillna(0),
                        fmt="o-", markersize=3.5, linewidth=1, capsize=2, color=colours[run],
                        label=run if k == ks[0] else None)
        paper = cell.drop_duplicates("column").sort_values("x")
        ax.plot(paper["x"], paper["iou_line_paper"], "x", color="black", markersize=6,
                label="journal Fig. 9" if k == ks[0] else None)
        ax.set_xticks(range(len(order)), order, rotation=60)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"k = {k}")
    axes[0][0].set_ylabel("line-class IoU (test)")
    fig.legend(loc="outside lower center", ncols=len(runs) + 1, frameon=False)
    fig.suptitle("Journal Fig. 9 at several budgets and protocols: DDU-Net(3, F, Y) and U-Net(3)")
    save_pdf(fig, out)
