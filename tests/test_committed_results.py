"""Committed results stay consistent: every CSV has its sidecar, and figures rebuild byte-identically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ddubench.report.figures import line_iou_heatmaps
from ddubench.report.scaling import scaling_figure

REPO = Path(__file__).resolve().parents[1]
RESULTS, FIGURES = REPO / "results", REPO / "figures"
PUBLISHED = sorted(RESULTS.glob("*.csv"))


@pytest.mark.parametrize("csv", PUBLISHED, ids=lambda p: p.name)
def test_published_csv_has_sidecar_and_equals_its_run(csv: Path) -> None:
    sidecar = json.loads(csv.with_name(csv.stem + ".meta.json").read_text())
    for key in ("git", "versions", "device", "wall_time_s", "finished"):
        assert key in sidecar, f"{csv.name} sidecar lacks {key}"
    source = RESULTS / "cpu" / csv.name  # publish_from of the committed configs
    assert source.read_bytes() == csv.read_bytes(), f"{csv.name} differs from results/cpu/{csv.name}"
    frame = pd.read_csv(csv)
    for column in frame.columns:
        if column.endswith("_paper"):
            assert column[: -len("_paper")] + "_ours" in frame.columns, f"{csv.name}: {column} has no _ours"


@pytest.mark.parametrize(
    "name, build",
    [
        ("fig9_heatmap", lambda csv, out: line_iou_heatmaps(
            csv, out, "Journal Fig. 9: line-class IoU, trained and tested on k subimages", "k (subimages)")),
        ("fig11_generalization", lambda csv, out: line_iou_heatmaps(
            csv, out, "Journal Fig. 11: line-class IoU on the 6-subimage test set", "k trained on")),
        ("scaling_cpu", scaling_figure),
    ],
)
def test_figure_rebuilds_byte_identically_from_its_csv(name: str, build, tmp_path: Path) -> None:
    committed = FIGURES / f"{name}.pdf"
    if not committed.exists():
        pytest.fail(f"figures/{name}.pdf is not committed")
    build(RESULTS / f"{name}.csv", tmp_path / f"{name}.pdf")
    assert (tmp_path / f"{name}.pdf").read_bytes() == committed.read_bytes()


@pytest.mark.parametrize("name, test_k", [("fig9_heatmap", None), ("fig11_generalization", 6), ("fig10_depth", None)])
def test_grid_csv_is_the_mean_of_its_committed_evaluations(name: str, test_k: int | None) -> None:
    """Every cell is the mean (and std) over exactly the seeds config/cpu.yaml gives its k, from the runs' JSONs."""
    from ddubench.config import cell_seeds, load_config

    config = load_config(REPO / "config" / "cpu.yaml")
    frame = pd.read_csv(RESULTS / f"{name}.csv")
    for row in frame.itertuples():
        spec = f"unet_D{row.depth}" if row.model == "U-Net" else f"ddunet_D{row.depth}_F{int(row.F)}_C{row.comm}"
        seeds = cell_seeds(config, row.k_train)
        runs = RESULTS / "cpu" / "runs" / f"k{row.k_train}" / spec
        scores = [json.loads((runs / f"seed{seed}" / f"eval_k{test_k or row.k_train}.json").read_text())["scores"]
                  for seed in seeds]
        line = pd.Series([score["iou"]["line"] for score in scores])
        assert row.n_seeds == len(seeds), f"{name}: {spec} at k = {row.k_train}"
        assert row.iou_line_ours == pytest.approx(line.mean(), abs=1e-12)
        assert (pd.isna(row.iou_line_ours_std) and len(seeds) == 1) or row.iou_line_ours_std == pytest.approx(
            line.std(), abs=1e-12)
