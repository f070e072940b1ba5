"""Helpers shared by the rules: configuration per run, model grids and output paths."""

import os
import sys
from functools import cache

from ddubench.config import cell_seeds, load_config, validate_config
from ddubench.errors import ConfigError
from ddubench.models import ModelSpec

# Every rule runs the package CLI with the interpreter Snakemake itself runs in (the project's venv).
DDUBENCH = f"{sys.executable} -m ddubench"
CONFIG_FILE = os.path.relpath(workflow.configfiles[-1]) if workflow.configfiles else "config/smoke.yaml"


def _fail(message):
    """Stop before any job runs with a one-line message."""
    print(f"ddubench: error: {message}", file=sys.stderr)
    sys.exit(1)


try:
    validate_config(config, CONFIG_FILE)
except ConfigError as err:
    _fail(err)


wildcard_constraints:
    run="[a-z][a-z0-9_-]*",
    k=r"\d+",
    test_k=r"\d+",
    seed=r"\d+",
    spec="[a-z]+(_[A-Z][A-Za-z0-9]+)*",
    mode="eager|compiled",
    name="[^/]+",


@cache
def run_config(run):
    """The validated configuration of ``run``: the current one, or config/<run>.yaml for another run."""
    if run == config["run"]:
        return config
    try:
        other = load_config(config_file(run))
    except ConfigError as err:
        _fail(err)
    if other["run"] != run:
        _fail(f"{config_file(run)} declares run {other['run']!r}, expected {run!r}; make them agree")
    return other


def config_file(run):
    """The file the configuration of ``run`` comes from."""
    return CONFIG_FILE if run == config["run"] else f"config/{run}.yaml"


def canonical(spec):
    """The one spelling of a model spec used in paths (validated)."""
    try:
        return str(ModelSpec.parse(spec))
    except Exception as err:
        _fail(f"{CONFIG_FILE}: {err}")


def fig9_specs(cfg):
    """DDU-Net(D, F, Y) for every F of the grid, then U-Net(D)."""
    grid = cfg["fig9"]
    width = "" if grid["base_width"] == 4 else f"_W{grid['base_width']}"
    specs = [f"ddunet_D{grid['depth']}_F{f}_CY{width}" for f in grid["features"]]
    return [canonical(s) for s in specs + [f"unet_D{grid['depth']}{width}"]]


def run_dir(run, k, spec, seed):
    """Where one trained model's files live."""
    return f"results/{run}/runs/k{k}/{spec}/seed{seed}"


def data_dir(run, k):
    """Where the synthetic dataset with k subimages of a run lives (temporary, regenerated on demand)."""
    return f"data/{run}/synthetic/k{k}"


def training_args(wildcards):
    """Hyperparameters of a run as `ddubench train` flags."""
    cfg = run_config(wildcards.run)
    training = dict(cfg["training"])
    compile_override = config.get("runtime_compile")  # this invocation's runtime choice, whichever run
    configured = training.pop("compile", False)
    use_compile = configured if compile_override is None else compile_override
    compile_flag = " --compile" if use_compile else ""
    flags = {key.replace("_", "-"): value for key, value in training.items()}
    return " ".join(f"--{key} {value}" for key, value in flags.items()) + compile_flag


def synthetic_args(wildcards):
    """Dataset parameters of a run as `ddubench generate-synthetic` flags."""
    synthetic = run_config(wildcards.run)["synthetic"]
    counts = synthetic["counts"]
    return (
        f"--rule {synthetic['rule']} --subimage-size {synthetic['subimage_size']} --seed {synthetic['data_seed']} "
        f"--train {counts['train']} --val {counts['val']} --test {counts['test']}"
    )


def grid_evals(wildcards, on_own_k):
    """Evaluation JSONs of the Fig. 9 grid: tested on each model's own k, or on the fig11 test k."""
    cfg = run_config(wildcards.run)
    return [
        f"{run_dir(wildcards.run, k, spec, seed)}/eval_k{k if on_own_k else cfg['fig11']['test_k']}.json"
        for k in cfg["synthetic"]["ks"]
        for spec in fig9_specs(cfg)
        for seed in cell_seeds(cfg, k)
    ]


def fig9_evals(wildcards):
    return grid_evals(wildcards, on_own_k=True)


def fig11_evals(wildcards):
    return grid_evals(wildcards, on_own_k=False)


