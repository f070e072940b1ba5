"""The scaling benchmark's table and figure: per-rank peak memory and time against the number of ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .figures import save_pdf

# Journal Table 7 (2048x2048, 2x2 subimages on 4 V100S GPUs): peak memory per GPU (MB), inference time (s).
# Its 1-GPU rows use 1x1 subimages, a different split from our P = 1 (same subimages on one rank).
PAPER_TABLE7 = {
    ("resnetddunet_R18_F256_CY", 2048, 2048, 4): (739, 0.0463),
    ("resnetddunet_R50_F256_CY", 2048, 2048, 4): (1109, 0.0983),
}


def scaling_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, resolution, ranks): the largest per-rank peak, its ratio to one rank, time."""
    frame = pd.DataFrame(records)
    keys = ["spec", "height_px", "width_px", "world_size"]
    rows = frame.groupby(keys).agg(
        peak_mem_mb_ours=("peak_mem_bytes", lambda b: b.max() / 2**20),
        peak_mem_mb_smallest_rank=("peak_mem_bytes", lambda b: b.min() / 2**20),
        peak_mem_mb_estimate=("estimate_bytes", lambda b: None if b.isna().all() else b.max() / 2**20),
        time_s_ours=("time_median_s", "max"),
        time_s_q1=("time_q1_s", "max"),
        time_s_q3=("time_q3_s", "max"),
        subimages_per_rank=("subimages_per_rank", "first"),
        device=("device", "first"),
        backend=("backend", "first"),
        repeats=("repeats", "first"),
    ).reset_index().rename(columns={"world_size": "P"})
    single = rows[rows["P"] == 1].set_index(["spec", "height_px", "width_px"])["peak_mem_mb_ours"]
    base = rows.set_index(["spec", "height_px", "width_px"]).index.map(single.get)
    rows["mem_ratio_vs_1_rank"] = rows["peak_mem_mb_ours"].to_numpy() / pd.Series(base, dtype=float).to_numpy()
    paper = [PAPER_TABLE7.get((r.spec, r.height_px, r.width_px, r.P), (None, None)) for r in rows.itertuples()]
    rows.insert(rows.columns.get_loc("peak_mem_mb_ours"), "peak_mem_mb_paper", [p[0] for p in paper])
    rows.insert(rows.columns.get_loc("time_s_ours"), "time_s_paper", [p[1] for p in paper])
    rows["ideal_ratio"] = 1 / rows["P"]
    rows["ratio_over_ideal"] = rows["mem_ratio_vs_1_rank"] / rows["ideal_ratio"]
    rows["note"] = ("random weights, batch 1, inference mode; time = median of the slowest rank between barriers; "
                    "peak memory = largest rank (method in the sidecar); estimate = weights + subimages per rank x one "
                    "subimage's activations from the analytic memory model (U-Net DDU-Nets); paper values: journal Table 7 on V100S GPUs "
                    "(CUDA allocator), ours on this machine's devices")
    rows = rows.round({"peak_mem_mb_ours": 3, "peak_mem_mb_smallest_rank": 3, "peak_mem_mb_estimate": 3})
    rows = rows.round({c: 6 for c in ("time_s_ours", "time_s_q1", "time_s_q3")})
    rows = rows.round({"mem_ratio_vs_1_rank": 4, "ratio_over_ideal": 4, "ideal_ratio": 4})
    return rows.sort_values(["spec", "height_px", "width_px", "P"]).reset_index(drop=True)


def scaling_figure(csv: str | Path, out: str | Path) -> None:
    """Per-rank peak memory (with the ideal 1/P) and time per image against the number of ranks."""
    frame = pd.read_csv(csv)
    frame["image"] = frame["spec"] + " " + frame["height_px"].astype(str) + "x" + frame["width_px"].astype(str)
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for image, group in frame.groupby("image", sort=False):
        line, = mem_ax.plot(group["P"], group["peak_mem_mb_ours"], marker="o", label=image)
        first = group["peak_mem_mb_ours"].iloc[0] * group["P"].iloc[0]
        mem_ax.plot(group["P"], first / group["P"], linestyle=":", color=line.get_color())
        time_ax.errorbar(group["P"], group["time_s_ours"],
                         yerr=[group["time_s_ours"] - group["time_s_q1"], group["time_s_q3"] - group["time_s_ours"]],
                         marker="o", capsize=3, color=line.get_color(), label=image)
    for ax, label in ((mem_ax, "peak memory per rank (MB); dotted: ideal 1/P"), (time_ax, "inference time per image (s)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted(frame["P"].unique()), labels=[str(p) for p in sorted(frame["P"].unique())])
        ax.set_xlabel("ranks P")
        ax.set_ylabel(label)
    time_ax.legend(fontsize=6)
    fig.suptitle(f"DDU-Net split over P ranks ({frame['device'].iloc[0]}, {frame['backend'].iloc[0]})", fontsize=8)
    save_pdf(fig, out)
