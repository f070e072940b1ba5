"""Thesis figures of the Inria experiment (§5.3.3, §7.3): training patches (Fig. 5.6), test predictions
(Fig. 7.9), the image of the feature-map figures (Fig. 7.10), feature maps after the last downsampling block
(Fig. 7.11) and after the second upsampling block (Fig. 7.12), and the communication network's input and output
maps (Fig. 7.13). Each writes a CSV of what it drew.

Feature maps are taken with forward hooks from the models as they run; a DDU-Net's per-subimage maps are stitched
back into one map of the whole image, so subimage borders show where they are. The thesis says the maps "show
subimage-border artefacts that the communication network smooths"; the CSV measures that as the *border ratio*
of each map: the mean absolute step between neighbouring pixels across a subimage border over the mean step
between neighbours elsewhere (1 = borders are invisible; the U-Net is measured on the same grid as a reference).
The figures show the first 8 channels of each map.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from torch import nn  # noqa: E402

from ..data import inria  # noqa: E402
from ..data.prepared import load_arrays  # noqa: E402
from ..data.tiling import stitch_subimages  # noqa: E402
from ..evaluation.metrics import confusion_matrix_metric, scores_from_confusion  # noqa: E402
from ..io import atomic_path, read_json  # noqa: E402
from ..models.ddunet import DDUNetBase  # noqa: E402
from ..provenance import provenance, utc_now, write_sidecar  # noqa: E402
from ..training.checkpoint import model_from_checkpoint  # noqa: E402
from .figures import save_pdf  # noqa: E402
from .thesis_inria import thesis_name  # noqa: E402

MASK_COLOURS = ListedColormap(["black", "white"])  # background, building
BORDER = "red"
CHANNELS = 8
GENERATED = "generated Inria-format tiles, NOT Inria"


def _write_csv(frame: pd.DataFrame, out: str | Path, started: str, clock: float, inputs: list[str]) -> None:
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    write_sidecar(out, provenance(started=started, wall_time_s=time.perf_counter() - clock, inputs=inputs))


def _source(split_dir: Path) -> str:
    manifest = read_json(split_dir.parent / "manifest.json")
    return GENERATED if manifest.get("fake") else f"Inria tiles under {manifest['source']['root']}"


def _bare(ax: plt.Axes, title: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def _borders(ax: plt.Axes, side: int, step: float | None) -> None:
    """Red subimage borders every ``step`` pixels of a ``side`` px panel (none for whole-image models)."""
    if not step:
        return
    for position in np.arange(step, side, step):
        ax.axvline(position - 0.5, color=BORDER, linewidth=0.5)
        ax.axhline(position - 0.5, color=BORDER, linewidth=0.5)


def inria_examples(split_dir: str | Path, examples: int, pdf: str | Path, csv: str | Path) -> pd.DataFrame:
    """Thesis Fig. 5.6: the first prepared patches of a split and their building masks."""
    started, clock = utc_now(), time.perf_counter()
    split_dir = Path(split_dir)
    images, masks, manifest = load_arrays(split_dir)
    crops, source = manifest["splits"][split_dir.name]["crops"], _source(split_dir)
    count = min(examples, len(images))
    fig, axes = plt.subplots(2, count, figsize=(2.1 * count + 0.4, 4.6), squeeze=False, constrained_layout=True)
    rows = []
    for i in range(count):
        axes[0, i].imshow(images[i].transpose(1, 2, 0), interpolation="nearest")
        axes[1, i].imshow(masks[i], cmap=MASK_COLOURS, vmin=0, vmax=1, interpolation="nearest")
        _bare(axes[0, i], f"patch {crops[i]['id']} ({crops[i]['row']}, {crops[i]['col']})")
        _bare(axes[1, i], "building mask")
        rows.append({"example": i, "split": split_dir.name, "tile_id": crops[i]["id"], "crop_row": crops[i]["row"],
                     "crop_col": crops[i]["col"], "crop_px": images.shape[-1],
                     "building_share": round(float(np.asarray(masks[i]).mean()), 4), "note": source})
    fig.suptitle(f"Thesis Fig. 5.6: Inria patches and masks\n({source})", fontsize=7)
    save_pdf(fig, pdf)
    frame = pd.DataFrame(rows)
    _write_csv(frame, csv, started, clock, [str(split_dir)])
    return frame


def _first_piece(split_dir: Path, side: int) -> tuple[torch.Tensor, np.ndarray, dict[str, Any]]:
    """The top-left ``side`` px of the split's first crop: image (1, 3, side, side) in [0, 1], mask, its origin."""
    images, masks, manifest = load_arrays(split_dir)
    if images.shape[-1] < side:
        raise ValueError(f"{split_dir} crops are {images.shape[-1]} px, smaller than the {side} px piece")
    crop = manifest["splits"][split_dir.name]["crops"][0]
    image = torch.from_numpy(np.array(images[0, :, :side, :side])).float().div_(255).unsqueeze(0)
    return image, np.array(masks[0, :side, :side]), crop


