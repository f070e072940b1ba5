"""Thesis tables that need no training (issue 17, "Exact"), from our modules beside the thesis's values:
Table 6.4 (communication-network parameters), Table 6.5 (memory per block of the wide U-Net), Table 7.5
(Inria model sizes and memory per device) and Table 7.6 (Inria module parameters).

Each builder takes no arguments and returns a tidy frame (``*_paper`` beside ``*_ours``, a ``note``);
:data:`THESIS_TABLES` maps each output name to its builder and the method text of its sidecar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from torch import nn

from ..analysis.memory_model import FLOAT_BYTES, BlockMemory, MemoryModel, memory_model, summary_pass_bytes
from ..analysis.params import count_parameters
from ..errors import DdubenchError
from ..models import CoarseNetwork, DDUNet, FCCoarseNetwork, ModelSpec, build_model
from . import paper

MB = 2**20

# Table 6.4: the communication networks of thesis Fig. 6.6.
TABLE6_4_KERNEL, TABLE6_4_LAYERS = 5, 3
TABLE6_4_METHOD = (
    "parameters counted on instantiated ddubench modules (torch numel): CNN = the Conv2d layers of "
    f"ddubench.models.CoarseNetwork(C, kernel {TABLE6_4_KERNEL}, {TABLE6_4_LAYERS} layers) (the thesis counts no "
    "BatchNorm; params_cnn_with_bn_ours adds it), FC = ddubench.models.FCCoarseNetwork(C, S, "
    f"{TABLE6_4_LAYERS} layers); params_fc_eq6_4 = thesis Eq. (6.4) summed over the layers"
)

# Table 6.5: U-Net(4) of base width 64 and the F = 256 coarse network, one device, 1024x1024 RGB, 3 classes.
TABLE6_5_SPEC, TABLE6_5_IMAGE, TABLE6_5_GRID = "ddunet_D4_F256_CY_W64", 1024, (2, 2)
TABLE6_5_METHOD = (
    f"ddubench.analysis.memory_model (as journal Table 5) over DDU-Net(4, 256, Y), base width 64, RGB, 3 classes: "
    f"one device's {TABLE6_5_IMAGE}x{TABLE6_5_IMAGE} subdomain and the coarse network on a {TABLE6_5_GRID[0]}x"
    f"{TABLE6_5_GRID[1]} grid of subdomains. fmaps = tensors autograd saves for backward plus input, logits and "
    "int64 labels; MB = 2^20 bytes, 4 bytes per value, 8 for max-pool indices and labels; Adam state = 2 x weights"
)

# Tables 7.5 and 7.6: the Inria models (RGB, 2 classes, base width 32, depth 3, 3x3 coarse network).
INRIA_IO = {"in_channels": 3, "num_classes": 2}
TABLE7_5_IMAGE = 512
TABLE7_5_SPECS = {"U-Net": "unet_D3_W32", "DDU-Net": "ddunet_D3_F32_CY_W32_K3"}
# devices N -> (one device's subimage (H, W), grid of subimages) for the 512x512 image.
TABLE7_5_SPLITS = {1: ((512, 512), (1, 1)), 2: ((512, 256), (1, 2)), 4: ((256, 256), (2, 2))}
TABLE7_5_NOT_MEASURED = ("not measured in this run: give the `measure step-time --distributed` records of the N "
                         "ranks (rule thesis_table7_5_measure)")
TABLE7_5_UNET_NOT_MEASURED = ("not measured: the column measures the DDU-Net split over N torch.distributed ranks; "
                              "the U-Net is never split (its N = 1 peak is that of the DDU-Net N = 1 row without the "
                              "coarse network)")
TABLE7_5_MEASURED = ("measured: the largest rank's peak of live tensors in one training step (forward, dice loss, "
                     "backward, gradient all-reduce, Adam; weights, gradients and Adam state included) of batch 1 "
                     "over N gloo ranks on the CPU, one subimage per rank (`measure step-time --distributed`)")
TABLE7_5_METHOD = (
    "parameters counted on the ddubench modules; one device's share of a 512x512 RGB image, batch 1. "
    "fwd_bwd_mb_ours: torch-summary's rule (ddubench.analysis.memory_model.summary_pass_bytes: the outputs of every "
    "layer and block, x 2 for gradients, 4 B) over a meta-device forward of that device; input and params MB at "
    "4 B a value; total = input + pass + params, as torch-summary sums them. train_fmap_mb_model_ours: "
    "ddubench.analysis.memory_model's training feature maps of that device (the Table 6.5 convention). "
    f"train_peak_mb_measured_per_rank_ours: {TABLE7_5_MEASURED} (empty where not given). MB = 2^20 bytes"
)
TABLE7_6_SPEC, TABLE7_6_SUBIMAGE = "ddunet_D3_F64_CY_W32_K3", (128, 128)
TABLE7_6_METHOD = (
    f"parameters counted on the modules of {TABLE7_6_SPEC} (RGB, 2 classes, {TABLE7_6_SUBIMAGE[0]}x"
    f"{TABLE7_6_SUBIMAGE[1]} subdomains; torch numel, BN buffers excluded): encoder down blocks, decoder up "
    "blocks and coarse network; bottleneck size from the subdomain size and depth"
)


def _mb(values: int | float) -> float:
    """float32 values in MB (2^20 bytes), rounded to 6 decimals."""
    return round(values * FLOAT_BYTES / MB, 6)


# ------------------------------------------------------------------------------------------------ Table 6.4


def fc_params_eq6_4(channels: int, size_px: int, layers: int = TABLE6_4_LAYERS) -> int:
    """Thesis Eq. (6.4) for ``layers`` fully connected layers with C_in = C_out = C on S x S maps."""
    return layers * (channels * size_px**4 * channels + channels * size_px**2)


def conv_parameters(module: nn.Module) -> int:
    """Parameters of the Conv2d layers of ``module`` (weights and biases; BatchNorm left out)."""
    return sum(count_parameters(m) for m in module.modules() if isinstance(m, nn.Conv2d))


def thesis_table6_4() -> pd.DataFrame:
    """Thesis Table 6.4: CNN and fully connected communication-network parameters per C and S x S."""
    rows = []
    for (channels, size), fc_paper in paper.THESIS_TABLE6_4_FC_PARAMS.items():
        cnn = CoarseNetwork(channels, TABLE6_4_KERNEL, TABLE6_4_LAYERS)
        rows.append({
            "features": channels, "size_px": size,
            "params_cnn_paper": paper.THESIS_TABLE6_4_CNN_PARAMS[channels], "params_cnn_ours": conv_parameters(cnn),
            "params_cnn_with_bn_ours": count_parameters(cnn),
            "params_fc_paper": fc_paper,
            "params_fc_ours": count_parameters(FCCoarseNetwork(channels, size, TABLE6_4_LAYERS)),
            "params_fc_eq6_4": fc_params_eq6_4(channels, size),
            "note": paper.THESIS_TABLE6_4_ERRATA.get((channels, size), ""),
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ Table 6.5


def thesis_table6_5_model() -> MemoryModel:
    """The memory model of thesis Table 6.5's configuration (one device)."""
    size = (TABLE6_5_IMAGE, TABLE6_5_IMAGE)
    model = build_model(TABLE6_5_SPEC, in_channels=3, num_classes=3, subimage_size=size)
    return memory_model(model, size, TABLE6_5_GRID)


