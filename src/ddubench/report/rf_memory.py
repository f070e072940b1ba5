"""Journal Table 4 (receptive field), Table 5 (memory per block) and Fig. 7 (inference peak memory):
the paper's numbers, the table builders beside them, and the Fig. 7 figure drawn from its CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..analysis.memory_model import BlockMemory, MemoryModel, memory_model, model_bytes
from ..analysis.receptive_field import ReceptiveField, receptive_field
from ..measure.memory import ddunet_rank_forward, peak_memory
from ..models import DDUNet, ModelSpec, build_model

MB = 2**20

# Journal Table 4: receptive field (px, square) of one output pixel; DDU-Net for one infinitely large subimage.
TABLE4_RF_PX = {("U-Net", 2): 44, ("U-Net", 3): 92, ("U-Net", 4): 188,
                ("DDU-Net", 2): 92, ("DDU-Net", 3): 188, ("DDU-Net", 4): 380}
TABLE4_SPECS = {"U-Net": "unet_D{depth}", "DDU-Net": "ddunet_D{depth}_F16_CY"}
TABLE4_METHOD = (
    "ddubench.analysis.receptive_field over the modules of the synthetic models (base width 4; F = 16, which does "
    "not change the receptive field). rf_px_ours: the paper's backward recurrence (fewest inputs per layer: "
    "k x k conv r + k - 1, 2x2 max pool 2r, 2x2 stride-2 transposed conv ceil(r/2), coarse network on the "
    "bottleneck grid). rf_forward_px_ours: textbook forward formula r += (k - 1) * jump. rf_exact_min/max: exact "
    "extent of one output pixel over all output positions, equal to the input-gradient extent (tests)."
)

# Journal Table 5: per-block memory of U-Net(4) with base width 16 and the coarse network (F = 64, 4 subimages)
# for training on a 1024x1024 RGB image, 3 classes. Feature-map values in millions as printed.
TABLE5_IMAGE, TABLE5_GRID = 1024, (2, 2)
TABLE5_FEATURES = 64
TABLE5_SPEC = f"ddunet_D4_F{TABLE5_FEATURES}_CY_W16"
TABLE5_PAPER: dict[str, tuple[float | None, float | None, int | None, float | None]] = {
    # block: (fmap values (M), fmap MB, weights, weights MB)
    "input": (3.1, 12.0, None, 0.0),
    "input block": (67, 256.0, 2800, 0.01),
    "encoder block 1": (42, 176.0, 13952, 0.05),
    "encoder block 2": (21, 88.0, 55552, 0.21),
    "encoder block 3": (10, 44.0, 221696, 0.85),
    "encoder block 4": (5.2, 22.0, 885760, 3.38),
    "communication network": (7.6, 29.0, 307776, 0.04),
    "decoder block 1": (13, 48.0, 573952, 2.19),
    "decoder block 2": (25, 96.0, 143616, 0.55),
    "decoder block 3": (50, 192.0, 35968, 0.14),
    "decoder block 4": (101, 384.0, 9024, 0.03),
    "output block": (3.1, 12.0, 51, 0.0),
    "labels": (1.0, 8.0, None, None),
}
TABLE5_METHOD = (
    "ddubench.analysis.memory_model over the modules of DDU-Net(4, 64, Y), base width 16, RGB, 3 classes, for one "
    "device: its 1024x1024 subimage and the coarse network on a 2x2 grid of subimages (feature-map shapes from a "
    "meta-device forward). fmaps = tensors autograd saves for backward (checked against saved_tensors_hooks in "
    "tests) plus input, logits and int64 labels; MB = 2^20 bytes, 4 bytes per value, 8 for max-pool indices and "
    "labels. gradients = weights, Adam state = 2 x weights. inference_kept: kept for skip connections; "
    "inference_working: the block's own peak while it runs."
)

# Journal Fig. 7: inference peak memory of DDU-Net(4, 64, Y) on 2 subimages (max over the 2 GPUs) against
# U-Net(4) on one subimage of the same size; only the overheads at the two ends are printed.
FIG7_MODELS = (("U-Net(4)", "unet_D4_W16", (1, 1)), ("DDU-Net(4,64,Y)", "ddunet_D4_F64_CY_W16", (1, 2)))
FIG7_OVERHEAD_PCT = {32: 25.9, 4096: 0.65}
FIG7_SETUP = (
    "Inference (torch.inference_mode, eval), batch 1, RGB, 3 classes, base width 16, random weights. U-Net(4): one "
    "subimage of resolution_px^2. DDU-Net(4, 64, Y): one rank of the 1x2-subimage model with one subimage per "
    "rank, as ddubench's distributed runtime runs it (encoder-decoder of its subimage, all-gathered 64 bottleneck "
    "maps of both subimages, coarse network, which every rank runs, so every rank holds the same and this is the "
    "max over ranks as in the paper), run in one process by ddubench.measure.memory.ddunet_rank_forward, which equals "
    "the per-rank MemTracker peak of 2 gloo ranks byte for byte (tests/test_memory_model.py). weights = parameters + "
    "BatchNorm buffers. Predicted: ddubench.analysis.memory_model. MB = 2^20 bytes."
)


def _rf_note(model: str, depth: int, rf: ReceptiveField) -> str:
    parts = []
    if rf.forward[0] == rf.backward[0] == rf.exact_max[0]:
        parts.append("all conventions agree at this depth")
    else:
        parts.append(
            f"rf_px_ours (paper's convention) is the exact extent of the best-aligned output pixels (e.g. the centre "
            f"when the image side is a multiple of {2 ** (depth + 1)}); other pixels read up to {rf.exact_max[0]} px; "
            f"the textbook forward formula gives {rf.forward[0]} px"
        )
    if model == "DDU-Net":
        parts.append("one infinitely large subimage (the paper's upper bound); any F > 0 gives the same")
    return "; ".join(parts)


def table4() -> pd.DataFrame:
    """Journal Table 4: receptive field per model and depth in every convention, beside the paper's."""
    rows = []
    for (model, depth), paper_px in TABLE4_RF_PX.items():
        spec = ModelSpec.parse(TABLE4_SPECS[model].format(depth=depth))
        rf = receptive_field(build_model(spec, in_channels=1, num_classes=3, subimage_size=(32, 32)))
        rows.append({
            "model": model, "label": spec.label, "spec": str(spec), "depth": depth,
            "rf_px_paper": paper_px, "rf_px_ours": rf.backward[0], "rf_forward_px_ours": rf.forward[0],
            "rf_exact_min_px_ours": rf.exact_min[0], "rf_exact_max_px_ours": rf.exact_max[0],
            "note": _rf_note(model, depth, rf),
        })
    return pd.DataFrame(rows)


