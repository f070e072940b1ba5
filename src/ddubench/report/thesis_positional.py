"""Thesis Tables 6.2 and 6.3 and Figs. 6.4 and 6.5 (§6.1.3): the positional-encoding probe per padding, from
the records of ``ddubench positional-encoding``, beside the thesis's values and no-information references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..data.positional import (  # noqa: E402
    SIZE,
    centre_distance_formula,
    centre_predictor_mse,
    intensities,
    make_positional_data,
)
from ..errors import DdubenchError  # noqa: E402
from ..models.positional_probe import PADDINGS, PositionalProbe  # noqa: E402
from ..training.positional import ProbeConfig  # noqa: E402
from . import paper  # noqa: E402
from .figures import save_pdf  # noqa: E402

REFERENCE = "no information (predict the centre)"


def _by_padding(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if any("padding" not in record or "scores" not in record for record in records):
        raise DdubenchError("a record given is not written by `ddubench positional-encoding` (no padding/scores); "
                            "pass only those records")
    found = {record["padding"]: record for record in records}
    return {padding: found[padding] for padding in PADDINGS if padding in found}


def _note(record: dict[str, Any]) -> str:
    config = record["config"]
    thesis = ProbeConfig()
    scale = (config["epochs"], config["train"], config["val"]) != (thesis.epochs, thesis.train, thesis.val)
    return (f"ours: {config['epochs']} epochs, {config['train']} training / {config['val']} validation images, "
            f"lr {config['lr']}, batch {config['batch_size']}, seed {config['seed']}"
            + (f" (reduced scale; the thesis: {thesis.epochs} epochs, {thesis.train} / {thesis.val} images)"
               if scale else " (the thesis's scale and Table 6.1)")
            + "; scored on the validation images after the last epoch; ReLU activations (the thesis states none)")


def thesis_table6_2(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Validation MSE per coordinate (px^2) per padding, and the MSE of predicting the centre."""
    rows = [{"padding": padding, "mse_paper": paper.THESIS_TABLE6_2_MSE[padding],
             "mse_ours": round(record["scores"]["mse"], 2), "epochs": record["config"]["epochs"],
             "note": _note(record)} for padding, record in _by_padding(records).items()]
    rows.append({"padding": REFERENCE, "mse_paper": None, "mse_ours": round(centre_predictor_mse(), 2),
                 "epochs": None, "note": f"(L^2 - 1) / 12 for integer coordinates 0..{SIZE - 1}: the variance of one "
                                         "coordinate; the thesis prints no MSE reference"})
    return pd.DataFrame(rows).astype({"epochs": "Int64"})


def thesis_table6_3(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Average distance per padding: the thesis's sqrt(2 MSE) and the mean Euclidean distance; the
    no-information reference both ways (the thesis's 19.17 px against its formula's 24.49 px)."""
    rows = [{"padding": padding, "distance_px_paper": paper.THESIS_TABLE6_3_DISTANCE[padding],
             "distance_px_ours": round(record["scores"]["distance_sqrt_2mse"], 2),
             "mean_distance_px_ours": round(record["scores"]["mean_distance"], 2),
             "note": "distance_px = sqrt(2 MSE), how the thesis's values follow from Table 6.2; mean_distance_px = "
                     "mean Euclidean distance between each true and predicted point; " + _note(record)}
            for padding, record in _by_padding(records).items()]
    validation = make_positional_data(2000, seed=1)
    centre = (SIZE - 1) / 2
    sampled = (validation.targets.view(-1, 2) - centre).norm(dim=1).mean()
    rows.append({"padding": REFERENCE, "distance_px_paper": paper.THESIS_NO_INFORMATION_PX,
                 "distance_px_ours": round((2 * centre_predictor_mse()) ** 0.5, 2),
                 "mean_distance_px_ours": round(centre_distance_formula(), 2),
                 "note": f"{paper.THESIS_NO_INFORMATION_ERRATUM}; distance_px_ours = sqrt(2 (L^2 - 1) / 12), the "
                         f"same convention as the rows above; mean_distance_px_ours = the formula (sampled on 2,000 "
                         f"validation images of seed 1: {float(sampled):.2f} px)"})
    return pd.DataFrame(rows)


def thesis_fig6_4(records: list[dict[str, Any]], out: str | Path) -> None:
    """Thesis Fig. 6.4: validation images (their 4 pixels by grey value), with each padding's predictions."""
    by_padding = _by_padding(records)
    first = next(iter(by_padding.values()))
    targets = first["examples"]["targets"]
    config = first["config"]
    data = make_positional_data(len(targets), config["data_seed"] + 1)  # the first validation images
    if data.targets.tolist() != targets:
        raise DdubenchError("the positional-encoding records were made from other data than this code generates; "
                            "rerun `ddubench positional-encoding`")
    fig, axes = plt.subplots(1, len(targets), figsize=(3 * len(targets), 3.3), constrained_layout=True)
    markers = dict(zip(PADDINGS, ("x", "+", "1")))
    colours = plt.cm.viridis(intensities().numpy())
    for index, ax in enumerate(axes):
        ax.imshow(data.images[index, 0], cmap="gray", vmin=0, vmax=1)
        truth = pd.DataFrame([targets[index][i : i + 2] for i in range(0, len(targets[index]), 2)], columns=["x", "y"])
        ax.scatter(truth["x"], truth["y"], s=80, facecolors="none", edgecolors=colours, linewidths=1.5)
        for padding, record in by_padding.items():
            predicted = record["examples"]["predicted"][index]
            ax.scatter(predicted[0::2], predicted[1::2], c=colours, marker=markers[padding], s=50,
                       label=f"{padding} padding")
        ax.set_xlim(-0.5, SIZE - 0.5)
        ax.set_ylim(SIZE - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"validation image {index}", fontsize=9)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=7, title="predicted (colour = point)",
                    title_fontsize=7)
    fig.suptitle("Thesis Fig. 6.4: four pixels on 64x64 (circled: true), and where each probe puts them", fontsize=10)
    save_pdf(fig, out)


def thesis_fig6_5(out: str | Path) -> None:
    """Thesis Fig. 6.5: the probe's feature maps (side x side x channels) after each block for valid, same and
    full padding, read from the modules."""
    widths = [module.out_channels for module in PositionalProbe("same").features if hasattr(module, "out_channels")]
    columns = ["input", *(f"block {i + 1}" for i in range(len(widths))), "pooled + 1x1 conv"]
    cells = []
    for padding in PADDINGS:
        sides = PositionalProbe(padding).block_sizes(SIZE)
        cells.append([f"{SIZE}x{SIZE}x1", *(f"{side}x{side}x{width}" for side, width in zip(sides, widths)),
                      f"1x1x{widths[-1]} -> 8"])
    fig, ax = plt.subplots(figsize=(8, 1.6), constrained_layout=True)
    ax.axis("off")
    table = ax.table(cellText=cells, rowLabels=[f"{p} (pad {n})" for p, n in PADDINGS.items()], colLabels=columns,
                     loc="center", cellLoc="center")
    table.scale(1, 1.4)
    ax.set_title("Thesis Fig. 6.5: 4 x (3x3 conv, ReLU, 2x2 max-pool), global average pooling, 1x1 conv 64 -> 8",
                 fontsize=9)
    save_pdf(fig, out)
