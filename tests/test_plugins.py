"""Methods as plug-ins: a package that declares an entry point of the group `ddubench.models` adds a model
that every config, rule and CLI command accepts, with no edit to this repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from ddubench.models import PLUGIN_GROUP, ModelSpec

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ddubench-tinynet"
version = "0.0.1"

[project.entry-points."ddubench.models"]
tinynet = "ddubench_tinynet"
"""

PLUGIN_MODULE = '''\
"""A two-layer convolutional network, registered with ddubench on import."""

from torch import nn

from ddubench.models import register_model


@register_model("tinynet", keys=("W",), defaults={"base_width": 4}, label=lambda p: f"TinyNet({p['base_width']})")
def build_tinynet(*, in_channels, num_classes, subimage_size, dropout, base_width):
    return nn.Sequential(nn.Conv2d(in_channels, base_width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
                         nn.Conv2d(base_width, num_classes, 1))
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install the tiny plug-in package into a temporary folder (offline, no build isolation)."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "src"
    (package / "ddubench_tinynet").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (package / "ddubench_tinynet" / "__init__.py").write_text(PLUGIN_MODULE)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(package)], check=True, capture_output=True)
    return site


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_baselines_are_plugins_declared_in_pyproject() -> None:
    names = {entry.name: entry.value for entry in metadata.entry_points(group=PLUGIN_GROUP)}
    assert {name: names.get(name) for name in ("patching", "downsampling", "glnet", "fctl", "cnndnn")} == {
        "patching": "baselines.patching", "downsampling": "baselines.downsampling", "glnet": "baselines.glnet",
        "fctl": "baselines.fctl", "cnndnn": "baselines.cnn_dnn"}
    assert str(ModelSpec.parse("glnet_G3")) == "glnet_G3"


def test_core_models_package_does_not_import_baselines() -> None:
    """No import circle: ddubench.models reaches the baselines only through their entry points."""
    code = ("import sys, ddubench.models, ddubench.models.registry, ddubench.models.builtin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'baselines'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    source = (REPO / "src/ddubench/models/registry.py").read_text()
    assert "import baselines" not in source and "from baselines" not in source


def test_installed_plugin_model_is_usable_from_the_cli(plugin_site: Path) -> None:
    code = ("from ddubench.models import ModelSpec, build_model; s = ModelSpec.parse('tinynet_W6'); "
            "m = build_model(s, in_channels=1, num_classes=3, subimage_size=(32, 32)); "
            "print(s.label, sum(p.numel() for p in m.parameters()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(plugin_site))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["TinyNet(6)", str(1 * 6 * 9 + 6 + 6 * 3 + 3)]


def test_broken_plugin_is_one_line_naming_it(plugin_site: Path, tmp_path: Path) -> None:
    broken = tmp_path / "site"
    shutil.copytree(plugin_site, broken)
    (broken / "ddubench_tinynet" / "__init__.py").write_text("raise RuntimeError('no such layer')\n")
    result = subprocess.run([sys.executable, "-m", "ddubench", "receptive-field", "unet_D3"],
                            capture_output=True, text=True, env=_env(broken))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ddubench: error: model plug-in 'tinynet' (ddubench_tinynet, entry point group ddubench.models) failed to "
        "load: RuntimeError: no such layer; fix or uninstall the package that declares it"]


@pytest.mark.workflow
def test_plugin_model_trains_through_the_workflow_and_has_its_table_row(plugin_site: Path, tmp_path: Path) -> None:
    """The plug-in's spec in a config's predictions.models: the normal `train` rule trains it on the smoke data
    and the Fig. 8 table has its row."""
    for name in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    smoke = (tmp_path / "config/smoke.yaml").read_text()
    models = "  models: [unet_D3, ddunet_D3_F4_CY, ddunet_D3_F4_CN]\n"
    assert models in smoke
    (tmp_path / "config/plugin.yaml").write_text(smoke.replace(models, "  models: [tinynet_W6]\n"))
    result = subprocess.run([SNAKEMAKE, "--cores", "2", "results/smoke/fig8_predictions.csv",
                             "--configfile", "config/plugin.yaml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env(plugin_site))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "rule train:" in result.stdout + result.stderr
    assert (tmp_path / "results/smoke/runs/k3/tinynet_W6/seed0/train.json").exists()
    table = pd.read_csv(tmp_path / "results/smoke/fig8_predictions.csv")
    rows = table[table["spec"] == "tinynet_W6"]
    assert rows["model"].tolist() == ["TinyNet(6)", "TinyNet(6)"]  # smoke: two examples
    assert rows["iou_line_ours"].between(0, 1).all()