def table5_model() -> MemoryModel:
    """The memory model of journal Table 5's configuration (one device)."""
    model = build_model(TABLE5_SPEC, in_channels=3, num_classes=3, subimage_size=(TABLE5_IMAGE, TABLE5_IMAGE))
    return memory_model(model, (TABLE5_IMAGE, TABLE5_IMAGE), TABLE5_GRID)


def _block_kind(name: str) -> str:
    for prefix in ("encoder block", "decoder block"):
        if name.startswith(prefix):
            return prefix
    return name


def _exchange_note(block: BlockMemory, bottleneck_channels: int, features: int, subimages: int) -> str:
    """Why the communication network's feature maps differ from the paper's (whose count is reconstructed)."""
    unit = features * block.size_px**2
    layers = 3
    return (
        f"paper 29 maps of {features}x{block.size_px}x{block.size_px} = (1 + 2 x {layers}) x {subimages} + 1: the "
        f"stitched maps of the {subimages} subimages, conv and BatchNorm outputs of {layers} layers and "
        f"(reconstructed) the {features} returned maps of this subimage; ours {block.saved_values // unit} = "
        f"{(1 + 2 * layers) * subimages} + {bottleneck_channels // features}: the exchange concatenates the kept "
        f"{bottleneck_channels - features} and the returned {features} maps into a new {bottleneck_channels}-channel "
        f"bottleneck, which the first transposed conv saves. Weights MB: the paper prints 0.04, but "
        f"{block.weights} x 4 B = {block.weights * 4 / MB:.2f} MB (misprint)"
    )


def _table5_note(block: BlockMemory, fmap_m_paper: float | None) -> str:
    kind = _block_kind(block.name)
    notes = {
        "input block": "conv and BatchNorm outputs of both convs (ReLU in place, no dropout)",
        "encoder block": "pooled input, int64 max-pool indices (once in the values, 8 bytes each in MB), conv and "
                         "BatchNorm outputs of both convs",
        "decoder block": "concatenation [skip, upsampled], conv and BatchNorm outputs of both convs; weights_ours "
                         f"include the {block.transposed_bias} transposed-conv biases the paper leaves out "
                         f"({block.weights - block.transposed_bias} without them)",
        "output block": "logits (saved by the loss)",
        "labels": "int64 class ids, 8 bytes each; the channel columns give the number of classes, as in the paper",
    }
    parts = [notes[kind]] if kind in notes else []
    ours_m = block.saved_values / 1e6
    if fmap_m_paper is not None and abs(ours_m / fmap_m_paper - 1) > 0.02:
        parts.append(f"the paper rounds {ours_m:.2f} M to {fmap_m_paper} M")
    return "; ".join(parts)