def _load(checkpoints: list[str], device: torch.device) -> list[tuple[str, nn.Module, dict[str, Any]]]:
    models = []
    for path in checkpoints:
        model, payload = model_from_checkpoint(path)
        models.append((thesis_name(payload["spec"]), model.to(device), payload))
    return models


def _subimage(model: nn.Module) -> int | None:
    return model.subimage_size[0] if isinstance(model, DDUNetBase) else None


def inria_predictions(checkpoints: list[str], split_dir: str | Path, side: int, pdf: str | Path, csv: str | Path,
                      device: str | torch.device = "cpu") -> pd.DataFrame:
    """Thesis Fig. 7.9: the top-left ``side`` px of the first test crop, its mask and each model's prediction
    (DDU-Nets on their own subimages, red borders), with each model's IoU on that piece."""
    started, clock = utc_now(), time.perf_counter()
    split_dir, device = Path(split_dir), torch.device(device)
    image, mask, crop = _first_piece(split_dir, side)
    models = _load(checkpoints, device)
    fig, axes = plt.subplots(1, len(models) + 2, figsize=(2.1 * (len(models) + 2), 2.6), squeeze=False,
                             constrained_layout=True)
    axes[0, 0].imshow(image[0].permute(1, 2, 0).numpy(), interpolation="nearest")
    _bare(axes[0, 0], "image")
    axes[0, 1].imshow(mask, cmap=MASK_COLOURS, vmin=0, vmax=1, interpolation="nearest")
    _bare(axes[0, 1], "true mask")
    rows = []
    for column, (name, model, payload) in enumerate(models, start=2):
        with torch.no_grad():
            predicted = model.eval()(image.to(device)).argmax(dim=1).cpu()
        confusion = confusion_matrix_metric(len(inria.CLASSES))
        confusion.update(predicted, torch.from_numpy(mask).long().unsqueeze(0))
        iou = scores_from_confusion(confusion.compute(), inria.CLASSES)["iou"]
        ax = axes[0, column]
        ax.imshow(predicted[0].numpy(), cmap=MASK_COLOURS, vmin=0, vmax=1, interpolation="nearest")
        _borders(ax, side, _subimage(model))
        _bare(ax, name)
        rows.append({"model": name, "spec": payload["spec"], "tile_id": crop["id"], "crop_row": crop["row"],
                     "crop_col": crop["col"], "piece_px": side, "subimage_px": _subimage(model),
                     **{f"iou_{c}": None if iou[c] is None else round(iou[c], 4) for c in inria.CLASSES},
                     "note": _source(split_dir)})
    fig.suptitle(f"Thesis Fig. 7.9: Inria test predictions ({_source(split_dir)})", fontsize=7)
    save_pdf(fig, pdf)
    frame = pd.DataFrame(rows).astype({"subimage_px": "Int64"})
    _write_csv(frame, csv, started, clock, [str(split_dir), *checkpoints])
    return frame