BLOCK_NOTES = {
    "input": "3 x 1024^2 float32 values; the thesis prints 3.2 M here and 3.1 M for the same count (output block)",
    "input block": "conv and BatchNorm outputs of both convs (ReLU in place, no dropout)",
    "encoder block": "pooled input, int64 max-pool indices (once in the values, 8 bytes each in MB), conv and "
                     "BatchNorm outputs of both convs",
    "decoder block": "concatenation [skip, upsampled], conv and BatchNorm outputs of both convs",
    "output block": "logits (saved by the loss)",
    "labels": "int64 class ids, 8 bytes each; the channel columns give the number of classes, as in the thesis",
}


def _block_note(block: BlockMemory) -> str:
    """What our feature maps of ``block`` are, and why its weights differ from the thesis's if they do."""
    kind = next((k for k in ("encoder block", "decoder block") if block.name.startswith(k)), block.name)
    note = BLOCK_NOTES[kind]
    if block.transposed_bias:
        note += (f"; weights_ours include the {block.transposed_bias} transposed-conv biases the thesis leaves out "
                 f"({block.weights - block.transposed_bias} without them)")
    return note


def _exchange_note(block: BlockMemory, bottleneck_channels: int) -> str:
    """How our communication-network feature maps are made up, beside the thesis's (reconstructed) count."""
    features, subimages = block.in_channels, TABLE6_5_GRID[0] * TABLE6_5_GRID[1]
    unit = features * block.size_px**2
    paper_maps = paper.THESIS_TABLE6_5["communication network"][4] * MB / (unit * FLOAT_BYTES)
    return (
        f"thesis {paper_maps:g} maps of {features}x{block.size_px}x{block.size_px}, the same (1 + 2 x 3) x "
        f"{subimages} + 1 as journal Table 5; ours {block.saved_values // unit} = {(1 + 2 * 3) * subimages} + "
        f"{bottleneck_channels // features}: the stitched maps of the {subimages} subdomains, conv and BatchNorm "
        f"outputs of 3 layers, and the new {bottleneck_channels}-channel bottleneck (kept and returned maps) that the "
        f"first transposed conv saves; {paper.THESIS_TABLE6_5_ERRATA['communication network']}"
    )


