"""Journal Table 7: DDU-Net against FCtL, GLNet and the other baselines on one 2048x2048 image.

Parameters, peak memory per device and inference time come from one harness run on one machine with
random weights (:mod:`ddubench.measure.inference` for one device, :mod:`ddubench.measure.scaling` for the
multi-device rows); mIoU comes from trained checkpoints' test evaluations when the run trained the row's
model, and is otherwise empty with the reason. The paper's values stand beside ours, never in our columns.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# Journal Table 7 per row id: (method as printed, devices, mIoU, parameters as printed, peak MB, time mean s, std s)
PAPER_TABLE7: dict[str, tuple[str, int, float, int, int, float, float]] = {
    "ddunet_r50_1x1": ("DDU-Net ResNet50 (1x1 subdomains, 1 GPU)", 1, 0.704, 44_000_000, 3834, 0.2637, 0.0023),
    "ddunet_r50_2x2": ("DDU-Net ResNet50 (2x2 subdomains, 4 GPUs)", 4, 0.703, 44_000_000, 1109, 0.0983, 0.0016),
    "ddunet_r18_1x1": ("DDU-Net ResNet18 (1x1 subdomains, 1 GPU)", 1, 0.690, 9_700_000, 2742, 0.0857, 0.0004),
    "ddunet_r18_2x2": ("DDU-Net ResNet18 (2x2 subdomains, 4 GPUs)", 4, 0.684, 9_700_000, 739, 0.0463, 0.0011),
    "fctl": ("From Contexts to Locality (1 GPU)", 1, 0.705, 54_100_000, 3131, 3.3907, 0.0150),
    "glnet": ("GL-Net (1 GPU)", 1, 0.696, 15_000_000, 2170, 3.0550, 0.0240),
}
PAPER_NOTES = {
    "ddunet_r18_2x2": "the journal's text says 601 MB for this row, its table 739 MB",
}
# Ratios the paper's claim rests on: each DDU-Net row's inference speed-up over these baselines.
RATIO_BASELINES = ("glnet", "fctl")


def _miou(evals: list[dict[str, Any]], spec: str, subimage_size: int | None) -> tuple[float | None, float | None, int]:
    """Mean and std over seeds of the test mIoU of ``spec`` (at that subimage size, if recorded)."""
    scores = [e["scores"]["miou"] for e in evals if e["spec"] == spec
              and e.get("subimage_size", subimage_size) in (subimage_size, None)]
    if not scores:
        return None, None, 0
    series = pd.Series(scores, dtype=float)
    return float(series.mean()), (float(series.std()) if len(series) > 1 else None), len(series)


def table7(rows: list[dict[str, Any]], records: dict[str, list[dict[str, Any]]], evals: list[dict[str, Any]],
           miou_reason: str, setting: str) -> pd.DataFrame:
    """One row per configured Table 7 row: ours beside the paper's, plus speed-up ratios from our numbers.

    ``records`` maps a row id to its measurement records (one per rank); ``evals`` are test evaluations
    of trained models; ``miou_reason`` explains an empty mIoU; ``setting`` describes where we measured.
    """
    out = []
    for row in rows:
        ranks = records[row["id"]]
        first = ranks[0]
        paper = PAPER_TABLE7.get(row["id"])
        miou, miou_std, n_seeds = _miou(evals, first["spec"], row.get("subimage_size"))
        notes = [setting]
        if first["world_size"] > 1 and first["device"].startswith("cpu"):
            notes.append(f"{first['world_size']} CPU ranks (processes) share this machine's cores, so the time is "
                         "not that of separate devices; the memory is per rank")
        if row["id"] in PAPER_NOTES:
            notes.append(PAPER_NOTES[row["id"]])
        if miou is None:
            notes.append(f"mIoU not measured: {miou_reason}")
        out.append({
            "row": row["id"],
            "method": row.get("name") or first["label"],
            "spec": first["spec"],
            "subimage_size": row.get("subimage_size"),
            "devices_ours": first["world_size"],
            "devices_paper": paper[1] if paper else None,
            "miou_paper": paper[2] if paper else None,
            "miou_ours": miou,
            "miou_ours_std": miou_std,
            "n_seeds": n_seeds,
            "params_paper": paper[3] if paper else None,
            "params_ours": first["params"],
            "peak_mem_mb_paper": paper[4] if paper else None,
            "peak_mem_mb_ours": round(max(r["peak_mem_bytes"] for r in ranks) / 2**20, 1),
            "time_s_paper": paper[5] if paper else None,
            "time_s_std_paper": paper[6] if paper else None,
            "time_s_ours": round(max(r["time_mean_s"] for r in ranks), 4),
            "time_s_std_ours": round(max(r["time_std_s"] for r in ranks), 4),
            "note": "; ".join(notes),
        })
    frame = pd.DataFrame(out)
    for baseline in RATIO_BASELINES:
        match = frame.loc[frame["row"] == baseline]
        if match.empty:
            continue
        ours = match["time_s_ours"].iloc[0]
        frame[f"speedup_vs_{baseline}_ours"] = (ours / frame["time_s_ours"]).round(2)
        paper = PAPER_TABLE7[baseline][5]
        frame[f"speedup_vs_{baseline}_paper"] = [
            round(paper / PAPER_TABLE7[r][5], 2) if r in PAPER_TABLE7 else None for r in frame["row"]
        ]
    frame = frame.astype({"subimage_size": "Int64", "devices_paper": "Int64", "params_paper": "Int64",
                          "peak_mem_mb_paper": "Int64"})
    return frame[[c for c in frame.columns if c != "note"] + ["note"]]
