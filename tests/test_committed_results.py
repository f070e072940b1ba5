"""Committed results stay consistent: every CSV has its sidecar, and figures rebuild byte-identically."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from ddubench.report.figures import line_iou_heatmaps
from ddubench.report.rf_memory import fig7_figure
from ddubench.report.scaling import scaling_figure

REPO = Path(__file__).resolve().parents[1]
RESULTS, FIGURES = REPO / "results", REPO / "figures"
PUBLISHED = sorted(RESULTS.glob("*.csv"))


@cache
def _source(name: str) -> str:
    """The run the committed top-level output ``name`` is copied from (config/cpu.yaml publishes; its
    publish_overrides may name another run)."""
    from ddubench.config import load_config, published_source

    return published_source(load_config(REPO / "config" / "cpu.yaml"), name)


@pytest.mark.parametrize("csv", PUBLISHED, ids=lambda p: p.name)
def test_published_csv_has_sidecar_and_equals_its_run(csv: Path) -> None:
    sidecar = json.loads(csv.with_name(csv.stem + ".meta.json").read_text())
    for key in ("git", "versions", "device", "wall_time_s", "finished"):
        assert key in sidecar, f"{csv.name} sidecar lacks {key}"
    source = RESULTS / _source(csv.stem) / csv.name
    assert source.read_bytes() == csv.read_bytes(), f"{csv.name} differs from {source.relative_to(REPO)}"
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
        ("fig7_memory", fig7_figure),
    ],
)
@pytest.mark.parametrize("suffix", [".pdf", ".png"])
def test_figure_rebuilds_byte_identically_from_its_csv(name: str, build, suffix: str, tmp_path: Path) -> None:
    """The published PDF and the README's PNG of each figure are exactly what its committed table draws."""
    committed = FIGURES / f"{name}{suffix}"
    if not committed.exists():
        pytest.fail(f"figures/{name}{suffix} is not committed")
    build(RESULTS / f"{name}.csv", tmp_path / f"{name}{suffix}")
    assert (tmp_path / f"{name}{suffix}").read_bytes() == committed.read_bytes()


@pytest.mark.parametrize("name, test_k", [("fig9_heatmap", None), ("fig11_generalization", 6), ("fig10_depth", None)])
def test_grid_csv_is_the_mean_of_its_committed_evaluations(name: str, test_k: int | None) -> None:
    """Every cell is the mean (and std) over exactly the seeds its run's config gives its k, from the runs' JSONs."""
    from ddubench.config import cell_seeds, load_config

    run = _source(name)
    config = load_config(REPO / "config" / f"{run}.yaml")
    frame = pd.read_csv(RESULTS / f"{name}.csv")
    for row in frame.itertuples():
        spec = f"unet_D{row.depth}" if row.model == "U-Net" else f"ddunet_D{row.depth}_F{int(row.F)}_C{row.comm}"
        seeds = cell_seeds(config, row.k_train)
        runs = RESULTS / run / "runs" / f"k{row.k_train}" / spec
        scores = [json.loads((runs / f"seed{seed}" / f"eval_k{test_k or row.k_train}.json").read_text())["scores"]
                  for seed in seeds]
        line = pd.Series([score["iou"]["line"] for score in scores])
        assert row.n_seeds == len(seeds), f"{name}: {spec} at k = {row.k_train}"
        assert row.iou_line_ours == pytest.approx(line.mean(), abs=1e-12)
        assert (pd.isna(row.iou_line_ours_std) and len(seeds) == 1) or row.iou_line_ours_std == pytest.approx(
            line.std(), abs=1e-12)