def capture_maps(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The maps of the feature-map figures for one image (1, C, H, W), each (channels, h, w) over the whole image:
    ``down`` after the last downsampling block, ``up2`` after the second upsampling block and, for a DDU-Net with a
    coarse network, ``coarse_in`` / ``coarse_out`` (its input and output, already whole-image maps)."""
    grid = model.grid(image) if isinstance(model, DDUNetBase) else (1, 1)
    maps: dict[str, torch.Tensor] = {}

    def keep(name: str, stitch: bool):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if name == "coarse":
                maps["coarse_in"], maps["coarse_out"] = inputs[0][0].detach(), output[0].detach()
            else:
                maps[name] = (stitch_subimages(output, grid) if stitch else output)[0].detach()
        return hook

    stitch = isinstance(model, DDUNetBase)
    handles = [model.encoder.downs[-1].register_forward_hook(keep("down", stitch)),
               model.decoder.ups[1].register_forward_hook(keep("up2", stitch))]
    if getattr(model, "coarse", None) is not None:
        handles.append(model.coarse.register_forward_hook(keep("coarse", False)))
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        for handle in handles:
            handle.remove()
    return maps


def border_ratio(feature: torch.Tensor, step: int) -> float:
    """Mean |step| between neighbouring pixels across the borders of ``step`` px cells over the mean elsewhere."""
    dx = (feature[:, 1:] - feature[:, :-1]).abs()
    dy = (feature[1:, :] - feature[:-1, :]).abs()
    across_x = torch.zeros(dx.shape[1], dtype=torch.bool)
    across_x[step - 1 :: step] = True
    across_y = torch.zeros(dy.shape[0], dtype=torch.bool)
    across_y[step - 1 :: step] = True
    border = torch.cat([dx[:, across_x].flatten(), dy[across_y, :].flatten()])
    inside = torch.cat([dx[:, ~across_x].flatten(), dy[~across_y, :].flatten()])
    if border.numel() == 0 or float(inside.mean()) == 0.0:
        return float("nan")
    return float(border.mean() / inside.mean())


FEATURE_FIGURES = {
    "fig7_11": ("down", "Thesis Fig. 7.11: feature maps after the last downsampling block"),
    "fig7_12": ("up2", "Thesis Fig. 7.12: feature maps after the second upsampling block"),
}


def _map_rows(figure: str, name: str, key: str, maps: torch.Tensor, image_side: int, subimage: int) -> list[dict]:
    """One CSV row per drawn channel: its range and border ratio on the subimage grid at the map's scale."""
    step = subimage * maps.shape[-1] // image_side
    return [{"figure": figure, "model": name, "map": key, "channel": channel, "map_px": maps.shape[-1],
             "border_step_px": step, "min": round(float(maps[channel].min()), 4),
             "max": round(float(maps[channel].max()), 4),
             "border_ratio": round(border_ratio(maps[channel], step), 4) if step > 0 else None}
            for channel in range(min(CHANNELS, maps.shape[0]))]


def _draw_rows(panels: list[tuple[str, torch.Tensor, int | None]], title: str, side: int, out: str | Path) -> None:
    """One row of the first channels per (label, maps, subimage side in image px)."""
    fig, axes = plt.subplots(len(panels), CHANNELS, figsize=(CHANNELS * 1.15, 1.3 * len(panels) + 0.5),
                             squeeze=False, constrained_layout=True)
    for row, (label, maps, subimage) in enumerate(panels):
        for channel in range(CHANNELS):
            ax = axes[row, channel]
            if channel < maps.shape[0]:
                ax.imshow(maps[channel].cpu().numpy(), cmap="viridis", interpolation="nearest")
                if subimage:
                    _borders(ax, maps.shape[-1], subimage * maps.shape[-1] / side)
            else:
                ax.axis("off")
            _bare(ax, f"map {channel}" if row == 0 else None)
        axes[row, 0].set_ylabel(label, fontsize=6)
    fig.suptitle(title, fontsize=8)
    save_pdf(fig, out)


def feature_map_figures(checkpoints: list[str], split_dir: str | Path, side: int, outs: dict[str, str | Path],
                        csv: str | Path, device: str | torch.device = "cpu") -> pd.DataFrame:
    """Thesis Figs. 7.10-7.13 on the top-left ``side`` px of the first test crop: ``outs`` maps fig7_10 .. fig7_13
    to PDFs; the CSV lists every drawn channel with its range and border ratio (module docstring)."""
    started, clock = utc_now(), time.perf_counter()
    split_dir, device = Path(split_dir), torch.device(device)
    image, mask, crop = _first_piece(split_dir, side)
    models = _load(checkpoints, device)
    grid_side = next((_subimage(model) for _, model, _ in models if _subimage(model)), side)
    source = _source(split_dir)

    fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.5), squeeze=False, constrained_layout=True)
    axes[0, 0].imshow(image[0].permute(1, 2, 0).numpy(), interpolation="nearest")
    axes[0, 1].imshow(mask, cmap=MASK_COLOURS, vmin=0, vmax=1, interpolation="nearest")
    for ax, title in zip(axes[0], ("image", "mask")):
        _borders(ax, side, grid_side)
        _bare(ax, title)
    fig.suptitle(f"Thesis Fig. 7.10: the image of Figs. 7.11-7.13 ({crop['id']}, {side} px; {source})", fontsize=7)
    save_pdf(fig, outs["fig7_10"])

    captured = [(name, capture_maps(model, image.to(device)), _subimage(model)) for name, model, _ in models]
    rows: list[dict[str, Any]] = []
    for figure, (key, title) in FEATURE_FIGURES.items():
        _draw_rows([(name, maps[key], subimage) for name, maps, subimage in captured],
                   f"{title} ({source})", side, outs[figure])
        for name, maps, _subimage_px in captured:
            rows += _map_rows(figure, name, key, maps[key], side, grid_side)
    coarse = [(name, maps) for name, maps, _ in captured if "coarse_in" in maps]
    panels = [(f"{name}: {label}", maps[key], grid_side) for name, maps in coarse
              for key, label in (("coarse_in", "input"), ("coarse_out", "output"))]
    if panels:
        _draw_rows(panels, f"Thesis Fig. 7.13: communication network input (top) and output (bottom) ({source})",
                   side, outs["fig7_13"])
        for name, maps in coarse:
            rows += [r for key in ("coarse_in", "coarse_out")
                     for r in _map_rows("fig7_13", name, key, maps[key], side, grid_side)]
    else:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no model with a communication network was given", ha="center", va="center", fontsize=8)
        save_pdf(fig, outs["fig7_13"])
    frame = pd.DataFrame(rows)
    frame["note"] = f"{source}; first {CHANNELS} channels; border ratio on the {grid_side} px subimage grid"
    _write_csv(frame, csv, started, clock, [str(split_dir), *checkpoints])
    return frame