def _block_row(block: BlockMemory, bottleneck_channels: int) -> dict[str, Any]:
    size, c_in, c_out, fmap_m, fmap_mb, weights, weights_mb = paper.THESIS_TABLE6_5[block.name]
    trained = block.name not in ("input", "labels")
    return {
        "block": block.name, "size_px_paper": size, "size_px_ours": block.size_px,
        "in_channels_paper": c_in, "in_channels_ours": block.in_channels,
        "out_channels_paper": c_out, "out_channels_ours": block.out_channels,
        "fmap_values_millions_paper": fmap_m, "fmap_values_millions_ours": round(block.saved_values / 1e6, 6),
        "fmap_mb_paper": fmap_mb, "fmap_mb_ours": block.saved_bytes / MB,
        "weights_paper": weights, "weights_ours": block.weights if trained else None,
        "weights_mb_paper": weights_mb, "weights_mb_ours": _mb(block.weights) if trained else None,
        "note": _exchange_note(block, bottleneck_channels) if block.name == "communication network"
        else _block_note(block),
    }


def _optimizer_rows(blocks: list[BlockMemory]) -> list[dict[str, Any]]:
    """Adam state (2 values per weight) of the encoder, decoder and communication network."""
    parts = {
        "encoder": [b for b in blocks if b.name == "input block" or b.name.startswith("encoder block")],
        "decoder": [b for b in blocks if b.name == "output block" or b.name.startswith("decoder block")],
        "comm.": [b for b in blocks if b.name == "communication network"],
    }
    rows = []
    for part, members in parts.items():
        values = 2 * sum(b.weights for b in members)
        bias = 2 * sum(b.transposed_bias for b in members)
        values_paper, mb_paper = paper.THESIS_TABLE6_5_OPTIMIZER[part]
        notes = [paper.THESIS_TABLE6_5_ERRATA.get(part, "")]
        if bias:
            notes.append(f"ours include 2 x {bias // 2} transposed-conv biases ({values - bias} without them)")
        note = "; ".join(filter(None, notes))
        rows.append({"block": f"optimizer state ({part})", "weights_paper": values_paper, "weights_ours": values,
                     "weights_mb_paper": mb_paper, "weights_mb_ours": _mb(values), "note": note})
    return rows


def thesis_table6_5() -> pd.DataFrame:
    """Thesis Table 6.5: feature maps and weights per block of the wide U-Net and the F = 256 coarse network,
    and the Adam state, every printed value beside ours."""
    memory = thesis_table6_5_model()
    bottleneck = [b for b in memory.blocks if b.name.startswith("encoder block")][-1].out_channels
    rows = [_block_row(block, bottleneck) for block in memory.blocks] + _optimizer_rows(memory.blocks)
    integers = [f"{name}_{side}" for name in ("size_px", "in_channels", "out_channels", "weights")
                for side in ("paper", "ours")]
    return pd.DataFrame(rows).astype(dict.fromkeys(integers, "Int64"))


# ------------------------------------------------------------------------------------------------ Table 7.5