# The config keys (dotted prefixes of config/cpu.yaml) each published table or figure depends on. Launch settings
# (how many ranks, ranks per node) are left out: the runtime is tested to give the same results on any number.
# None: made from data files and checkpoints alone, whose own records carry the config (the sidecar has none).
_DEEPGLOBE_DATA = ["deepglobe.root", "deepglobe.fake", "deepglobe.split", "deepglobe.crop", "deepglobe.subimage"]
_SYNTHETIC = ["synthetic", "training", "seeds", "fewer_seeds"]
CONFIG_KEYS: dict[str, list[str] | None] = {
    "table1": [*_DEEPGLOBE_DATA, "deepglobe.training", "deepglobe_baselines"],
    "table2": [*_DEEPGLOBE_DATA, "deepglobe.training", "deepglobe_baselines"],
    "table3": _DEEPGLOBE_DATA,
    "table4": [], "table5": [], "table8": [], "table9": [],
    "table6": ["deepglobe.training"],
    "table7": ["table7"],
    "table10": ["synthetic", "training"],
    "fig9_heatmap": [*_SYNTHETIC, "fig9", "ceiling"],
    "fig11_generalization": [*_SYNTHETIC, "fig9", "fig11", "ceiling"],
    "fig10_depth": [*_SYNTHETIC, "fig10"],
    "fig13_deepglobe": [*_DEEPGLOBE_DATA, "deepglobe.training", "deepglobe.fig13"],
    "fig7_memory": ["fig7"],
    "scaling_cpu": ["scaling"],
    "train_throughput": ["throughput"],
    "cnn_dnn_classification": ["cnn_dnn"],
    "thesis_table6_4": [], "thesis_table6_5": [], "thesis_table7_5": ["thesis.table7_5"], "thesis_table7_6": [],
    "thesis_table6_2": ["thesis.positional"], "thesis_table6_3": ["thesis.positional"],
    **dict.fromkeys(("thesis_table7_4", "thesis_fig7_6", "thesis_fig7_8"),
                    ["synthetic.subimage_size", "synthetic.data_seed", "training", "thesis.synthetic"]),
    "thesis_fig7_5": None, "thesis_fig7_7": None,
    "thesis_fig6_8": [], "thesis_fig6_10": ["thesis.memory"],
    **dict.fromkeys(("thesis_table7_11", "thesis_table7_12", "thesis_table7_13"),
                    [*_DEEPGLOBE_DATA, "deepglobe.training", "thesis.deepglobe_ablation"]),
    "thesis_fig7_15": None, "thesis_fig7_15_errors": None,
    "thesis_table7_7": ["thesis.inria.training"],
    "thesis_table7_8": ["thesis.inria"],
    "thesis_fig5_6": None, "thesis_fig7_9": None, "thesis_fig7_11_13": None,
    "fig5_synthetic_examples": None, "fig6_deepglobe_examples": None, "fig8_predictions": None,
    "fig10_predictions": None, "fig14_predictions": None, "fig15_errors": None,
}
_LAUNCH_KEYS = {"ranks", "model_ranks", "ranks_per_node"}


def _flatten(config: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(recorded: dict, current: dict, keys: list[str]) -> list[str]:
    """The dotted keys under ``keys`` where the recorded config and the current one differ (launch keys aside)."""
    recorded, current = _flatten(recorded), _flatten(current)
    return sorted(
        key for key in set(recorded) | set(current)
        if key.rsplit(".", 1)[-1] not in _LAUNCH_KEYS
        and any(key == prefix or key.startswith(prefix + ".") for prefix in keys)
        and recorded.get(key) != current.get(key)
    )


def test_config_differences_on_hand_made_configs() -> None:
    recorded = {"fig7": {"resolutions": [32, 64]}, "scaling": {"ranks": [1, 2], "ranks_per_node": 8}}
    current = {"fig7": {"resolutions": [32, 64, 128]}, "scaling": {"ranks": [1, 2, 4]}, "seeds": [0, 1]}
    assert config_differences(recorded, current, ["fig7"]) == ["fig7.resolutions"]
    assert config_differences(recorded, current, ["scaling"]) == []  # ranks only say how it was launched
    assert config_differences(recorded, current, ["seeds"]) == ["seeds"]
    assert config_differences(recorded, current, ["fig7.res"]) == []  # a prefix is a whole key, not a string


@pytest.mark.parametrize("csv", PUBLISHED, ids=lambda p: p.name)
def test_committed_sidecar_describes_the_committed_config(csv: Path) -> None:
    """A published table's sidecar records the config file committed beside it, in every key the table uses."""
    from ddubench.config import load_config

    assert csv.stem in CONFIG_KEYS, f"{csv.name}: say which config keys it depends on (CONFIG_KEYS)"
    sidecar = json.loads(csv.with_name(csv.stem + ".meta.json").read_text())
    if CONFIG_KEYS[csv.stem] is None:
        assert sidecar["config"] is None and sidecar["inputs"], f"{csv.name}: made from its inputs alone"
        return
    if not CONFIG_KEYS[csv.stem]:
        return
    config_file = f"config/{_source(csv.stem)}.yaml"
    assert sidecar.get("config_file") == config_file, f"{csv.name}: made from {sidecar.get('config_file')}"
    differences = config_differences(sidecar["config"], load_config(REPO / config_file), CONFIG_KEYS[csv.stem])
    assert not differences, f"{csv.name} was made with another {config_file}: {differences}; rebuild it"


def _absolute_paths(value: object) -> list[str]:
    if isinstance(value, dict):
        return [path for item in value.values() for path in _absolute_paths(item)]
    if isinstance(value, list):
        return [path for item in value for path in _absolute_paths(item)]
    if isinstance(value, str):
        return [word for word in value.split() if word.startswith(("/", "'/", '"/')) and "/" in word[2:]]
    return []


def test_committed_records_hold_no_absolute_paths() -> None:
    """Sidecars and run records name files relative to the repository, never the machine that made them."""
    tracked = subprocess.run(["git", "ls-files", "*.json"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    offenders = {name: paths for name in tracked
                 if (paths := _absolute_paths(json.loads((REPO / name).read_text())))}
    example = next(iter(offenders.items()), None)
    assert tracked and not offenders, f"{len(offenders)} records with absolute paths, e.g. {example}"