def prediction_checkpoints(wildcards):
    """Best checkpoints of the models shown in the qualitative figure (first seed)."""
    cfg = run_config(wildcards.run)
    k = cfg["predictions"]["k"]
    seed = cell_seeds(cfg, k)[0]
    return [f"{run_dir(wildcards.run, k, canonical(spec), seed)}/best.pt" for spec in cfg["predictions"]["models"]]


def prediction_data(wildcards):
    """The test split (and its manifest) the qualitative figure draws its examples from."""
    directory = data_dir(wildcards.run, run_config(wildcards.run)["predictions"]["k"])
    return {"data": f"{directory}/test.npz", "manifest": f"{directory}/manifest.json"}


def fig10_specs(cfg):
    """DDU-Net(D, F, Y) and U-Net(D) for every depth D of Fig. 10, in that order."""
    grid = cfg["fig10"]
    return [canonical(spec) for depth in grid["depths"]
            for spec in (f"ddunet_D{depth}_F{grid['features']}_CY", f"unet_D{depth}")]


def fig10_evals(wildcards):
    """Evaluation JSONs of the Fig. 10 models on their own k, every seed."""
    cfg = run_config(wildcards.run)
    k = cfg["fig10"]["k"]
    return [f"{run_dir(wildcards.run, k, spec, seed)}/eval_k{k}.json"
            for spec in fig10_specs(cfg) for seed in cell_seeds(cfg, k)]


def fig10_checkpoints(wildcards):
    """Best checkpoints of the Fig. 10 models (first seed), drawn side by side."""
    cfg = run_config(wildcards.run)
    k = cfg["fig10"]["k"]
    return [f"{run_dir(wildcards.run, k, spec, cell_seeds(cfg, k)[0])}/best.pt" for spec in fig10_specs(cfg)]


def fig10_data(wildcards):
    """The test split the Fig. 10 examples come from."""
    directory = data_dir(wildcards.run, run_config(wildcards.run)["fig10"]["k"])
    return {"data": f"{directory}/test.npz", "manifest": f"{directory}/manifest.json"}


def run_config_file(wildcards):
    return config_file(wildcards.run)


TABLES = ["table8", "table10", "fig9_heatmap", "fig10_depth", "fig10_predictions", "fig11_generalization",
          "fig8_predictions", "table4", "table5", "fig7_memory", "table3", "table9", "train_throughput"]
FIGURES = ["fig9_heatmap", "fig10_depth", "fig11_generalization", "fig8_predictions", "fig7_memory"]
# DeepGlobe experiments (workflow/rules/deepglobe.smk): journal Table 6, Figs. 13, 14, 15 and examples Figs. 5, 6
DEEPGLOBE_OUTPUTS = ["table6", "fig13_deepglobe", "fig14_predictions", "fig15_errors", "fig5_synthetic_examples",
                     "fig6_deepglobe_examples"]
TABLES += DEEPGLOBE_OUTPUTS
FIGURES += DEEPGLOBE_OUTPUTS[1:]
TABLES += ["table1", "table2"]  # journal Tables 1, 2: random patching, downsampling (deepglobe_baselines.smk)
TABLES += ["table7"]  # journal Table 7: DDU-Net vs GLNet, FCtL and the other baselines (table7.smk)
TABLES += ["cnn_dnn_classification"]  # CNN-DNN papers' Tables 1-2 shape (cnn_dnn.smk)


def run_outputs(run):
    """Names of the tables and figures of one run (the scaling benchmark is named after its device)."""
    scaling = f"scaling_{run_config(run)['scaling']['device']}"
    return TABLES + [scaling], FIGURES + [scaling]


def run_targets(run):
    """Every table (with its sidecar) and figure of one run."""
    tables, figures = run_outputs(run)
    return [f"results/{run}/{name}.csv" for name in tables] + [f"figures/{run}/{name}.pdf" for name in figures]


def published_targets():
    """The committed top-level tables and figures."""
    tables, figures = run_outputs(config["publish_from"])
    return [f"results/{name}.csv" for name in tables] + [f"figures/{name}.pdf" for name in figures]


def default_targets():
    """This run's outputs, plus the top level when this run is the published one."""
    targets = run_targets(config["run"])
    if config["publish_from"] == config["run"]:
        targets += published_targets()
    return targets