def _table7_5_note(model: nn.Module, devices: int, ours: dict[str, float], unet_pass_mb: float) -> str:
    """Which of the thesis's terms our torch-summary rule reproduces for this row, and which it does not."""
    fwd_bwd = paper.THESIS_TABLE7_5_MB["DDU-Net"]["fwd_bwd"]
    if not isinstance(model, DDUNet):
        return (f"torch-summary's rule over our modules gives {ours['fwd_bwd']:g} MB (thesis {fwd_bwd[0]:g}); the "
                f"thesis prints the total {ours['total']:.2f} as {paper.THESIS_TABLE7_5_MB['U-Net']['total'][0]:g}")
    side = TABLE7_5_IMAGE >> model.depth
    unit_mb = 2 * FLOAT_BYTES * model.features * side**2 / MB
    extra = ours["fwd_bwd"] - unet_pass_mb
    return (
        f"per device: the encoder-decoder on its subimage gives {unet_pass_mb:g} MB (thesis {fwd_bwd[0]:g} / "
        f"{devices} = {fwd_bwd[0] / devices:g}); the coarse network (F = {model.features}, 3x3) on the stitched "
        f"{model.features}x{side}x{side} bottleneck adds {extra:g} MB ({extra / unit_mb:g} hooked outputs: 3 x "
        f"conv, BN, ReLU, Dropout2d and the network), where the thesis adds {fwd_bwd[1]:g} MB (that would be "
        f"{fwd_bwd[1] / unit_mb:g} such outputs; not reproduced). Parameters: U-Net + the F = {model.features} "
        f"3x3 coarse network ({count_parameters(model.coarse)}); Table 7.6 lists F = 64. The thesis prints params MB "
        f"{ours['params']:.3f} as {paper.THESIS_TABLE7_5_MB['DDU-Net']['params'][1]:g}"
    )


def _table7_5_row(name: str, devices: int, measured_mb: float | None = None) -> dict[str, Any]:
    """One model split over ``devices``: the thesis's a / N + b terms beside ours for one device."""
    subimage, grid = TABLE7_5_SPLITS[devices]
    spec = TABLE7_5_SPECS[name]
    model = build_model(spec, **INRIA_IO, subimage_size=subimage)
    unet = build_model(TABLE7_5_SPECS["U-Net"], **INRIA_IO, subimage_size=subimage)
    params = count_parameters(model)
    ours = {
        "input": _mb(INRIA_IO["in_channels"] * subimage[0] * subimage[1]),
        "fwd_bwd": summary_pass_bytes(model, subimage, grid) / MB,
        "params": _mb(params),
    }
    ours["total"] = round(sum(ours.values()), 6)
    row: dict[str, Any] = {"model": name, "spec": spec, "devices": devices,
                           "subimage_px": f"{subimage[0]}x{subimage[1]}",
                           "params_paper": paper.THESIS_TABLE7_5_PARAMS[name], "params_ours": params}
    for quantity, (a, b) in paper.THESIS_TABLE7_5_MB[name].items():
        row[f"{quantity}_mb_paper"] = a / devices + b
        row[f"{quantity}_mb_ours"] = ours[quantity]
    saved = sum(block.saved_bytes for block in memory_model(model, subimage, grid).blocks)
    row["train_fmap_mb_model_ours"] = saved / MB
    row["train_peak_mb_measured_per_rank_ours"] = None if measured_mb is None else round(measured_mb, 2)
    measurement = (TABLE7_5_UNET_NOT_MEASURED if name == "U-Net"
                   else TABLE7_5_NOT_MEASURED if measured_mb is None else TABLE7_5_MEASURED)
    row["note"] = (_table7_5_note(model, devices, ours, summary_pass_bytes(unet, subimage) / MB)
                   + f"; train_peak_mb_measured_per_rank_ours: {measurement}")
    return row


def table7_5_peaks(records: list[dict[str, Any]]) -> dict[int, float]:
    """Devices N -> the largest rank's measured training-step peak (MB) from `measure step-time --distributed`
    records of the Table 7.5 DDU-Net (each record holds every rank's)."""
    peaks = {}
    for record in records:
        ranks = record.get("records")
        if not ranks or ranks[0].get("spec") != str(ModelSpec.parse(TABLE7_5_SPECS["DDU-Net"])):
            raise DdubenchError(f"a Table 7.5 measurement must be a `measure step-time --distributed` record of "
                                f"{TABLE7_5_SPECS['DDU-Net']}; got {ranks[0].get('spec') if ranks else 'no ranks'}")
        subimage, grid = TABLE7_5_SPLITS[len(ranks)]
        if (tuple(ranks[0]["subimage"]), tuple(ranks[0]["grid"])) != (subimage, grid):
            raise DdubenchError(f"the {len(ranks)}-rank Table 7.5 measurement must use {grid[0]}x{grid[1]} subimages "
                                f"of {subimage[0]}x{subimage[1]} px")
        peaks[len(ranks)] = max(rank["peak_mem_bytes"] for rank in ranks) / MB
    return peaks