def table5() -> pd.DataFrame:
    """Journal Table 5: feature maps and weights per block (paper and ours), plus gradients, Adam state and
    inference memory per block, and a total row."""
    memory = table5_model()
    bottleneck = [b for b in memory.blocks if b.name.startswith("encoder block")][-1].out_channels
    rows = []
    for block in memory.blocks:
        fmap_m, fmap_mb, weights, weights_mb = TABLE5_PAPER[block.name]
        trained = block.name not in ("input", "labels")
        rows.append({
            "block": block.name, "size_px": block.size_px, "in_channels": block.in_channels,
            "out_channels": block.out_channels,
            "fmap_values_millions_paper": fmap_m, "fmap_values_millions_ours": round(block.saved_values / 1e6, 6),
            "fmap_mb_paper": fmap_mb, "fmap_mb_ours": block.saved_bytes / MB,
            "weights_paper": weights, "weights_ours": block.weights if trained else None,
            "weights_mb_paper": weights_mb, "weights_mb_ours": round(block.weights * 4 / MB, 6) if trained else None,
            "gradients_mb_ours": round(block.gradient_values * 4 / MB, 6) if trained else None,
            "adam_state_mb_ours": round(block.adam_values * 4 / MB, 6) if trained else None,
            "inference_kept_mb_ours": block.kept_bytes / MB,
            "inference_working_mb_ours": block.working_bytes / MB,
            "note": _exchange_note(block, bottleneck, TABLE5_FEATURES, TABLE5_GRID[0] * TABLE5_GRID[1])
            if block.name == "communication network" else _table5_note(block, fmap_m),
        })
    frame = pd.DataFrame(rows)
    total_fmap = sum(b.saved_bytes for b in memory.blocks) / MB
    total_weights = sum(b.weights for b in memory.blocks) * 4 / MB
    frame.loc[len(frame)] = {
        "block": "total", "fmap_values_millions_ours": round(sum(b.saved_values for b in memory.blocks) / 1e6, 6),
        "fmap_mb_ours": total_fmap, "weights_ours": sum(b.weights for b in memory.blocks),
        "weights_mb_ours": round(total_weights, 6), "gradients_mb_ours": round(total_weights, 6),
        "adam_state_mb_ours": round(2 * total_weights, 6),
        "note": f"training: fmaps + weights + gradients + Adam = {total_fmap + 4 * total_weights:.1f} MB; "
                f"predicted inference peak {memory.inference_peak_bytes / MB:.1f} MB (parameters and buffers, "
                "input, skip connections, the largest block's working set); the paper prints no totals",
    }
    return frame.astype({"size_px": "Int64", "in_channels": "Int64", "out_channels": "Int64",
                         "weights_paper": "Int64", "weights_ours": "Int64"})


def _measure_inference(model: torch.nn.Module, size: int, grid: tuple[int, int], device: torch.device) -> dict:
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size, device=device)
    if isinstance(model, DDUNet):
        shape = (1, model.features, size >> model.depth, size >> model.depth)
        others = [torch.rand(shape, device=device) for _ in range(grid[0] * grid[1] - 1)]

        def run() -> torch.Tensor:
            return ddunet_rank_forward(model, x, others, grid)
    else:

        def run() -> torch.Tensor:
            return model(x)

    def forward() -> None:
        with torch.inference_mode():
            run()

    return peak_memory(forward, device, external=(model, x))


def _overhead_pct(value: float | None, base: float | None) -> float | None:
    return None if pd.isna(value) or pd.isna(base) else round(100 * (value / base - 1), 3)


def _overhead_note(ddu: Any, unet: pd.Series) -> str:
    """What DDU-Net's measured overhead consists of, and why the paper's may differ."""
    if pd.isna(ddu.peak_mem_mb_ours) or pd.isna(unet["peak_mem_mb_ours"]):
        return ddu.note
    weights = ddu.weights_mb_ours - unet["weights_mb_ours"]
    tensors = ddu.peak_mem_mb_ours - unet["peak_mem_mb_ours"] - weights
    note = f"overhead = the coarse network's weights and buffers ({weights:.3f} MB)"
    if abs(tensors) >= 1e-3:
        note += f" + {tensors:.3f} MB of exchange tensors alive at the peak"
    if ddu.resolution_px in FIG7_OVERHEAD_PCT:
        note += ("; the paper measured torch.cuda.max_memory_allocated on GPUs with its own runtime, which also "
                 "counts allocator rounding and cuDNN workspaces")
    return note


