"""How far a Fig. 9 / Fig. 11 grid of ours agrees with the paper's: differences and the paper's orderings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def _spearman(x: pd.Series, y: pd.Series) -> float | None:
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return None
    return float(x.rank().corr(y.rank()))


def _beats_in_every_seed(comm: pd.DataFrame, unet: pd.DataFrame) -> bool | None:
    """Whether the worst seed of the best-on-average communicating DDU-Net beats the best seed of the U-Net."""
    if comm.empty or unet.empty or "iou_line_ours_min" not in comm:
        return None
    best = comm.loc[comm["iou_line_ours"].idxmax()]
    return bool(best["iou_line_ours_min"] > unet["iou_line_ours_max"].iloc[0])


def compare_grid(csv: str | Path) -> dict[str, Any]:
    """Mean absolute difference to the paper and, per k, the paper's orderings in both and our seed spread."""
    frame = pd.read_csv(csv)
    both = frame.dropna(subset=["iou_line_paper", "iou_line_ours"])
    rows = []
    for k, group in frame.groupby("k_train"):
        ddu = group[group["model"] == "DDU-Net"].sort_values("F")
        unet = group[group["model"] == "U-Net"]
        no_comm = ddu[ddu["F"] == 0]
        comm = ddu[ddu["F"] > 0]
        row: dict[str, Any] = {
            "k": int(k),
            "seeds": int(group["n_seeds"].min()) if "n_seeds" in group else None,
            "std_ours": group["iou_line_ours_std"].mean() if "iou_line_ours_std" in group else None,
        }
        for source in ("paper", "ours"):
            column = f"iou_line_{source}"
            row[f"spearman_F_{source}"] = _spearman(comm["F"], comm[column])
            row[f"best_comm_{source}"] = comm[column].max() if not comm.empty else None
            row[f"no_comm_{source}"] = no_comm[column].iloc[0] if not no_comm.empty else None
            row[f"unet_{source}"] = unet[column].iloc[0] if not unet.empty else None
        row["comm_beats_unet_every_seed"] = _beats_in_every_seed(comm, unet)
        rows.append(row)
    per_k = pd.DataFrame(rows)
    return {
        "cells_compared": int(len(both)),
        "mean_abs_diff": float((both["iou_line_ours"] - both["iou_line_paper"]).abs().mean()) if len(both) else None,
        "per_k": per_k,
    }


def markdown(csv: str | Path) -> str:
    """The comparison as a Markdown paragraph and table (for results/README.md)."""
    result = compare_grid(csv)
    lines = [
        f"{Path(csv).name}: {result['cells_compared']} cells with a paper value; mean absolute difference "
        f"{result['mean_abs_diff']:.3f} line IoU." if result["mean_abs_diff"] is not None else
        f"{Path(csv).name}: no cell has a paper value.",
        "",
        "| k | best F>0 paper | best F>0 ours | F=0 paper | F=0 ours | U-Net paper | U-Net ours "
        "| Spearman(F, IoU) paper | ours | seeds | mean std ours | best F>0 beats U-Net in every seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: Any) -> str:
        return "" if value is None or pd.isna(value) else f"{value:.2f}"

    for row in result["per_k"].to_dict("records"):
        lines.append(
            f"| {row['k']} | {fmt(row['best_comm_paper'])} | {fmt(row['best_comm_ours'])} | {fmt(row['no_comm_paper'])} "
            f"| {fmt(row['no_comm_ours'])} | {fmt(row['unet_paper'])} | {fmt(row['unet_ours'])} "
            f"| {fmt(row['spearman_F_paper'])} | {fmt(row['spearman_F_ours'])} "
            f"| {'' if row['seeds'] is None else row['seeds']} | {fmt(row['std_ours'])} "
            f"| {_yes_no(row['comm_beats_unet_every_seed'])} |"
        )
    return "\n".join(lines)


def _yes_no(value: bool | None) -> str:
    return "" if value is None or pd.isna(value) else ("yes" if value else "no")