def thesis_table7_5(measured: dict[int, float] | None = None) -> pd.DataFrame:
    """Thesis Table 7.5: parameters and torch-summary memory per device of the Inria U-Net (one device) and of
    the DDU-Net split over N = 1, 2, 4 devices, beside the thesis's a / N + b values; ``measured`` (devices ->
    MB, :func:`table7_5_peaks`) fills the measured per-rank training peak."""
    measured = measured or {}
    rows = [_table7_5_row("U-Net", 1)] + [_table7_5_row("DDU-Net", n, measured.get(n)) for n in TABLE7_5_SPLITS]
    return pd.DataFrame(rows).astype({"train_peak_mb_measured_per_rank_ours": "float"})


# ------------------------------------------------------------------------------------------------ Table 7.6


def _table7_6_modules(model: DDUNet) -> dict[str, tuple[nn.Module, str, str]]:
    """Table 7.6 rows: module, our channel distribution and our note, per thesis row."""
    widths = model.encoder.out_channels
    head = model.head
    return {
        "down-sampling path": (model.encoder.downs, "-".join(map(str, widths)),
                               f"the {model.depth} down blocks {'->'.join(map(str, widths))}, without the input "
                               f"block {INRIA_IO['in_channels']}->{widths[0]} ({count_parameters(model.encoder.inc)});"
                               f" the printed 3-32-64-128 stops at 128, but the count needs the {widths[-2]}->"
                               f"{widths[-1]} block ({count_parameters(model.encoder.downs[-1])})"),
        "up-sampling path": (model.decoder.ups, "-".join(map(str, widths[::-1])),
                             f"the {model.depth} up blocks (2x2 transposed conv with bias + DoubleConv), without the "
                             f"1x1 head {head.in_channels}->{head.out_channels} ({count_parameters(head)}); the "
                             f"printed 128-64-32-2 starts at 128, not at the {widths[-1]}-channel bottleneck the "
                             "count starts from, and ends at the head's classes"),
        "communication network": (model.coarse, "-".join([str(model.features)] * 4),
                                  f"3 x ({model.features}^2 x 3^2 + {model.features}) conv with bias + 6 x "
                                  f"{model.features} BatchNorm; Table 7.5's DDU-Net uses F = 32"),
    }


def thesis_table7_6() -> pd.DataFrame:
    """Thesis Table 7.6: parameters of the Inria down- and up-sampling paths and the F = 64 coarse network."""
    model = build_model(TABLE7_6_SPEC, **INRIA_IO, subimage_size=TABLE7_6_SUBIMAGE)
    side = TABLE7_6_SUBIMAGE[0] >> model.depth
    rows = []
    for name, (module, channels, note) in _table7_6_modules(model).items():
        channels_paper, bottleneck_paper, kernel_paper, params_paper = paper.THESIS_TABLE7_6[name]
        kernel = next(m.kernel_size for m in module.modules() if isinstance(m, nn.Conv2d))
        rows.append({
            "module": name, "channels_paper": channels_paper, "channels_ours": channels,
            "bottleneck_px_paper": bottleneck_paper,
            "bottleneck_px_ours": None if bottleneck_paper is None else f"{side}x{side}",
            "kernel_paper": kernel_paper, "kernel_ours": f"{kernel[0]}x{kernel[1]}",
            "params_paper": params_paper, "params_ours": count_parameters(module), "note": note,
        })
    return pd.DataFrame(rows)


TableBuilder = Callable[[], pd.DataFrame]
# Output name (results/<name>.csv) -> (builder, method text of its sidecar).
THESIS_TABLES: dict[str, tuple[TableBuilder, str]] = {
    "thesis_table6_4": (thesis_table6_4, TABLE6_4_METHOD),
    "thesis_table6_5": (thesis_table6_5, TABLE6_5_METHOD),
    "thesis_table7_5": (thesis_table7_5, TABLE7_5_METHOD),
    "thesis_table7_6": (thesis_table7_6, TABLE7_6_METHOD),
}