def _with_overhead(frame: pd.DataFrame) -> pd.DataFrame:
    """Add DDU-Net's overhead over U-Net at the same resolution (paper, measured, predicted) and its note."""
    unet = frame[frame["subimages"] == 1].set_index("resolution_px")
    columns: dict[str, list] = {"overhead_pct_paper": [], "overhead_pct_ours": [], "overhead_predicted_pct_ours": []}
    notes = []
    for row in frame.itertuples():
        base = unet.loc[row.resolution_px] if row.subimages > 1 else None
        columns["overhead_pct_paper"].append(FIG7_OVERHEAD_PCT.get(row.resolution_px) if base is not None else None)
        columns["overhead_pct_ours"].append(
            None if base is None else _overhead_pct(row.peak_mem_mb_ours, base["peak_mem_mb_ours"]))
        columns["overhead_predicted_pct_ours"].append(
            None if base is None else _overhead_pct(row.peak_mem_predicted_mb_ours, base["peak_mem_predicted_mb_ours"]))
        notes.append(row.note if base is None else _overhead_note(row, base))
    frame = frame.drop(columns="note").assign(**columns, note=notes)
    return frame.astype({name: "float" for name in columns})


def fig7_memory(resolutions: list[int], device: str | torch.device, max_memory_mb: float) -> tuple[pd.DataFrame, str]:
    """Journal Fig. 7 rows: measured and predicted inference peak memory per model and subimage resolution,
    and DDU-Net's overhead over U-Net; returns the frame and the measurement method."""
    device = torch.device(device)
    rows, method = [], "not measured"
    for size in sorted(resolutions):
        for label, spec, grid in FIG7_MODELS:
            model = build_model(spec, in_channels=3, num_classes=3, subimage_size=(size, size)).eval().to(device)
            predicted = round(memory_model(model, (size, size), grid).inference_peak_bytes / MB, 4)
            measured, note = None, ""
            if predicted > max_memory_mb:
                note = f"not measured: predicted {predicted:.0f} MB exceeds fig7.max_memory_mb ({max_memory_mb:g})"
            else:
                result = _measure_inference(model, size, grid, device)
                measured, method = round(result["peak_bytes"] / MB, 4), result["method"]
            rows.append({
                "model": label, "spec": spec, "subimages": grid[0] * grid[1], "resolution_px": size,
                "peak_mem_mb_ours": measured, "peak_mem_predicted_mb_ours": predicted,
                "weights_mb_ours": round(model_bytes(model) / MB, 4), "note": note,
            })
    return _with_overhead(pd.DataFrame(rows)), method


def _log_axes(ax: Any, resolutions: list[int]) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(resolutions, [str(v) for v in resolutions])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def fig7_figure(csv: str | Path, out: str | Path) -> None:
    """Journal Fig. 7 from its CSV: peak memory against resolution with the weights as horizontal lines, and the
    DDU-Net overhead (ours measured and predicted, the paper's two printed values)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .figures import save_pdf

    frame = pd.read_csv(csv)
    resolutions = sorted(int(v) for v in frame["resolution_px"].unique())
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for (model, rows), colour in zip(frame.groupby("model", sort=False), sns.color_palette("deep")):
        left.plot(rows["resolution_px"], rows["peak_mem_mb_ours"], "o-", color=colour, label=f"{model} measured")
        left.plot(rows["resolution_px"], rows["peak_mem_predicted_mb_ours"], "x--", color=colour,
                  label=f"{model} predicted")
        left.axhline(rows["weights_mb_ours"].iloc[0], color=colour, linestyle=":", label=f"{model} weights")
    left.set(xlabel="subimage resolution (px)", ylabel="inference peak memory (MB)", title="peak memory per device")
    _log_axes(left, resolutions)
    left.legend(fontsize=6)
    ddu = frame[frame["subimages"] > 1]
    right.plot(ddu["resolution_px"], ddu["overhead_pct_ours"], "o-", label="ours measured")
    right.plot(ddu["resolution_px"], ddu["overhead_predicted_pct_ours"], "x--", label="ours predicted")
    right.plot(ddu["resolution_px"], ddu["overhead_pct_paper"], "kD", markersize=5, label="paper")
    right.set(xlabel="subimage resolution (px)", ylabel="overhead over U-Net(4) (%)",
              title="DDU-Net(4,64,Y) memory overhead")
    _log_axes(right, resolutions)
    right.legend(fontsize=6)
    fig.suptitle("Journal Fig. 7: inference memory of DDU-Net on 2 subimages (one per device) vs U-Net on one")
    save_pdf(fig, out)
