"""Helpers shared by the rules: configuration per run, model grids and output paths."""

import os
import sys
from functools import cache

from ddubench.analysis.ceiling import support_class
from ddubench.config import (cell_seeds, derived_config, derived_parts, load_config, published_source,
                              validate_config)
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
    mode=r"eager|compiled|authors_scheme|stacked\d",
    name="[^/]+",


@cache
def run_config(run):
    """The validated configuration of ``run``: the current one, or config/<run>.yaml for another run."""
    if run == config["run"]:
        return config
    parts = derived_parts(run, lambda base: base == config["run"] or os.path.exists(config_file(base)))
    if parts is not None:  # <base>-<variant>: a protocol-study variant or the thesis run of run <base>
        base, variant = parts
        try:
            return derived_config(run_config(base), variant, config_file(base))
        except ConfigError as err:
            _fail(err)
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
    """Hyperparameters of a run as `ddubench train` flags (multi-rank jobs: --distributed, never --compile)."""
    cfg = run_config(wildcards.run)
    training = dict(cfg["training"])
    compile_override = config.get("runtime_compile")  # this invocation's runtime choice, whichever run
    configured = training.pop("compile", False)
    for key in ("ranks", "model_ranks", "device"):  # how the job runs, not hyperparameters
        training.pop(key, None)
    use_compile = configured if compile_override is None else compile_override
    ranks = synthetic_train_ranks(wildcards)
    compile_flag = " --compile" if use_compile and ranks == 1 else ""  # torch.compile is single-process only
    flags = {key.replace("_", "-"): value for key, value in training.items()}
    device = cfg["training"]["device"]
    extra = (" --distributed" if ranks > 1 else "") + ("" if device == "cpu" else f" --device {device}")
    return " ".join(f"--{key} {value}" for key, value in flags.items()) + compile_flag + extra


# ------------------------------------------------------------------ multi-rank jobs (torchrun, SLURM)
SPLITTABLE_MODELS = ("ddunet", "resnetddunet")  # models whose subimages split over ranks (train --distributed)


def model_ranks(section, spec, subimages):
    """Ranks ``spec`` trains over under ``section`` (a config `training` section): its `model_ranks` entry or
    `ranks`, lowered to the largest number that divides its ``subimages``; 1 for a model that does not split."""
    parsed = ModelSpec.parse(spec)
    if parsed.name not in SPLITTABLE_MODELS or parsed.kwargs.get("norm_stats", "shared") != "shared":
        return 1
    overrides = {canonical(name): ranks for name, ranks in section["model_ranks"].items()}
    wanted = overrides.get(spec, section["ranks"])
    return max(d for d in range(1, min(wanted, subimages) + 1) if subimages % d == 0)


def synthetic_train_ranks(wildcards):
    """Ranks of a synthetic `train` job (k subimages per image)."""
    return model_ranks(run_config(wildcards.run)["training"], wildcards.spec, int(wildcards.k))


def uses_gpu(device):
    """Whether a job with this device setting may use GPUs, and therefore asks the scheduler for them."""
    return device == "auto" or device.startswith("cuda")


