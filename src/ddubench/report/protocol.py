"""The synthetic protocol study: a few Fig. 9 cells trained under named protocol variants, side by side.

Each variant of ``protocol_study`` (config) names how its models differ from the run's own grid: training
settings or data (they then train in the derived run ``<run>-<variant>``) or spec tokens (``_NP``, ``_IT``:
they train in the run itself). Every model is scored three ways: the journal's dataset-level IoU on the
test split, the per-image mean IoU on it, and the dataset-level IoU on the validation split; and by
distance between the circle centres, beside the receptive field of the model (journal Table 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.ceiling import support_class  # noqa: E402
from ..config import protocol_variants, variant_run, variant_spec  # noqa: E402
from ..evaluation.breakdown import DISTANCE_EDGES_PX, distance_bin_labels  # noqa: E402
from ..models import ModelSpec  # noqa: E402
from . import paper  # noqa: E402
from .figures import save_pdf  # noqa: E402


@dataclass(frozen=True)
class ProtocolCell:
    """One trained model of the study: a variant's version of ``model`` at ``k`` for one seed."""

    variant: str
    k: int
    model: str  # the cell's spec as configured (e.g. ddunet_D3_F32_CY)
    spec: str  # the spec that trained (with the variant's tokens, e.g. ddunet_D3_F32_CY_NP)
    seed: int
    run: str  # the run whose runs/ folder holds it (the base run or <run>-<variant>)
    reused: bool  # the variant does not change this model: it is the run's own grid model
    data_run: str  # the run whose synthetic data it trains on (the base run unless the variant changes the data)

    @property
    def run_dir(self) -> str:
        return f"results/{self.run}/runs/k{self.k}/{self.spec}/seed{self.seed}"

    @property
    def test_eval(self) -> str:
        return f"{self.run_dir}/eval_k{self.k}.json"

    @property
    def val_eval(self) -> str:
        return f"{self.run_dir}/eval_val.json"

    @property
    def ceiling(self) -> str | None:
        """The receptive-field ceiling JSON of this cell's model class on its data (None: no ceiling)."""
        cls = support_class(self.spec)
        return None if cls is None else f"results/{self.data_run}/ceilings/k{self.k}/{cls}.json"


def protocol_cells(config: dict[str, Any]) -> list[ProtocolCell]:
    """Every model the study of ``config`` trains or reuses, variant by variant."""
    study = config["protocol_study"]
    cells = []
    for variant in protocol_variants(config).values():
        for k in variant.get("ks", study["ks"]):
            for model in study["models"]:
                model = str(ModelSpec.parse(model))
                spec, run = variant_spec(model, variant), variant_run(config["run"], variant)
                for seed in study["seeds"]:
                    cells.append(ProtocolCell(variant["name"], k, model, spec, seed, run,
                                              reused=(spec, run) == (model, config["run"]),
                                              data_run=run if variant.get("synthetic") else config["run"]))
    return cells


def _paper_line_iou(model: str, k: int) -> float | None:
    spec = ModelSpec.parse(model)
    values = paper.FIG9_LINE_IOU.get(k)
    if values is None or spec.kwargs.get("depth") != paper.FIG9_DEPTH:
        return None
    if spec.name == "unet":
        return values[-1]
    features = spec.kwargs["features"]
    if spec.name != "ddunet" or not spec.kwargs["communicate"] or features not in paper.FIG9_FEATURES:
        return None
    return values[paper.FIG9_FEATURES.index(features)]


def _bin_column(label: str) -> str:
    return "iou_line_d" + label.replace("<", "lt").replace(">=", "ge").replace("-", "_") + "_ours"


