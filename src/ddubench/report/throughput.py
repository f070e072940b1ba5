"""Training-step time and throughput table, beside the authors' training scheme and their code.

The paper reports no step times. Two references sit beside ours: ``step_time_ms_authors_scheme``, the
authors' DDU-Net training scheme (one process, k deep-copied clones, gradients summed into clone 0, Adam,
``load_state_dict`` broadcast; :mod:`ddubench.measure.authors_scheme`, written by us) timed in this table's
run on the same machine; and ``step_time_ms_authors_code``, the authors' own code (DDU-Net and U-Net) timed
earlier on this machine kind (2 CPU cores, torch 2.14.1, 2 threads, batch 16): an anchor, not run here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# (spec, k) -> median training-step time of the authors' code in ms (reference/perf_anchors.md)
AUTHORS_CODE_STEP_MS = {
    ("ddunet_D3_F16_CY", 2): 54.5,
    ("ddunet_D3_F16_CY", 6): 140.0,
    ("ddunet_D3_F16_CY", 16): 306.0,
    ("unet_D3", 2): 38.3,
    ("unet_D3", 16): 256.0,
}


def _over_ranks(ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for a step over P ranks: the slowest rank's times, the largest rank's peak memory."""
    slowest = max(ranks, key=lambda r: r["step_time_median_s"])
    return {**slowest, "peak_mem_bytes": max(r["peak_mem_bytes"] for r in ranks)}


def throughput_table(payloads: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, k, eager, compiled or distributed over P ranks): median step time with quartiles,
    images per second, per-rank peak memory of a distributed step, the anchor and the ratio.

    ``payloads`` are `measure step-time` records, or `measure step-time --distributed` files (every rank's
    record under ``records``).
    """
    records = [_over_ranks(p["records"]) if "records" in p else p for p in payloads]
    scheme_ms = {(r["spec"], r["k"]): r["step_time_median_s"] * 1e3 for r in records
                 if r.get("mode") == "authors_scheme"}
    rows = []
    for r in records:
        anchor = AUTHORS_CODE_STEP_MS.get((r["spec"], r["k"]))
        scheme = scheme_ms.get((r["spec"], r["k"]))
        median_ms = r["step_time_median_s"] * 1e3
        distributed = r.get("mode") == "distributed"
        rows.append({
            "model": r["label"], "spec": r["spec"], "k": r["k"], "mode": r.get("mode", "eager"),
            "ranks": r.get("world_size", 1), "seeds_per_process": r.get("seeds", 1), "batch_size": r["batch_size"],
            "threads": r["threads"], "params": r["params"],
            "step_time_ms_authors_code": anchor,
            "step_time_ms_authors_scheme": None if scheme is None else round(scheme, 2),
            "step_time_ms_ours": round(median_ms, 2),
            "step_time_ms_q1": round(r["step_time_q1_s"] * 1e3, 2),
            "step_time_ms_q3": round(r["step_time_q3_s"] * 1e3, 2),
            "images_per_s_ours": round(r["images_per_s"], 1),
            "speedup_vs_authors_code": None if anchor is None else round(anchor / median_ms, 2),
            "speedup_vs_authors_scheme": None if scheme is None else round(scheme / median_ms, 2),
            "peak_mem_mb_per_rank_ours": round(r["peak_mem_bytes"] / 2**20, 2) if distributed else None,
            "note": "random synthetic-shaped batch, forward + dice loss + backward + Adam, median of "
                    f"{r['repeats']} steps after {r['warmup']} warm-up; authors' scheme: their clone scheme for "
                    "the same DDU-Net, eager, timed in this run (the authors_scheme row); authors' code: anchor "
                    "measured on this machine kind (reference/perf_anchors.md), not in this run" + (
                        f"; distributed: {r['world_size']} {r['backend']} ranks of {r['threads']} thread(s) "
                        "each, the subimages split over them (bottleneck all-gather, dice-sum and gradient "
                        "all-reduce), time of the slowest rank, peak = largest rank's live tensors "
                        "(optimizer state included)" if distributed else "") + (
                        f"; stacked: {r.get('seeds')} seeds trained in one process (weights stacked, one vmap-ed "
                        "call a step), the time is one model's share of the stacked step (compare with eager for "
                        "models per hour)" if str(r.get("mode", "")).startswith("stacked") else ""),
        })
    return pd.DataFrame(rows).sort_values(["spec", "k", "mode", "ranks"]).reset_index(drop=True)
