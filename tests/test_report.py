"""Report helpers: the paper comparison of a Fig. 9 grid on a hand-made table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.report.compare import compare_grid, markdown


def test_compare_grid_on_hand_made_table(tmp_path: Path) -> None:
    rows = []
    for features, paper, ours in [(0, 0.14, 0.10), (1, 0.55, 0.40), (4, 0.87, 0.60), (16, 0.92, 0.50)]:
        rows.append({"k_train": 2, "model": "DDU-Net", "F": features, "iou_line_paper": paper, "iou_line_ours": ours})
    rows.append({"k_train": 2, "model": "U-Net", "F": None, "iou_line_paper": 0.95, "iou_line_ours": 0.90})
    rows.append({"k_train": 3, "model": "U-Net", "F": None, "iou_line_paper": None, "iou_line_ours": 0.5})
    csv = tmp_path / "grid.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    result = compare_grid(csv)
    assert result["cells_compared"] == 5
    assert result["mean_abs_diff"] == pytest.approx((0.04 + 0.15 + 0.27 + 0.42 + 0.05) / 5)
    k2 = result["per_k"].set_index("k").loc[2]
    assert k2["spearman_F_paper"] == pytest.approx(1.0)
    assert k2["spearman_F_ours"] == pytest.approx(0.5)
    assert (k2["best_comm_ours"], k2["no_comm_ours"], k2["unet_ours"]) == (0.60, 0.10, 0.90)
    assert k2["seeds"] is None and k2["std_ours"] is None  # a table without seed columns


def test_compare_grid_reports_seed_spread(tmp_path: Path) -> None:
    rows = [{"k_train": 4, "model": "DDU-Net", "F": f, "iou_line_paper": 0.5, "iou_line_ours": 0.4,
             "iou_line_ours_std": std, "n_seeds": n} for f, std, n in [(0, 0.01, 3), (4, 0.05, 3), (16, None, 1)]]
    csv = tmp_path / "grid.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    k4 = compare_grid(csv)["per_k"].set_index("k").loc[4]
    assert k4["seeds"] == 1 and k4["std_ours"] == pytest.approx(0.03)
    assert "| 4 |" in markdown(csv) and "| 1 | 0.03 |" in markdown(csv)


@pytest.mark.parametrize("unet_max, beats", [(0.55, True), (0.65, False)])
def test_compare_grid_checks_the_ordering_in_every_seed(tmp_path: Path, unet_max: float, beats: bool) -> None:
    rows = [
        {"k_train": 3, "model": "DDU-Net", "F": 4, "iou_line_ours": 0.70, "iou_line_ours_min": 0.60,
         "iou_line_ours_max": 0.80},
        {"k_train": 3, "model": "DDU-Net", "F": 16, "iou_line_ours": 0.75, "iou_line_ours_min": 0.62,
         "iou_line_ours_max": 0.85},
        {"k_train": 3, "model": "U-Net", "F": None, "iou_line_ours": 0.5, "iou_line_ours_min": 0.45,
         "iou_line_ours_max": unet_max},
    ]
    csv = tmp_path / "grid.csv"
    pd.DataFrame([{**row, "iou_line_paper": None} for row in rows]).to_csv(csv, index=False)
    assert compare_grid(csv)["per_k"].loc[0, "comm_beats_unet_every_seed"] == beats
    assert [line for line in markdown(csv).splitlines() if line.startswith("| 3 |")][0].endswith(
        f"| {'yes' if beats else 'no'} |")


def test_compare_grid_names_the_cells_off_by_more_than_two_seed_stds(tmp_path: Path) -> None:
    rows = [  # (k, model, F, paper, ours, std, ceiling)
        (2, "DDU-Net", 0, 0.14, 0.138, 0.001, 0.25),  # within the paper's rounding: not off
        (2, "DDU-Net", 8, 0.91, 0.85, 0.02, 1.0),     # 0.06 > 2 x 0.02: off
        (2, "U-Net", None, 0.95, 0.90, 0.03, 1.0),    # 0.05 < 2 x 0.03: not off
        (6, "U-Net", None, 0.68, 0.34, 0.01, 0.47),   # off, and the paper is above the ceiling
        (6, "DDU-Net", 8, 0.72, 0.52, None, 0.70),    # one seed: no std to judge by
    ]
    frame = pd.DataFrame([{"k_train": k, "model": m, "F": f, "label": "U-Net(3)" if f is None else f"DDU-Net(3,{f},Y)", "iou_line_paper": p,
                           "iou_line_ours": o, "iou_line_ours_std": s, "iou_line_ceiling": c}
                          for k, m, f, p, o, s, c in rows])
    csv = tmp_path / "grid.csv"
    frame.to_csv(csv, index=False)
    result = compare_grid(csv)
    off = result["off_cells"]
    assert off[["k", "label", "paper_above_ceiling"]].values.tolist() == [[2, "DDU-Net(3,8,Y)", False],
                                                                          [6, "U-Net(3)", True]]
    assert result["per_k"].set_index("k")["mean_abs_diff"].round(4).to_dict() == {2: 0.0373, 6: 0.27}
    assert {name: round(value, 4) for name, value in result["per_model"].items()} == {
        "F=0": 0.002, "F=8": 0.13, "U-Net": 0.195}
    text = markdown(csv)
    assert "- k = 6, U-Net(3): ours 0.340 ± 0.010, paper 0.68; the paper's value is above the receptive-field " \
           "ceiling" in text
    assert "Mean absolute difference per model over k: F=0 0.002, F=8 0.130, U-Net 0.195." in text


def test_compare_grid_judges_each_cell_against_the_goal(tmp_path: Path) -> None:
    rows = [  # (k, label, paper, ours, ceiling)
        (4, "DDU-Net(3,0,Y)", 0.14, 0.144, 0.26),   # within 0.05: near
        (4, "DDU-Net(3,8,Y)", 0.84, 0.749, 0.938),  # 0.09 off, paper below its ceiling: below
        (6, "U-Net(3)", 0.68, 0.338, 0.466),        # paper above the ceiling, ours 0.725 x it: below
        (6, "DDU-Net(3,32,Y)", 0.87, 0.640, 0.702),  # paper above the ceiling, ours 0.91 x it: ceiling
        (8, "U-Net(3)", 0.60, 0.55, None),          # no ceiling, exactly 0.05 off: near
        (8, "DDU-Net(3,1,Y)", 0.18, 0.27, 0.492),   # 0.09 better than the paper: above
    ]
    frame = pd.DataFrame([{"k_train": k, "model": "U-Net" if label.startswith("U") else "DDU-Net", "label": label,
                           "F": None if label.startswith("U") else int(label.split(",")[1]), "iou_line_paper": p, "iou_line_ours": o, "iou_line_ceiling": c}
                          for k, label, p, o, c in rows])
    csv = tmp_path / "grid.csv"
    frame.to_csv(csv, index=False)
    goal = compare_grid(csv)["goal"]
    assert goal["verdict"].tolist() == ["near", "below", "below", "ceiling", "near", "above"]
    assert goal["share_of_ceiling"].round(3).tolist()[:4] == [0.554, 0.799, 0.725, 0.912]
    text = markdown(csv)
    assert "2 cells near the paper, 1 at the ceiling.\n" in text
    assert ("- 2 more than 0.05 below the paper: k = 4 DDU-Net(3,8,Y) 0.75 vs 0.84, 0.80 x ceiling; "
            "k = 6 U-Net(3) 0.34 vs 0.68, 0.73 x ceiling.\n- 1 more than 0.05 above the paper: k = 8 DDU-Net(3,1,Y) "
            "0.27 vs 0.18, 0.55 x ceiling.") in text


def test_throughput_table_compares_with_the_authors_code_anchor() -> None:
    from ddubench.report.throughput import throughput_table

    record = {"spec": "ddunet_D3_F16_CY", "label": "DDU-Net(3,16,Y)", "k": 16, "batch_size": 16, "threads": 2,
              "params": 49823, "step_time_median_s": 0.153, "step_time_q1_s": 0.15, "step_time_q3_s": 0.16,
              "images_per_s": 16 / 0.153, "repeats": 20, "warmup": 3}
    other = {**record, "spec": "ddunet_D3_F8_CY", "k": 3}
    table = throughput_table([record, other]).set_index("spec")
    assert table.loc["ddunet_D3_F16_CY", "step_time_ms_authors_code"] == 306.0
    assert table.loc["ddunet_D3_F16_CY", "speedup_vs_authors_code"] == 2.0
    assert pd.isna(table.loc["ddunet_D3_F8_CY", "speedup_vs_authors_code"])


def test_throughput_table_compares_with_the_authors_scheme_of_the_same_run() -> None:
    from ddubench.report.throughput import throughput_table

    ours = {"spec": "ddunet_D3_F16_CY", "label": "DDU-Net(3,16,Y)", "k": 6, "batch_size": 16, "threads": 2,
            "params": 49823, "step_time_median_s": 0.05, "step_time_q1_s": 0.04, "step_time_q3_s": 0.06,
            "images_per_s": 320.0, "repeats": 20, "warmup": 3, "mode": "compiled"}
    scheme = {**ours, "mode": "authors_scheme", "step_time_median_s": 0.2}
    unet = {**ours, "spec": "unet_D3", "label": "U-Net(3)"}
    table = throughput_table([ours, scheme, unet]).set_index(["spec", "mode"])
    assert table.loc[("ddunet_D3_F16_CY", "compiled"), "step_time_ms_authors_scheme"] == 200.0
    assert table.loc[("ddunet_D3_F16_CY", "compiled"), "speedup_vs_authors_scheme"] == 4.0
    assert table.loc[("ddunet_D3_F16_CY", "authors_scheme"), "speedup_vs_authors_scheme"] == 1.0
    assert pd.isna(table.loc[("unet_D3", "compiled"), "speedup_vs_authors_scheme"])  # nothing to clone


def test_line_iou_grid_aggregates_seeds() -> None:
    from ddubench.report.tables import line_iou_grid

    def record(spec: str, seed: int, line: float) -> dict:
        return {"spec": spec, "train_k": 2, "test_k": 2, "seed": seed,
                "scores": {"iou": {"line": line}, "miou": line + 0.5}}

    records = [record("ddunet_D3_F4_CY", 0, 0.5), record("ddunet_D3_F4_CY", 1, 0.7), record("ddunet_D3_F4_CY", 2, 0.9),
               record("unet_D3", 0, 0.8)]
    grid = line_iou_grid(records, {2: (0.14, 0.55, 0.57, 0.87, 0.91, 0.92, 0.93, 0.95)}, depth=3, note="n")
    ddu, unet = grid.iloc[0], grid.iloc[1]
    assert (ddu["F"], ddu["n_seeds"], ddu["iou_line_paper"]) == (4, 3, 0.87)
    assert ddu["iou_line_ours"] == pytest.approx(0.7)
    assert ddu["iou_line_ours_std"] == pytest.approx(0.2)  # n - 1
    assert (ddu["iou_line_ours_min"], ddu["iou_line_ours_max"]) == (0.5, 0.9)
    assert ddu["miou_ours"] == pytest.approx(1.2)
    assert unet["model"] == "U-Net" and unet["iou_line_paper"] == 0.95 and pd.isna(unet["iou_line_ours_std"])
    assert grid["note"].tolist() == ["n", "n"]
    # a table built before every configured seed is trained says so in the rows that lack some
    partial = line_iou_grid(records, {}, depth=3, note="n", planned_seeds=lambda k: 3)
    assert partial["note"].tolist() == ["n", "n; 1 of the 3 seeds trained so far"]


def test_a_printed_value_within_its_rounding_of_the_ceiling_is_not_called_above_it() -> None:
    """The journal's k = 8 F = 0 cell prints 0.14 where the ceiling is 0.137: 0.14 may stand for 0.136, so the
    row's note must not say the paper passes the ceiling; the k = 4 U-Net's 0.74 over 0.673 does."""
    from ddubench.report.paper import above_ceiling
    from ddubench.report.tables import line_iou_grid

    assert not above_ceiling(0.14, 0.1374) and above_ceiling(0.74, 0.673) and not above_ceiling(0.5, float("nan"))
    records = [{"spec": spec, "train_k": k, "test_k": k, "seed": 0, "scores": {"iou": {"line": 0.2}, "miou": 0.6}}
               for spec, k in (("ddunet_D3_F0_CY", 8), ("unet_D3", 4))]
    grid = line_iou_grid(records, {4: (0.14,) * 7 + (0.74,), 8: (0.14,) * 8}, depth=3, note="n",
                         ceilings={("ddunet_D3_F0_CY", 8): 0.1374, ("unet_D3", 4): 0.673})
    notes = grid.set_index("label")["note"].to_dict()
    assert notes["DDU-Net(3,0,Y)"] == "n"
    assert notes["U-Net(3)"] == "n; the paper's value is above the receptive-field ceiling of this model on this data " \
                                "(iou_line_ceiling)"


def test_the_papers_value_sits_only_beside_its_own_cell() -> None:
    """Figs. 9 and 11 print DDU-Net(3, F, Y) only, and Fig. 11 tests on k = 6: a DDU-Net(3, F, N) row, or a Fig. 11
    row tested on another k, gets no paper value."""
    from ddubench.report.tables import line_iou_grid

    def record(spec: str, test_k: int) -> dict:
        return {"spec": spec, "train_k": 2, "test_k": test_k, "seed": 0, "scores": {"iou": {"line": 0.5}, "miou": 0.8}}

    reference = {2: (0.13, 0.20, 0.20, 0.29, 0.28, 0.30, 0.40, 0.53)}
    fig9 = line_iou_grid([record("ddunet_D3_F4_CY", 2), record("ddunet_D3_F4_CN", 2)], reference, depth=3, note="n")
    paper_values = fig9.set_index("comm")["iou_line_paper"]
    assert paper_values["Y"] == 0.29 and pd.isna(paper_values["N"])
    fig11 = line_iou_grid([record("unet_D3", 6), record("unet_D3", 3)], reference, depth=3, note="n", paper_test_k=6)
    paper_values = fig11.set_index("k_test")["iou_line_paper"]
    assert paper_values[6] == 0.53 and pd.isna(paper_values[3])


def test_heatmaps_are_reproducible_pdf_and_png_with_a_ceiling_panel(tmp_path: Path) -> None:
    from ddubench.report.figures import line_iou_heatmaps

    rows = [{"k_train": 6, "model": model, "F": f, "iou_line_paper": paper, "iou_line_ceiling": ceiling,
             "iou_line_ours": ours, "iou_line_ours_std": 0.01}
            for model, f, paper, ceiling, ours in [("DDU-Net", 8, 0.72, 0.70, 0.52), ("U-Net", None, 0.68, 0.47, 0.34)]]
    pd.DataFrame(rows).to_csv(tmp_path / "grid.csv", index=False)
    for name in ("a.pdf", "b.pdf", "a.png", "b.png"):
        line_iou_heatmaps(tmp_path / "grid.csv", tmp_path / name, "t", "k")
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    for suffix in ("pdf", "png"):  # byte-identical reruns: a rebuilt published figure leaves git clean
        assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()


def test_caption_headline_is_computed_from_the_paper_and_ours_columns(tmp_path: Path) -> None:
    from ddubench.io import write_json
    from ddubench.report.captions import caption, headline

    frame = pd.DataFrame({"iou_line_paper": [0.5, 0.7, 0.9], "iou_line_ours": [0.4, 0.7, 0.8],
                          "params_paper": [10, 20, 30], "params_ours": [10, 20, 31]})
    assert headline(frame) == ("iou_line: mean |ours - paper| = 0.0667 over 3 cells, rank correlation 1.00; "
                               "params: ours equals the paper in 2 of 3 cells, largest |ours - paper| 1 (3%).")
    assert headline(pd.DataFrame({"x_ours": [1.0]})) == "1 rows of ours; the paper gives no value to put beside them."
    frame.to_csv(tmp_path / "fig9_heatmap.csv", index=False)
    sidecar = {"config": {"run": "cpu", "description": "reduced  scale.", "seeds": [0, 1]},
               "config_file": "config/cpu.yaml", "git": {"commit": "abcdef0123456"},
               "device": {"cpu": "AMD EPYC", "cpu_count": 2, "gpus": []}}
    write_json(tmp_path / "fig9_heatmap.meta.json", sidecar)
    text = caption("fig9_heatmap", tmp_path / "fig9_heatmap.csv", tmp_path / "fig9_heatmap.meta.json")
    assert text.startswith("**Journal Fig. 9** (``fig9_heatmap``). The paper shows line-class IoU")
    assert "run ``cpu`` from ``config/cpu.yaml``: reduced scale. Seeds: 0, 1. Device: AMD EPYC (2 cores)." in text
    assert "Commit ``abcdef0123``" in text and ".. csv-table::" in text and ":header-rows: 1" in text


def test_caption_renders_its_table_as_the_report_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snakemake renders workflow/report/<name>.rst, which includes results/<run>/captions/<name>.rst, from the
    repository root with docutils: the caption's table is read relative to the caption file, and the
    comparison's `|ours - paper|` is text, not a substitution."""
    from docutils.core import publish_parts

    from ddubench.io import write_json
    from ddubench.report.captions import write_caption

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/cpu").mkdir(parents=True)
    pd.DataFrame({"k": [2, 3], "params_paper": [10, 20], "params_ours": [10, 21],
                  "note": ["`measure step-time` of a_b_ *x* |y|", "1.50"],
                  "cell": ["-", "1."], "other": ["(a) b", ":a: b"], "more": ["iv) c", ".. d"]}
                 ).to_csv("results/cpu/t.csv", index=False)
    write_json("results/cpu/t.meta.json", {"config": {"run": "cpu", "description": "a_b *c*"}})
    write_caption("t", "results/cpu/t.csv", "results/cpu/t.meta.json", "results/cpu/captions/t.rst")
    body = publish_parts(".. include:: results/cpu/captions/t.rst\n", writer="html")["body"]
    assert "problematic" not in body and "system-message" not in body
    assert "largest |ours - paper| 1 (5%)" in body and "a_b *c*" in body
    assert body.count("<tr>") == 3 and "<th class=\"head\">params_ours</th>" in body and "<td>21</td>" in body
    assert "<td>`measure step-time` of a_b_ *x* |y|</td>" in body and "<td>1.50</td>" in body  # cells as in the CSV
    for cell in ("-", "1.", "(a) b", ":a: b", "iv) c", ".. d"):  # not a list, field list or comment
        assert f"<td>{cell}</td>" in body, cell