def protocol_table(config: dict[str, Any], records: dict[str, dict[str, Any]],
                   ceilings: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per (variant, k, model): line IoU three ways and by distance, mean over seeds, with the paper's
    and the receptive-field ceiling of the model on the variant's data.

    ``records`` maps each cell's eval JSON path (test and validation) to its record, ``ceilings`` each
    cell's ceiling JSON path (:attr:`ProtocolCell.ceiling`) to its ``iou_line_ceiling``.
    """
    labels = distance_bin_labels()
    descriptions = {name: v["description"] for name, v in protocol_variants(config).items()}
    rows = []
    for cell in protocol_cells(config):
        test, val = records.get(cell.test_eval), records.get(cell.val_eval)
        scores = (test or {}).get("scores", {})
        breakdown = (test or {}).get("line_breakdown") or {}
        by_bin = {row["distance_px"]: row["iou"] for row in breakdown.get("by_distance", [])}
        rows.append({
            "variant": cell.variant, "k": cell.k, "model": ModelSpec.parse(cell.model).label, "cell": cell.model,
            "spec": cell.spec,
            "run": cell.run, "seed": cell.seed if test else None, "reused": cell.reused,
            "iou_line": scores.get("iou", {}).get("line"),
            "iou_line_per_image": breakdown.get("per_image_mean_iou"),
            "iou_line_val": val["scores"]["iou"]["line"] if val else None,
            "precision_line": scores.get("precision", {}).get("line"),
            "recall_line": scores.get("recall", {}).get("line"),
            "best_epoch": (test or {}).get("best_epoch"),
            "iou_line_ceiling": (ceilings or {}).get(cell.ceiling),
            "missing": ("test" if test is None else "") + ("val" if val is None else ""),
            **{_bin_column(label): by_bin.get(label) for label in labels},
        })
    frame = pd.DataFrame(rows)
    numeric = [column for column in frame.columns if column.startswith(("iou_", "precision_", "recall_", "best_"))]
    frame[numeric] = frame[numeric].astype(float)
    keys = ["variant", "k", "model", "cell", "spec", "run", "reused"]
    values = ["iou_line", "iou_line_per_image", "iou_line_val", "precision_line", "recall_line", "best_epoch",
              *[_bin_column(label) for label in labels]]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    ceiling = grouped["iou_line_ceiling"].first()
    missing = grouped["missing"].agg(lambda parts: "".join(parts))
    table = grouped[values].mean().rename(columns=lambda c: c if c.endswith("_ours") or c == "best_epoch"
                                          else f"{c}_ours")
    table.insert(1, "iou_line_ours_std", grouped["iou_line"].std())
    table.insert(0, "n_seeds", grouped["seed"].nunique())
    table = table.reset_index()
    table.insert(table.columns.get_loc("iou_line_ours"), "iou_line_paper",
                 [_paper_line_iou(row.cell, row.k) for row in table.itertuples()])
    table.insert(table.columns.get_loc("iou_line_ours"), "iou_line_ceiling", ceiling.to_numpy())
    table["note"] = [
        (f"{descriptions[row.variant]}" + ("; the variant does not change this model: it is the run's own grid "
                                            "model" if row.reused and row.variant != _own(config) else "")
         + ("; the paper's value is above the receptive-field ceiling of this model on this data"
            if row.iou_line_paper is not None and paper.above_ceiling(row.iou_line_paper, row.iou_line_ceiling) else "")
         + _missing_note(gaps, row.n_seeds))
        for row, gaps in zip(table.itertuples(), missing.to_numpy())
    ]
    return table


def _missing_note(gaps: str, n_seeds: int) -> str:
    """Why a row's values are empty or rest on fewer evaluations: the evaluations that were not given."""
    if n_seeds == 0:
        return "; not trained yet: no test evaluation, every value is empty"
    parts = []
    if "test" in gaps:
        parts.append(f"mean over the {n_seeds} seed(s) evaluated so far")
    if "val" in gaps:
        parts.append("the validation split was not evaluated for every seed (no eval_val.json given): "
                     "iou_line_val_ours is over those that were, empty if none")
    return "".join(f"; {part}" for part in parts)


def _own(config: dict[str, Any]) -> str | None:
    """The variant that is the run's own grid (no settings, no tokens), if any."""
    for name, variant in protocol_variants(config).items():
        if not (variant.get("training") or variant.get("synthetic") or variant.get("model_tokens")):
            return name
    return None


def _midpoints() -> list[float]:
    """Where each distance bin is drawn (px): the middle of its edges, the last 20 px beyond its edge."""
    edges = (0, *DISTANCE_EDGES_PX)
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])] + [DISTANCE_EDGES_PX[-1] + 20]


