"""Thesis Table 7.4 and Figs. 7.3 and 7.4 (§7.2.3): DDU-Net with and without communication and the U-Net on the
thesis's two-subimage synthetic data, from the models' evaluation records and training histories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import DdubenchError  # noqa: E402
from ..models import ModelSpec  # noqa: E402
from . import paper  # noqa: E402
from .figures import save_pdf  # noqa: E402

MODELS = tuple(paper.THESIS_TABLE7_4)  # the thesis's row names, in its order
LINE = "line"


def thesis_model(spec: str) -> str:
    """The thesis's name of a Table 7.4 model: DDU-Net(D, F > 0, Y) is "with communication", DDU-Net(D, 0, .)
    (no communication network at all, as the thesis's model without) "without", U-Net(D) the baseline."""
    parsed = ModelSpec.parse(spec)
    if parsed.name == "unet":
        return MODELS[2]
    if parsed.name == "ddunet" and parsed.kwargs["features"] == 0:
        return MODELS[1]
    if parsed.name == "ddunet" and parsed.kwargs["communicate"]:
        return MODELS[0]
    raise DdubenchError(f"{spec} is none of thesis Table 7.4's models (ddunet_D<d>_F<f>_CY, ddunet_D<d>_F0_CY, "
                        "unet_D<d>); pass only their records")


def line_scores(confusion: list[list[int]], classes: list[str]) -> dict[str, float]:
    """Line-class IoU, precision, recall and one-vs-rest accuracy, and the mean IoU over all classes, from a
    dataset-level confusion matrix (rows true, columns predicted)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    line = classes.index(LINE)
    tp = matrix[line, line]
    fp, fn = matrix[:, line].sum() - tp, matrix[line, :].sum() - tp
    diagonal = np.diag(matrix)
    ious = diagonal / (matrix.sum(0) + matrix.sum(1) - diagonal)
    return {"miou": float(ious.mean()), "iou_line": float(tp / (tp + fp + fn)), "precision_line": float(tp / (tp + fp)),
            "recall_line": float(tp / (tp + fn)), "accuracy_line": float(1 - (fp + fn) / matrix.sum())}


def _seeds_of_one_setting(name: str, group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``group``, the records averaged into one row, sorted by seed; an error if they are not seeds of one model
    trained and evaluated on one k each."""
    for key in ("spec", "train_k", "test_k"):
        values = sorted({str(record.get(key)) for record in group})
        if len(values) > 1:
            raise DdubenchError(f"the records of {name} mix {key} {', '.join(values)}; a row averages seeds of one "
                                "model and k only: pass one evaluation per seed")
    return sorted(group, key=lambda record: record.get("seed", 0))


def _by_model(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(thesis_model(record["spec"]), []).append(record)
    return {name: _seeds_of_one_setting(name, grouped[name]) for name in MODELS if name in grouped}


def implied_line_iou(precision: float, recall: float) -> float:
    """The IoU a class has at this precision and recall: TP / (TP + FP + FN) = 1 / (1/P + 1/R - 1)."""
    return 1 / (1 / precision + 1 / recall - 1)


def thesis_table7_4(records: list[dict[str, Any]], note: str) -> pd.DataFrame:
    """One row per model (mean over seeds): the thesis's mean IoU, line precision, recall and accuracy beside
    ours, and the line-class IoU (ours, and the one the thesis's precision and recall imply)."""
    rows = []
    for name, group in _by_model(records).items():
        scores = pd.DataFrame([line_scores(r["scores"]["confusion_matrix"], r["scores"]["classes"]) for r in group])
        miou, precision, recall, accuracy = paper.THESIS_TABLE7_4[name]
        first = group[0]
        rows.append({
            "model": name, "spec": first["spec"], "label": first["label"], "k": first["test_k"],
            "n_seeds": len(group),
            "miou_paper": miou, "miou_ours": scores["miou"].mean(),
            "precision_line_paper": precision, "precision_line_ours": scores["precision_line"].mean(),
            "recall_line_paper": recall, "recall_line_ours": scores["recall_line"].mean(),
            "accuracy_line_paper": accuracy, "accuracy_line_ours": scores["accuracy_line"].mean(),
            "iou_line_paper_implied": round(implied_line_iou(precision, recall), 3),
            "iou_line_ours": scores["iou_line"].mean(),
            "note": note + "; the thesis's column is labelled mean IoU and is the mean over the three classes; "
                           "iou_line_paper_implied = 1 / (1/P + 1/R - 1) from its line precision P and recall R",
        })
    if not rows:
        raise DdubenchError("no evaluation records given; pass the eval_k<k>.json of Table 7.4's three models")
    return pd.DataFrame(rows).round(4)


def thesis_fig7_3(summaries: list[str | Path], out: str | Path) -> None:
    """Thesis Fig. 7.3: training and validation loss per epoch of each model, from the ``history.csv`` beside
    each given ``train.json``."""
    from ..io import read_json

    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for summary, colour in zip(summaries, plt.cm.tab10.colors):
        history_file = Path(summary).with_name("history.csv")
        if not history_file.exists():
            raise DdubenchError(f"{history_file} does not exist; Fig. 7.3 draws the history.csv that `ddubench train` "
                                "writes beside its train.json: retrain that model or restore the file")
        history = pd.read_csv(history_file)
        label = f"{thesis_model(read_json(summary)['spec'])}"
        ax.plot(history["epoch"], history["train_loss"], color=colour, label=f"{label}, training")
        ax.plot(history["epoch"], history["val_loss"], color=colour, linestyle="--", label=f"{label}, validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dice loss")
    ax.legend(fontsize=7)
    ax.set_title("Thesis Fig. 7.3: loss curves on the 2-subimage synthetic data", fontsize=10)
    save_pdf(fig, out)


def thesis_fig7_4(records: list[dict[str, Any]], out: str | Path) -> None:
    """Thesis Fig. 7.4: confusion matrices normalised per true class (rows sum to 1), one per model (its lowest
    seed)."""
    grouped = _by_model(records)
    fig, axes = plt.subplots(1, len(grouped), figsize=(3.6 * len(grouped), 3.4), constrained_layout=True,
                             squeeze=False)
    for ax, (name, group) in zip(axes[0], grouped.items()):
        classes = group[0]["scores"]["classes"]
        matrix = np.asarray(group[0]["scores"]["confusion_matrix"], dtype=np.float64)
        normalised = matrix / matrix.sum(1, keepdims=True)
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for (row, column), value in np.ndenumerate(normalised):
            ax.text(column, row, f"{value:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if value > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}\n{group[0]['label']}", fontsize=9)
    fig.suptitle("Thesis Fig. 7.4: normalised confusion matrices (2-subimage synthetic test set)", fontsize=10)
    save_pdf(fig, out)


def _class_ious(record: dict[str, Any]) -> dict[str, float]:
    return {f"iou_{name}_ours": record["scores"]["iou"][name] for name in record["scores"]["classes"]}


def thesis_fig7_6(records: list[dict[str, Any]], note: str) -> pd.DataFrame:
    """Thesis Fig. 7.6's numbers: per-class IoU (mean over seeds) of every DDU-Net(D, F, Y) and U-Net(D), one row
    per depth and F (U-Net: F empty), in the order depth, U-Net first, F ascending."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["spec"], []).append(record)
    rows = []
    for spec, group in groups.items():
        group = _seeds_of_one_setting(spec, group)
        parsed = ModelSpec.parse(spec)
        if parsed.name not in ("unet", "ddunet") or (parsed.name == "ddunet" and not parsed.kwargs["communicate"]):
            raise DdubenchError(f"{spec} is not a Fig. 7.6 model (ddunet_D<d>_F<f>_CY or unet_D<d>); pass only theirs")
        features = parsed.kwargs.get("features") if parsed.name == "ddunet" else None
        scores = pd.DataFrame([_class_ious(record) for record in group]).mean()
        rows.append({"depth": parsed.kwargs["depth"], "model": "U-Net" if features is None else "DDU-Net",
                     "F": features, "label": group[0]["label"], "spec": spec, "k": group[0]["test_k"],
                     "n_seeds": len(group), **scores.to_dict(), "note": note})
    if not rows:
        raise DdubenchError("no evaluation records given; pass the eval_k<k>.json of Fig. 7.6's models")
    frame = pd.DataFrame(rows).astype({"F": "Int64"})
    frame["_order"] = frame["F"].fillna(-1)
    return frame.sort_values(["depth", "_order"]).drop(columns="_order").reset_index(drop=True).round(4)


def thesis_fig7_6_figure(csv: str | Path, out: str | Path) -> None:
    """Thesis Fig. 7.6: IoU of each class against F (log scale), one line per depth, U-Net(D) dashed."""
    frame = pd.read_csv(csv)
    classes = [column[len("iou_"):-len("_ours")] for column in frame.columns
               if column.startswith("iou_") and column.endswith("_ours")]
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.6), constrained_layout=True, sharex=True)
    for ax, name in zip(axes, classes):
        for (depth, group), colour in zip(frame.groupby("depth"), plt.cm.tab10.colors):
            ddu = group[group["model"] == "DDU-Net"]
            ax.plot(ddu["F"], ddu[f"iou_{name}_ours"], marker="o", color=colour, label=f"DDU-Net({depth}, F, Y)")
            for value in group.loc[group["model"] == "U-Net", f"iou_{name}_ours"]:
                ax.axhline(value, color=colour, linestyle="--", linewidth=1, label=f"U-Net({depth})")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("communicated feature maps F")
        ax.set_ylabel("IoU")
        ax.set_title(f"class {classes.index(name)} ({name})", fontsize=10)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Thesis Fig. 7.6: per-class IoU against F on {int(frame['k'].iloc[0])} subimages", fontsize=10)
    save_pdf(fig, out)


def thesis_fig7_8(records: list[dict[str, Any]], note: str) -> pd.DataFrame:
    """Thesis Fig. 7.8's numbers: line-class IoU (mean over seeds) of each model trained on k and evaluated on
    k', in the thesis's model order."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((thesis_model(record["spec"]), record["train_k"], record["test_k"]), []).append(record)
    groups = {key: _seeds_of_one_setting(f"{key[0]} trained on k = {key[1]}, evaluated on k' = {key[2]}", group)
              for key, group in groups.items()}
    rows = [{"model": name, "spec": group[0]["spec"], "label": group[0]["label"], "k_train": k_train,
             "k_test": k_test, "n_seeds": len(group),
             "iou_line_ours": float(np.mean([r["scores"]["iou"][LINE] for r in group])), "note": note}
            for (name, k_train, k_test), group in groups.items()]
    if not rows:
        raise DdubenchError("no evaluation records given; pass the eval_k<k'>.json of Fig. 7.8's models")
    frame = pd.DataFrame(rows)
    frame["_order"] = frame["model"].map(MODELS.index)
    return frame.sort_values(["_order", "k_train", "k_test"]).drop(columns="_order").reset_index(drop=True).round(4)


def thesis_fig7_8_figure(csv: str | Path, out: str | Path) -> None:
    """Thesis Fig. 7.8: one heat map of the line-class IoU per model, trained on k (rows), evaluated on k'."""
    import seaborn as sns

    frame = pd.read_csv(csv)
    names = [name for name in MODELS if name in set(frame["model"])]
    test_ks = sorted(frame["k_test"].unique())
    train_ks = sorted(frame["k_train"].unique())
    sns.set_theme(style="white", font_scale=0.8)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names) + 0.6, 0.55 * len(train_ks) + 1.6),
                             sharey=True, constrained_layout=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        grid = frame[frame["model"] == name].pivot_table(index="k_train", columns="k_test", values="iou_line_ours")
        grid = grid.reindex(index=train_ks, columns=test_ks)
        sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", annot_kws={"fontsize": 7},
                    cbar=ax is axes[0][-1], mask=grid.isna(), linewidths=0.5, linecolor="white")
        label = frame.loc[frame["model"] == name, "label"].iloc[0]
        ax.set_title(f"{name}\n{label}", fontsize=9)
        ax.set_xlabel("k' (evaluated on)")
        ax.set_ylabel("k (trained on)" if ax is axes[0][0] else "")
    fig.suptitle("Thesis Fig. 7.8: line-class IoU, trained on k subimages, evaluated on k'", fontsize=10)
    save_pdf(fig, out)
