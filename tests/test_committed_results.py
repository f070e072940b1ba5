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