def protocol_bars(csv: str | Path, out: str | Path) -> None:
    """Line IoU per variant for every cell (bars, mean over seeds), the paper's value dashed and the
    receptive-field ceiling on the run's own data dotted."""
    frame = pd.read_csv(csv)
    sns.set_theme(style="whitegrid", font_scale=0.8)
    ks, models = sorted(frame["k"].unique()), list(dict.fromkeys(frame["model"]))
    variants = list(dict.fromkeys(frame["variant"]))
    fig, axes = plt.subplots(1, len(ks), figsize=(3.2 * len(ks) + 1, 3.2), sharey=True, squeeze=False,
                             constrained_layout=True)
    palette = dict(zip(models, sns.color_palette("deep", len(models))))
    for ax, k in zip(axes[0], ks):
        part = frame[frame["k"] == k]
        sns.barplot(part, x="variant", y="iou_line_ours", hue="model", order=variants, hue_order=models,
                    palette=palette, ax=ax, legend=ax is axes[0][-1])
        for model in models:
            reference = part.loc[part["model"] == model, "iou_line_paper"].dropna()
            if len(reference):
                ax.axhline(reference.iloc[0], color=palette[model], linestyle="--", linewidth=1)
            own = part[(part["model"] == model) & ~part["run"].str.contains("-")]  # base run, not <run>-<variant>
            ceiling = own.get("iou_line_ceiling", pd.Series(dtype=float)).dropna()  # absent in older tables
            if len(ceiling):
                ax.axhline(ceiling.iloc[0], color=palette[model], linestyle=":", linewidth=1.2)
        ax.set_title(f"k = {k} (dashed: paper, dotted: ceiling)")
        ax.set_xlabel("")
        ax.set_ylabel("line IoU (test, dataset-level)")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=45)
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1), title="")
    save_pdf(fig, out)


def protocol_distance(csv: str | Path, out: str | Path) -> None:
    """Line IoU by distance between the circle centres per cell and variant, each model's receptive field
    (journal Table 4's convention, computed from the model) marked: the paper's own explanation of Fig. 9."""
    frame = pd.read_csv(csv)
    sns.set_theme(style="whitegrid", font_scale=0.8)
    ks, models = sorted(frame["k"].unique()), list(dict.fromkeys(frame["model"]))
    variants = list(dict.fromkeys(frame["variant"]))
    fields = receptive_fields_px(list(dict.fromkeys(frame["cell"])))
    labels, x = distance_bin_labels(), _midpoints()
    fig, axes = plt.subplots(len(ks), len(models), figsize=(3 * len(models) + 1.5, 2.6 * len(ks)), sharey=True,
                             sharex=True, squeeze=False, constrained_layout=True)
    colours = dict(zip(variants, sns.color_palette("tab10", len(variants))))
    for i, k in enumerate(ks):
        for j, model in enumerate(models):
            ax = axes[i][j]
            for variant in variants:
                row = frame[(frame["k"] == k) & (frame["model"] == model) & (frame["variant"] == variant)]
                if not row.empty:
                    ax.plot(x, [row[_bin_column(label)].iloc[0] for label in labels], marker="o",
                            color=colours[variant], label=variant)
            field = fields[model]
            ax.axvline(field, color="grey", linestyle=":", linewidth=1)
            ax.text(field, 0.02, f" RF {field} px", color="grey", fontsize=6, rotation=90, va="bottom")
            ax.set_title(f"{model}, k = {k}")
            ax.set_ylim(0, 1)
            ax.set_xticks(x, labels, fontsize=6)
            ax.set_xlabel("distance between circle centres (px)" if i == len(ks) - 1 else "")
            ax.set_ylabel("line IoU" if j == 0 else "")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=7)
    save_pdf(fig, out)


def receptive_fields_px(models: list[str]) -> dict[str, int]:
    """Each model's receptive field along the image width (px; journal Table 4's convention), by label."""
    from ..analysis.receptive_field import receptive_field
    from ..models import build_model

    fields = {}
    for text in models:
        spec = ModelSpec.parse(text)
        model = build_model(spec, in_channels=1, num_classes=3, subimage_size=(32, 32))
        fields[spec.label] = int(receptive_field(model).backward[1])
    return fields
