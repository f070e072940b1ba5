"""DeepGlobe figures: journal Fig. 13 (from its CSV), Figs. 14/15 (predictions, error maps), Figs. 5/6 (examples).

Fig. 13 is drawn only from ``fig13_deepglobe.csv``. Figs. 5, 6, 14 and 15 are qualitative: each is drawn
from the data (and checkpoints) it shows and writes a CSV listing what it drew, with numbers (class pixel
counts, per-example mIoU, error pixels), so its content can be checked without looking at the PDF.
Masks use the DeepGlobe colour table of :mod:`ddubench.data.deepglobe`; subimage borders are red (no
DeepGlobe class is red).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ..data import deepglobe  # noqa: E402
from ..data.prepared import load_arrays  # noqa: E402
from ..data.registry import load_split  # noqa: E402
from ..evaluation.metrics import confusion_matrix_metric, scores_from_confusion  # noqa: E402
from ..evaluation.predict import predict  # noqa: E402
from ..io import atomic_path, read_json  # noqa: E402
from ..models import ModelSpec  # noqa: E402
from ..provenance import provenance, utc_now, write_sidecar  # noqa: E402
from ..training.checkpoint import model_from_checkpoint  # noqa: E402
from .figures import save_pdf  # noqa: E402

CORRECT, UNKNOWN, WRONG = 0, 128, 255  # error-map grey levels (journal Fig. 15: black correct, white wrong)
BORDER = "red"
# synthetic masks (background, line, circle) without red, which marks the subimage borders in Fig. 5
SYNTHETIC_COLOURS = ListedColormap(["black", "gold", "white"])
GENERATED = "generated DeepGlobe-format tiles, NOT DeepGlobe"


def _write_csv(frame: pd.DataFrame, out: str | Path, started: str, clock: float, inputs: list[str],
               extra: dict[str, Any] | None = None) -> None:
    """A figure's CSV, atomically, with its provenance sidecar."""
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    write_sidecar(out, provenance(started=started, wall_time_s=time.perf_counter() - clock, inputs=inputs,
                                  extra=extra))


def _draw_borders(ax: plt.Axes, height: int, width: int, subimage: int | None) -> None:
    """Red lines between subimages (none for a whole-image panel)."""
    if not subimage:
        return
    for x in range(subimage, width, subimage):
        ax.axvline(x - 0.5, color=BORDER, linewidth=0.6)
    for y in range(subimage, height, subimage):
        ax.axhline(y - 0.5, color=BORDER, linewidth=0.6)