class Launch:
    """Where a job's ranks run: ``ranks`` processes over nodes of ``ranks_per_node``, on GPUs or CPUs."""

    def __init__(self, run, ranks, device, threads_per_rank=1):
        self.run, self.ranks, self.gpu = run, int(ranks), uses_gpu(device)
        self.nodes = -(-self.ranks // run_config(run)["ranks_per_node"])
        if self.ranks % self.nodes:
            _fail(f"{config_file(run)}: {self.ranks} ranks do not share {self.nodes} nodes equally; "
                  "choose ranks_per_node or the ranks so that they do")
        self.per_node = self.ranks // self.nodes
        self.cpus_per_node = self.per_node * threads_per_rank

    def torchrun(self):
        """The torchrun command line that starts the ranks (up to `-m ddubench`).

        One node: `torchrun --standalone`. Several nodes (or torchrun_launcher: srun): `srun` starts one
        torchrun per node in this job's allocation (`--overlap`, so it also works inside the step that
        runs the job); they meet at a c10d rendezvous on this host, on a port free here, with the SLURM
        job id as rendezvous id.
        """
        launcher = f"{sys.executable} -m torch.distributed.run"
        if self.nodes == 1 and run_config(self.run)["torchrun_launcher"] == "auto":
            return f"{launcher} --standalone --nproc-per-node {self.ranks}"
        free_port = (f"$({sys.executable} -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); "
                     "print(s.getsockname()[1])')")
        return (
            f"srun --overlap --nodes {self.nodes} --ntasks {self.nodes} --ntasks-per-node 1"
            f" --cpus-per-task {self.cpus_per_node} --kill-on-bad-exit=1"
            f" {launcher} --nnodes {self.nodes} --nproc-per-node {self.per_node} --rdzv-backend c10d"
            f" --rdzv-id $SLURM_JOB_ID --rdzv-endpoint $(hostname):{free_port}"
        )

    def resources(self):
        """What the job asks the scheduler for, as the SLURM executor plugin reads it (None: not asked).

        `gres=gpu:N` is N GPUs on every node (the plugin's `gpu` would be --gpus, a total); one task per
        node; `cpus_per_task` for that node's ranks. `tasks_per_gpu=0` keeps the plugin from turning
        `tasks` into --ntasks-per-gpu. A job over several nodes is marked `mpi`: the plugin then runs it
        in the batch step instead of wrapping it in a one-node `srun`, and its own srun spans the nodes.
        """
        return {
            "nodes": self.nodes,
            "tasks": self.nodes,
            "cpus_per_task": self.cpus_per_node,
            "gres": f"gpu:{self.per_node}" if self.gpu else None,
            "tasks_per_gpu": 0 if self.gpu else None,
            "mpi": "srun" if self.nodes > 1 else None,
        }


def launch_resources(launch_of):
    """Rule resources of the job whose `Launch` is ``launch_of(wildcards)``."""
    names = ("nodes", "tasks", "cpus_per_task", "gres", "tasks_per_gpu", "mpi")
    return {name: (lambda wildcards, name=name: launch_of(wildcards).resources()[name]) for name in names}


def gpu_resources(device_of, threads=1):
    """Rule resources of a one-process job on ``device_of(wildcards)``: one GPU when it may use one."""
    return launch_resources(lambda wildcards: Launch(wildcards.run, 1, device_of(wildcards), threads))


def synthetic_launch(wildcards):
    cfg = run_config(wildcards.run)["training"]
    return Launch(wildcards.run, synthetic_train_ranks(wildcards), cfg["device"])


def synthetic_launcher(wildcards):
    """`ddubench` for a one-process training job, torchrun + `-m ddubench` for a multi-rank one."""
    launch = synthetic_launch(wildcards)
    return DDUBENCH if launch.ranks == 1 else f"{launch.torchrun()} -m ddubench"


def synthetic_args(wildcards):
    """Dataset parameters of a run as `ddubench generate-synthetic` flags."""
    synthetic = run_config(wildcards.run)["synthetic"]
    counts = synthetic["counts"]
    return (
        f"--rule {synthetic['rule']} --subimage-size {synthetic['subimage_size']} --seed {synthetic['data_seed']} "
        f"--train {counts['train']} --val {counts['val']} --test {counts['test']}{line_width_arg(synthetic)}"
    )


def line_width_arg(synthetic):
    """`--line-width N` where a run's synthetic section overrides its placement rule's line width."""
    return f" --line-width {synthetic['line_width']}" if synthetic.get("line_width") else ""


def grid_evals(wildcards, on_own_k):
    """Evaluation JSONs of the Fig. 9 grid: tested on each model's own k, or on the fig11 test k."""
    cfg = run_config(wildcards.run)
    return [
        f"{run_dir(wildcards.run, k, spec, seed)}/eval_k{k if on_own_k else cfg['fig11']['test_k']}.json"
        for k in cfg["synthetic"]["ks"]
        for spec in fig9_specs(cfg)
        for seed in cell_seeds(cfg, k)
    ]


def grid_ceilings(wildcards, on_own_k):
    """Receptive-field ceiling JSONs of the Fig. 9 grid's models on their test k (none without `ceiling`)."""
    cfg = run_config(wildcards.run)
    if "ceiling" not in cfg:
        return []
    ks = cfg["synthetic"]["ks"] if on_own_k else [cfg["fig11"]["test_k"]]
    classes = dict.fromkeys(support_class(spec) for spec in fig9_specs(cfg))
    return [f"results/{wildcards.run}/ceilings/k{k}/{cls}.json" for k in ks for cls in classes if cls]


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
TABLES += ["thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6"]  # thesis, exact (thesis.smk)


def run_outputs(run):
    """Names of the tables and figures of one run (the scaling benchmark is named after its device)."""
    cfg = run_config(run)
    scaling = f"scaling_{cfg['scaling']['device']}"
    study = "protocol_study" in cfg  # protocol.smk
    budgets = ["fig9_budgets"] if "fig9_budgets" in cfg else []  # protocol.smk
    positional = "positional" in cfg.get("thesis", {})  # thesis.smk
    thesis_synthetic = "synthetic" in cfg.get("thesis", {})  # thesis.smk
    thesis_memory = "memory" in cfg.get("thesis", {})  # thesis.smk
    ablation = "deepglobe_ablation" in cfg.get("thesis", {})  # thesis.smk
    inria = "inria" in cfg.get("thesis", {})  # inria.smk
    tables = (TABLES + [scaling] + (["protocol_study"] if study else []) + budgets
              + (["thesis_table6_2", "thesis_table6_3"] if positional else [])
              + (["thesis_table7_4", "thesis_fig7_5", "thesis_fig7_6", "thesis_fig7_7", "thesis_fig7_8"]
                 if thesis_synthetic else [])
              + (["thesis_fig6_8", "thesis_fig6_10"] if thesis_memory else [])
              + (["thesis_table7_11", "thesis_table7_12", "thesis_table7_13", "thesis_fig7_15", "thesis_fig7_15_errors"]
                 if ablation else [])
              + (["thesis_table7_7", "thesis_table7_8", "thesis_fig5_6", "thesis_fig7_9", "thesis_fig7_11_13"]
                 if inria else []))
    figures = (FIGURES + [scaling] + (["protocol_study", "protocol_by_distance"] if study else []) + budgets
               + (["thesis_fig6_4", "thesis_fig6_5"] if positional else [])
               + ([f"thesis_fig7_{n}" for n in range(3, 9)] if thesis_synthetic else [])
               + (["thesis_fig6_8", "thesis_fig6_9", "thesis_fig6_10"] if thesis_memory else [])
               + (["thesis_fig7_15", "thesis_fig7_15_errors"] if ablation else [])
               + (["thesis_fig5_6", "thesis_fig7_9"] + [f"thesis_fig7_{n}" for n in range(10, 14)] if inria else []))
    return tables, figures


def run_targets(run):
    """Every table (with its sidecar) and figure of one run."""
    tables, figures = run_outputs(run)
    return [f"results/{run}/{name}.csv" for name in tables] + [f"figures/{run}/{name}.pdf" for name in figures]


def published_targets():
    """The committed top-level tables and figures."""
    tables, figures = run_outputs(config["publish_from"])
    images = [f"figures/{name}.png" for name in README_IMAGES]  # publish.smk
    return [f"results/{name}.csv" for name in tables] + [f"figures/{name}.pdf" for name in figures] + images


def default_targets():
    """This run's outputs, plus the top level when this run is the published one."""
    targets = run_targets(config["run"])
    if config["publish_from"] == config["run"]:
        targets += published_targets()
    return targets
