"""Journal Fig. 9 of several runs side by side: the long table from hand-made grids, its errors, its figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.cli import main
from ddubench.config import derived_config, load_config
from ddubench.errors import DdubenchError
from ddubench.report.budgets import budget_figure, budget_table

REPO = Path(__file__).resolve().parents[1]


def _grid(path: Path, cells: list[tuple[int, str, float | None, float, float | None]]) -> Path:
    """A fig9_heatmap.csv with (k, model, F, paper, ours) cells; ours None = not trained yet."""
    rows = [{"k_train": k, "k_test": k, "model": model, "label": f"{model}({f})", "depth": 3, "F": f,
             "comm": "Y", "iou_line_paper": paper, "iou_line_ceiling": 0.9, "iou_line_ours": ours,
             "iou_line_ours_std": None if ours is None else 0.01, "n_seeds": 0 if ours is None else 1,
             "note": f"config {path.stem}"} for k, model, f, paper, ours in cells]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture()
def grids(tmp_path: Path) -> dict[str, Path]:
    cpu = _grid(tmp_path / "cpu.csv", [(2, "DDU-Net", 0, 0.14, 0.13), (2, "U-Net", None, 0.95, 0.84),
                                       (6, "DDU-Net", 0, 0.14, 0.12)])
    paper = _grid(tmp_path / "paper.csv", [(2, "DDU-Net", 0, 0.14, 0.15), (2, "U-Net", None, 0.95, None),
                                           (6, "DDU-Net", 0, 0.14, None)])
    return {"cpu": cpu, "paper": paper}


def test_budget_table_sets_each_runs_cells_beside_the_paper(grids: dict[str, Path]) -> None:
    table = budget_table(grids)
    # run by run in the order given; cells a run has not trained have no row
    assert table[["run", "k", "model"]].values.tolist() == [
        ["cpu", 2, "DDU-Net"], ["cpu", 2, "U-Net"], ["cpu", 6, "DDU-Net"], ["paper", 2, "DDU-Net"]]
    assert table["diff_to_paper"].round(6).tolist() == [-0.01, -0.11, -0.02, 0.01]
    assert table["F"].iloc[0] == 0 and pd.isna(table["F"].iloc[1])  # the U-Net has no F
    assert table["note"].tolist() == ["config cpu"] * 3 + ["config paper"]


def test_budget_table_errors_name_the_file_and_the_fix(grids: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DdubenchError, match=r"nope\.csv: no such Fig\. 9 table; build it first \(rule fig9_table of "
                                            r"run x\)"):
        budget_table({"x": tmp_path / "nope.csv"})
    other = tmp_path / "other.csv"
    pd.DataFrame({"k": [2]}).to_csv(other, index=False)
    with pytest.raises(DdubenchError, match=r"other\.csv: not a Fig\. 9 table \(no column k_train, .*\); pass a "
                                            r"fig9_heatmap\.csv"):
        budget_table({"x": other})
    for name, content in (("empty.csv", b""), ("binary.csv", b"\x80\x81\x82")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DdubenchError, match=rf"{name}: not a CSV table .*; pass a fig9_heatmap\.csv"):
            budget_table({"x": tmp_path / name})


def test_cli_builds_table_and_figure_and_refuses_a_bad_pair(grids: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "budgets.csv"
    pairs = [f"{run}={path}" for run, path in grids.items()]
    assert main(["table", "fig9_budgets", "--grids", *pairs, "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 4 and out.with_name("budgets.meta.json").is_file()
    figure = tmp_path / "budgets.pdf"
    budget_figure(out, figure)
    assert figure.read_bytes().startswith(b"%PDF")
    capsys.readouterr()
    assert main(["table", "fig9_budgets", "--grids", str(grids["cpu"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give run=path" in err[0]


def test_derived_runs_do_not_inherit_the_comparison() -> None:
    paper = load_config(REPO / "config/paper.yaml")
    assert paper["fig9_budgets"]["runs"] == ["cpu", "paper", "paper-thesis_rule"]
    assert "fig9_budgets" not in derived_config(paper, "thesis_rule")
