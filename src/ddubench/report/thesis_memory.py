"""Thesis Figs. 6.8-6.10 (§6.3): memory over a few training iterations (U-Net in one process, DDU-Net on two
ranks) from `ddubench memory-timeline` records, and the training peak against the square resolution, measured
beside the memory model's theory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ..analysis.memory_model import memory_model  # noqa: E402
from ..errors import DdubenchError  # noqa: E402
from ..measure.memory import peak_memory  # noqa: E402
from ..measure.memory_timeline import LocalTraining  # noqa: E402
from ..models import build_model  # noqa: E402
from .figures import save_pdf  # noqa: E402

MB = 2**20
# MemTracker's categories, bottom to top of the stacked timeline
CATEGORIES = ("Parameter", "Buffer", "Gradient", "Optstate", "Other", "Activation", "Temp")
IO = (3, 3)  # RGB in, 3 classes out: journal Table 5's image (thesis §6.3)


def _records(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records = [record for payload in files for record in payload.get("records", [])]
    if not records or any("phase_peaks" not in record or "marks" not in record for record in records):
        raise DdubenchError("a file given is not written by `ddubench memory-timeline` (no phase_peaks/marks); pass "
                            "only those files")
    return records


def thesis_fig6_8_table(files: list[dict[str, Any]]) -> pd.DataFrame:
    """Per model, rank, iteration and phase: the phase's peak and, at that moment, the bytes of each category."""
    rows = []
    for record in _records(files):
        for top in record["phase_peaks"]:
            rows.append({"model": record["label"], "spec": record["spec"], "world_size": record["world_size"],
                         "rank": record["rank"], "iteration": top["iteration"], "phase": top["phase"],
                         "peak_mb_ours": top.get("Total", 0) / MB,
                         **{f"{category.lower()}_mb_ours": top.get(category, 0) / MB
                            for category in CATEGORIES if category in top},
                         "note": f"{record['grid'][0]}x{record['grid'][1]} subimages of {record['subimage'][0]}x"
                                 f"{record['subimage'][1]} px, batch {record['batch_size']}, {record['device']}; "
                                 f"{record['method']}"})
    return pd.DataFrame(rows).round(3)


def _timeline_figure(files: list[dict[str, Any]], out: str | Path, title: str) -> None:
    records = _records(files)
    fig, axes = plt.subplots(len(records), 1, figsize=(8, 2.8 * len(records)), constrained_layout=True,
                             squeeze=False)
    for ax, record in zip(axes[:, 0], records):
        frame = pd.DataFrame(record["samples"]).fillna(0)
        present = [category for category in CATEGORIES if category in frame and frame[category].any()]
        if present:
            ax.stackplot(frame["op"], *(frame[category] / MB for category in present), labels=present, alpha=0.85)
        else:  # CUDA: the allocator's total only
            ax.plot(frame["op"], frame["Total"] / MB, label="allocated")
        for mark in record["marks"]:
            if mark["phase"] == "forward":
                ax.axvline(mark["sample"], color="black", linewidth=0.6)
                ax.text(mark["sample"], ax.get_ylim()[1], f" it. {mark['iteration'] + 1}", fontsize=7, va="top")
            else:
                ax.axvline(mark["sample"], color="grey", linewidth=0.4, linestyle=":")
        where = f"rank {record['rank']} of {record['world_size']}" if record["world_size"] > 1 else "one process"
        ax.set_title(f"{record['label']}, {where}: peak {record['peak_bytes'] / MB:.1f} MB", fontsize=9)
        every = -(-record["samples_total"] // len(frame))
        ax.set_xlabel(f"operator (CPU) or allocator event (CUDA), the largest of every {every}; dotted: backward, "
                      "optimizer step")
        ax.set_ylabel("MB")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=10)
    save_pdf(fig, out)


def thesis_fig6_8(files: list[dict[str, Any]], out: str | Path) -> None:
    """Thesis Fig. 6.8: memory over the training iterations of the U-Net (stacked by category on CPU)."""
    _timeline_figure(files, out, "Thesis Fig. 6.8: memory during training iterations, U-Net")


def thesis_fig6_9(files: list[dict[str, Any]], out: str | Path) -> None:
    """Thesis Fig. 6.9: the same for DDU-Net split over two ranks, one panel per rank."""
    _timeline_figure(files, out, "Thesis Fig. 6.9: memory during training iterations, DDU-Net on two ranks")


def thesis_fig6_10(spec: str, resolutions: list[int], device: torch.device) -> pd.DataFrame:
    """Thesis Fig. 6.10's numbers: per square resolution, the memory model's training memory (weights, gradients,
    Adam moments, saved feature maps) beside the measured peak of one training step (after a first step, so
    Adam's state exists), batch 1."""
    rows = []
    for side in resolutions:
        model = build_model(spec, in_channels=IO[0], num_classes=IO[1], subimage_size=(side, side))
        theory = memory_model(model, (side, side), (1, 1)).training_bytes
        training = LocalTraining(spec, (1, 1), (side, side), 1, IO, device)
        training.step()
        measured = peak_memory(training.step, device, external=training.external())
        rows.append({"resolution_px": side, "model": training.spec.label, "spec": spec,
                     "theory_mb_ours": theory / MB, "measured_mb_ours": measured["peak_bytes"] / MB,
                     "measured_over_theory": measured["peak_bytes"] / theory,
                     "note": f"batch 1, {IO[0]} channels, {IO[1]} classes, one subimage (the coarse network on its own "
                             f"maps); measured: {measured['method']}"})
        del training
    return pd.DataFrame(rows).round(3)


def thesis_fig6_10_figure(csv: str | Path, out: str | Path) -> None:
    """Thesis Fig. 6.10: training peak against the square resolution, theory and measured (log-log)."""
    frame = pd.read_csv(csv)
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    ax.plot(frame["resolution_px"], frame["theory_mb_ours"], marker="o", label="theory (memory model)")
    ax.plot(frame["resolution_px"], frame["measured_mb_ours"], marker="s", label="measured")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("image side (px), square")
    ax.set_ylabel("training peak (MB)")
    ax.legend(fontsize=8)
    ax.set_title(f"Thesis Fig. 6.10: training peak memory, {frame['model'].iloc[0]}", fontsize=10)
    save_pdf(fig, out)