def _bare(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ----------------------------------------------------------------------------------------------- Fig. 13


def fig13_figure(csv: str | Path, out: str | Path) -> None:
    """Grouped bars of test mIoU per P and F (error bars: std over repeats); P = 1, then C = N and C = Y."""
    frame = pd.read_csv(csv)
    features = sorted(frame["F"].unique())
    colours = dict(zip(features, plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(features)))))
    whole = frame[frame["P"] == 1]
    split = frame[frame["P"] > 1]
    panels = [("DDU-Net(4, F, N), P = 1", whole)] if len(whole) else []
    for comm in ("N", "Y"):
        # F = 0 has no coarse network: the one model is drawn under C = N and C = Y
        rows = split[(split["comm"] == comm) | (split["F"] == 0)]
        if len(split):
            panels.append((f"DDU-Net(4, F, {comm}) on P x P subimages", rows))
    groups = [rows["P"].nunique() + 1 for _, rows in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * sum(groups) + 1.2, 3.4), sharey=True, squeeze=False,
                             constrained_layout=True, gridspec_kw={"width_ratios": groups})
    width = 0.8 / len(features)
    for ax, (title, rows) in zip(axes[0], panels):
        partitions = sorted(rows["P"].unique())
        for i, f in enumerate(features):
            bars = rows[rows["F"] == f].set_index("P").reindex(partitions)
            x = np.arange(len(partitions)) + (i - (len(features) - 1) / 2) * width
            ax.bar(x, bars["miou_test_mean_ours"], width, yerr=bars["miou_test_std_ours"].fillna(0),
                   color=colours[f], label=f"F = {f}", capsize=2, error_kw={"linewidth": 0.7})
        grids = rows.drop_duplicates("P").set_index("P")["test_grid"]
        ax.set_xticks(np.arange(len(partitions)),
                      [f"P = {p}\n(test {grids[p]})" if p > 1 else "whole" for p in partitions])
        ax.set_title(title, fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", linewidth=0.3)
    axes[0, 0].set_ylabel("test mIoU (6 classes), mean over repeats")
    axes[0, -1].legend(fontsize=6, loc="upper right")
    repeats = int(frame["repeats"].max())
    fig.suptitle(f"Journal Fig. 13, ours: {repeats} repeat{'s' if repeats > 1 else ''}, "
                 f"{frame['data_source'].iloc[0]}", fontsize=9)
    save_pdf(fig, out)


# ------------------------------------------------------------------------------------------- Figs. 14/15


def error_map(truth: np.ndarray, predicted: np.ndarray, ignore_index: int | None = deepglobe.IGNORE_INDEX) -> np.ndarray:
    """Journal Fig. 15 pixels: 0 (black) correct, 255 (white) wrong, 128 (grey) unknown ground truth."""
    out = np.where(truth == predicted, CORRECT, WRONG).astype(np.uint8)
    if ignore_index is not None:
        out[truth == ignore_index] = UNKNOWN
    return out


def _example_scores(truth: torch.Tensor, predicted: torch.Tensor) -> dict[str, Any]:
    """mIoU (6 classes) and pixel accuracy of one example, from its own confusion matrix."""
    metric = confusion_matrix_metric(len(deepglobe.CLASSES), deepglobe.IGNORE_INDEX)
    metric.update(predicted[None], truth[None])
    return scores_from_confusion(metric.compute(), deepglobe.CLASSES, deepglobe.IGNORE_INDEX)


def _resolve_subimage(choice: str, side: int) -> int | None:
    """``whole`` = the image side, ``own`` = the checkpoint's training subimage (None), else a side in px."""
    if choice == "whole":
        return side
    return None if choice == "own" else int(choice)


def _predictions(checkpoints: list[str], subimages: list[str], images: torch.Tensor,
                 device: str | torch.device) -> list[dict[str, Any]]:
    """Each checkpoint's class ids for ``images`` at its subimage size, with labels for the panels."""
    side = images.shape[-1]
    panels = []
    for checkpoint, choice in zip(checkpoints, subimages):
        model, payload = model_from_checkpoint(checkpoint, _resolve_subimage(choice, side))
        subimage = model.subimage_size[0]
        grid = side // subimage
        label = ModelSpec.parse(payload["spec"]).label
        where = "whole image" if grid == 1 else f"{grid}x{grid} subimages"
        panels.append({"checkpoint": str(checkpoint), "spec": payload["spec"], "title": f"{label}\n{where}",
                       "subimage_px": subimage, "grid": f"{grid}x{grid}",
                       "predicted": predict(model.to(device), images.to(device)).cpu()})
    return panels


def _crop_info(split_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """The crops (tile id, position) of a prepared split, and where its tiles come from."""
    manifest = read_json(split_dir.parent / "manifest.json")
    source = GENERATED if manifest.get("fake") else f"DeepGlobe tiles under {manifest['source']['root']}"
    return manifest["splits"][split_dir.name]["crops"], source


def prediction_figures(
    checkpoints: list[str], subimages: list[str], split_dir: str | Path, examples: int,
    pdf14: str | Path, csv14: str | Path, pdf15: str | Path, csv15: str | Path, device: str | torch.device = "cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Journal Figs. 14 (image, true mask, predictions) and 15 (error maps) on the first test crops.

    ``subimages`` gives per checkpoint ``whole`` (the whole crop), ``own`` (its training subimage size) or a
    side in pixels. Fig. 14's CSV lists each drawn panel with the example's mIoU; Fig. 15's the error pixels.
    """
    started, clock = utc_now(), time.perf_counter()
    split_dir = Path(split_dir)
    split = load_split("deepglobe", split_dir)
    crops, source = _crop_info(split_dir)
    index = torch.arange(min(examples, len(split)))
    images, masks = split.batch(index)
    panels = _predictions(checkpoints, subimages, images, device)
    raw = split.images[index].numpy().transpose(0, 2, 3, 1)
    truth = masks.numpy()
    rows14, rows15 = [], []
    for i in index.tolist():
        crop = {"example": i, "tile_id": crops[i]["id"], "crop_row": crops[i]["row"], "crop_col": crops[i]["col"]}
        unknown = int((truth[i] == deepglobe.IGNORE_INDEX).sum())
        rows14.append({**crop, "panel": "true mask", "spec": None, "subimage_px": None, "grid": None,
                       "miou_ours": None, "pixel_accuracy_ours": None})
        for panel in panels:
            scores = _example_scores(masks[i], panel["predicted"][i])
            errors = error_map(truth[i], panel["predicted"][i].numpy())
            common = {"panel": panel["title"].replace("\n", ", "), "spec": panel["spec"],
                      "subimage_px": panel["subimage_px"], "grid": panel["grid"]}
            rows14.append({**crop, **common, "miou_ours": scores["miou"],
                           "pixel_accuracy_ours": scores["pixel_accuracy"]})
            rows15.append({**crop, **common, "correct_px": int((errors == CORRECT).sum()),
                           "wrong_px": int((errors == WRONG).sum()), "unknown_px": unknown})
    extra = {"data_source": source}
    _draw_predictions(raw, truth, panels, source, pdf14, errors=False)
    _draw_predictions(raw, truth, panels, source, pdf15, errors=True)
    inputs = [*map(str, checkpoints), str(split_dir)]
    frame14, frame15 = pd.DataFrame(rows14).astype({"subimage_px": "Int64"}), pd.DataFrame(rows15)
    _write_csv(frame14, csv14, started, clock, inputs, extra)
    _write_csv(frame15, csv15, started, clock, inputs, extra)
    return frame14, frame15


def _draw_predictions(raw: np.ndarray, truth: np.ndarray, panels: list[dict[str, Any]], source: str,
                      out: str | Path, errors: bool) -> None:
    """Rows are examples; columns the image, the true mask and one panel per model (masks or error maps)."""
    n_rows, n_cols = len(raw), 2 + len(panels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows + 0.5), squeeze=False,
                             constrained_layout=True)
    height, width = truth.shape[1:]
    for row in range(n_rows):
        axes[row, 0].imshow(raw[row], interpolation="nearest")
        axes[row, 1].imshow(deepglobe.ids_to_colours(truth[row]), interpolation="nearest")
        for col, panel in enumerate(panels, start=2):
            predicted = panel["predicted"][row].numpy()
            if errors:
                axes[row, col].imshow(error_map(truth[row], predicted), cmap="gray", vmin=0, vmax=255,
                                      interpolation="nearest")
            else:
                axes[row, col].imshow(deepglobe.ids_to_colours(predicted), interpolation="nearest")
            _draw_borders(axes[row, col], height, width, panel["subimage_px"] if panel["subimage_px"] < width else None)
        for col, title in enumerate(["image", "true mask", *(p["title"] for p in panels)]):
            _bare(axes[row, col])
            if row == 0:
                axes[row, col].set_title(title, fontsize=6)
    what = ("Journal Fig. 15: errors (black correct, white wrong, grey unknown)" if errors
            else "Journal Fig. 14: predictions")
    fig.suptitle(f"{what}; {source}", fontsize=7)
    save_pdf(fig, out)


# --------------------------------------------------------------------------------------------- Figs. 5/6


def _class_pixels(mask: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    return {f"pixels_{name}": int(count) for name, count in zip(classes, counts)}


def synthetic_examples(test_file: str | Path, examples: int, pdf: str | Path, csv: str | Path) -> pd.DataFrame:
    """Journal Fig. 5: the first synthetic test images and masks, subimage borders in red."""
    from ..data import synthetic

    started, clock = utc_now(), time.perf_counter()
    test_file = Path(test_file)
    arrays = synthetic.load_split(test_file)
    spec = read_json(test_file.parent / "manifest.json")["spec"]
    count = min(examples, len(arrays["images"]))
    height, width = arrays["images"].shape[1:]
    fig, axes = plt.subplots(count, 2, figsize=(2 * width / 40 + 1, count * height / 40 + 0.6), squeeze=False,
                             constrained_layout=True)
    rows = []
    for i in range(count):
        axes[i, 0].imshow(arrays["images"][i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[i, 1].imshow(arrays["masks"][i], cmap=SYNTHETIC_COLOURS, vmin=0, vmax=2, interpolation="nearest")
        for col, title in enumerate(("image", "mask")):
            ax = axes[i, col]
            for x in range(spec["subimage_size"], width, spec["subimage_size"]):
                ax.axvline(x - 0.5, color=BORDER, linewidth=0.8)
            _bare(ax)
            if i == 0:
                ax.set_title(title, fontsize=7)
        rows.append({"example": i, "file": str(test_file), "index": i, "k": spec["k"],
                     "subimage_px": spec["subimage_size"], "height_px": height, "width_px": width,
                     "rule": spec["rule"], **_class_pixels(arrays["masks"][i], synthetic.CLASSES)})
    fig.suptitle(f"Journal Fig. 5: synthetic examples, k = {spec['k']} subimages (red borders)", fontsize=7)
    save_pdf(fig, pdf)
    frame = pd.DataFrame(rows)
    _write_csv(frame, csv, started, clock, [str(test_file)])
    return frame


def deepglobe_examples(split_dir: str | Path, examples: int, pdf: str | Path, csv: str | Path) -> pd.DataFrame:
    """Journal Fig. 6: the first prepared DeepGlobe crops of a split and their masks (DeepGlobe colours)."""
    started, clock = utc_now(), time.perf_counter()
    split_dir = Path(split_dir)
    images, masks, _manifest = load_arrays(split_dir)
    crops, source = _crop_info(split_dir)
    count = min(examples, len(images))
    fig, axes = plt.subplots(count, 2, figsize=(4.2, 2 * count + 0.6), squeeze=False, constrained_layout=True)
    rows = []
    for i in range(count):
        axes[i, 0].imshow(images[i].transpose(1, 2, 0), interpolation="nearest")
        axes[i, 1].imshow(deepglobe.ids_to_colours(masks[i]), interpolation="nearest")
        for col, title in enumerate(("image", "mask")):
            _bare(axes[i, col])
            if i == 0:
                axes[i, col].set_title(title, fontsize=7)
        rows.append({"example": i, "split": split_dir.name, "tile_id": crops[i]["id"], "crop_row": crops[i]["row"],
                     "crop_col": crops[i]["col"], "crop_px": images.shape[-1],
                     **_class_pixels(np.asarray(masks[i]), deepglobe.CLASSES), "note": source})
    fig.suptitle(f"Journal Fig. 6: DeepGlobe examples\n({source})", fontsize=7)
    save_pdf(fig, pdf)
    frame = pd.DataFrame(rows)
    _write_csv(frame, csv, started, clock, [str(split_dir)], {"data_source": source})
    return frame
